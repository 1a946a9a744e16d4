//! The store on both back ends: every behaviour below runs once on an SQLite file and once on a
//! real PostgreSQL (a throwaway cluster each test makes with Debian's initdb and pg_ctl, see
//! `callpark_testkit::postgres`); then `callpark migrate` from an SQLite file into PostgreSQL,
//! and the errors a wrong `database` gives. A test that cannot start PostgreSQL fails.

use callpark_testkit as support;

use std::process::Command;

use callpark::orbit::{OrbitRange, OrbitTable};
use callpark::park::{
    CallState, Change, ChannelId, LogEvent, LogKind, Millis, ParkedCall, Parker, Party,
};
use callpark::store::{Location, Media, PgUrl, Store, StoreError, WaitBucket};
use support::postgres::PgCluster;

/// Where a test's store is, and what keeps it there (the SQLite file's directory, the cluster).
struct Site {
    at: Location,
    _keep: Keep,
}

enum Keep {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Cluster(PgCluster),
}

impl Site {
    fn sqlite() -> Site {
        let dir = tempfile::tempdir().unwrap();
        Site {
            at: Location::Sqlite(dir.path().join("callpark.db")),
            _keep: Keep::Dir(dir),
        }
    }

    fn postgres() -> Site {
        let cluster = PgCluster::start();
        let url = cluster.create_db("callpark");
        Site {
            at: Location::Postgres(PgUrl::new(&url).unwrap()),
            _keep: Keep::Cluster(cluster),
        }
    }

    async fn open(&self) -> Store {
        Store::open_at(&self.at)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.at))
    }

    /// The server stopped and started again (PostgreSQL only; a file has no server).
    fn restart_server(&self) {
        if let Keep::Cluster(c) = &self._keep {
            c.restart();
        }
    }
}

/// Each behaviour as one test per back end: `<name>::sqlite` and `<name>::postgres`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Site::sqlite()).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(super::Site::postgres()).await
            }
        }
    )*};
}

on_both!(
    parked_calls_come_back_whole_in_park_order_and_by_pool,
    one_orbit_holds_one_call,
    the_log_is_appended_read_by_id_and_pruned,
    counters_are_kept_per_commit_and_outlive_pruning,
    media_records_are_kept_by_name,
    a_reopened_store_keeps_everything,
);

fn call(ch: &str, orbit: &str, parked_at: Millis) -> ParkedCall {
    ParkedCall {
        channel: ChannelId::new(ch),
        orbit: Some(orbit.parse().unwrap()),
        caller: Party {
            name: "Carol \"Reception\" \\ Ünï 📞".into(),
            number: "5551234".into(),
        },
        parker: Parker {
            ids: vec!["alice".into()],
            endpoint: Some("PJSIP/alice".into()),
            display: "PJSIP/alice".into(),
        },
        lot: None,
        parked_at,
        deadline: parked_at + 90_000,
        attempts: 0,
        fallback_tried: false,
        state: CallState::Parked,
        page: Default::default(),
    }
}

fn entry(kind: LogKind, ch: &str, orbit: Option<&str>, lot: Option<&str>, at: Millis) -> LogEvent {
    LogEvent {
        at,
        kind,
        channel: ChannelId::new(ch),
        orbit: orbit.map(|o| o.parse().unwrap()),
        lot: lot.map(str::to_string),
        detail: format!("{kind:?} of {ch}: quotes \" and \\ and\nnewline, Ünï 📞"),
    }
}

fn up(c: &ParkedCall) -> Change {
    Change::Upsert(Box::new(c.clone()))
}

fn table() -> OrbitTable {
    OrbitTable::new(vec![
        OrbitRange {
            name: "main".into(),
            span: "701-799".parse().unwrap(),
            pool: "ast".into(),
            lot: None,
        },
        OrbitRange {
            name: "sales".into(),
            span: "5000-5099".parse().unwrap(),
            pool: "fs".into(),
            lot: Some("sales".into()),
        },
    ])
    .unwrap()
}

async fn parked_calls_come_back_whole_in_park_order_and_by_pool(site: Site) {
    let s = site.open().await;
    assert!(s.parked(None).await.unwrap().is_empty());
    // Same park time: the channel decides, in byte order on both back ends.
    let (a, b, c, d) = (
        call("b-1", "701", 5),
        call("a-2", "702", 5),
        call("z-3", "5000", 1),
        call("B-4", "703", 5),
    );
    s.apply("ast", &[up(&a), up(&b), up(&d)], &[])
        .await
        .unwrap();
    s.apply("fs", &[up(&c)], &[]).await.unwrap();
    let all = s.parked(None).await.unwrap();
    let want = vec![
        ("fs".to_string(), c.clone()),
        ("ast".to_string(), d.clone()),
        ("ast".to_string(), b.clone()),
        ("ast".to_string(), a.clone()),
    ];
    assert_eq!(all, want);
    assert_eq!(
        s.parked(Some("ast")).await.unwrap(),
        want[1..].to_vec(),
        "by pool"
    );
    assert!(s.parked(Some("none")).await.unwrap().is_empty());
    // Changed in place: ringing back, a new deadline.
    let mut a2 = a.clone();
    a2.state = CallState::Ringback {
        leg: ChannelId::new("ring-1"),
        attempt: 1,
    };
    a2.attempts = 1;
    a2.deadline = 1_000_000;
    s.apply("ast", &[up(&a2), Change::Remove(d.channel.clone())], &[])
        .await
        .unwrap();
    let mut used = s.used_per_orbit().await.unwrap();
    used.sort();
    assert_eq!(used, ["5000", "701", "702"]);
    assert_eq!(
        s.parked(Some("ast")).await.unwrap(),
        vec![("ast".to_string(), b), ("ast".to_string(), a2)]
    );
    s.close().await;
}

async fn one_orbit_holds_one_call(site: Site) {
    let s = site.open().await;
    let a = call("a", "701", 1);
    s.apply(
        "ast",
        &[up(&a)],
        &[entry(LogKind::Parked, "a", Some("701"), None, 1)],
    )
    .await
    .unwrap();
    // Another call on 701, even from another pool: refused, and nothing of its step written.
    let e = s
        .apply(
            "fs",
            &[up(&call("b", "701", 2))],
            &[entry(LogKind::Parked, "b", Some("701"), None, 2)],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Sql(_)), "{e}");
    assert_eq!(
        s.parked(None).await.unwrap(),
        vec![("ast".to_string(), a.clone())]
    );
    assert_eq!(
        s.log(10).await.unwrap().len(),
        1,
        "the refused step's entry"
    );
    assert_eq!(
        s.log_counts().await.unwrap(),
        [("ast".to_string(), "parked".to_string(), 1)]
    );
    // Freed and taken again in one step: the removal comes first.
    let b = call("b", "701", 3);
    s.apply("ast", &[up(&b), Change::Remove(a.channel.clone())], &[])
        .await
        .unwrap();
    assert_eq!(s.parked(None).await.unwrap(), vec![("ast".to_string(), b)]);
    s.close().await;
}

async fn the_log_is_appended_read_by_id_and_pruned(site: Site) {
    let s = site.open().await;
    assert!(s.log_after(0, 10).await.unwrap().is_empty());
    assert_eq!(s.last_log_id().await.unwrap(), 0);
    assert_eq!(s.oldest_log_id().await.unwrap(), None);
    let log = [
        entry(LogKind::Parked, "c1", Some("701"), Some("sales"), 1_000),
        entry(LogKind::Parked, "c2", None, None, 2_000),
        entry(LogKind::Retrieved, "c1", Some("701"), Some("sales"), 3_000),
    ];
    s.apply("ast", &[], &log[..2]).await.unwrap();
    s.apply("ast", &[], &log[2..]).await.unwrap();
    let rows = s.log_after(0, 10).await.unwrap();
    assert_eq!(rows.len(), 3);
    for (r, e) in rows.iter().zip(&log) {
        assert_eq!(r.pool, "ast");
        assert_eq!(r.kind, e.kind.as_str());
        assert_eq!(r.at, e.at);
        assert_eq!(r.channel, e.channel.as_str());
        assert_eq!(r.orbit, e.orbit.map(|o| o.to_string()));
        assert_eq!(r.lot, e.lot);
        assert_eq!(r.detail, e.detail);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(
        s.log(2).await.unwrap(),
        rows[1..].to_vec(),
        "the newest, oldest first"
    );
    assert_eq!(s.log_after(ids[0], 1).await.unwrap(), rows[1..2].to_vec());
    assert!(s.log_after(ids[2], 10).await.unwrap().is_empty());
    assert_eq!(s.last_log_id().await.unwrap(), ids[2]);
    // Retrieved (bridged: a later park of c1 is a new one) or still parked: not hung up.
    assert!(!s.hung_up(&ChannelId::new("c1")).await.unwrap());
    assert!(!s.hung_up(&ChannelId::new("c2")).await.unwrap());
    // Pruned oldest first, only what is older than asked, in batches.
    assert_eq!(s.prune_log(2_500, 1).await.unwrap(), 1);
    assert_eq!(s.prune_log(2_500, 10).await.unwrap(), 1);
    assert_eq!(s.prune_log(2_500, 10).await.unwrap(), 0);
    assert_eq!(s.oldest_log_id().await.unwrap(), Some(ids[2]));
    // Emptied, the log still knows where its ids stand, and goes on after them.
    assert_eq!(s.prune_log(Millis::MAX, 10).await.unwrap(), 1);
    assert_eq!(s.oldest_log_id().await.unwrap(), None);
    assert_eq!(s.last_log_id().await.unwrap(), ids[2]);
    s.apply("ast", &[], &log[1..2]).await.unwrap();
    let next = s.log_after(0, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].id > ids[2], "{} after {}", next[0].id, ids[2]);
    // Disconnected: callpark hung c2 up, whatever came before.
    let gone = entry(LogKind::Disconnected, "c2", None, None, 4_000);
    s.apply("ast", &[], &[gone]).await.unwrap();
    assert!(s.hung_up(&ChannelId::new("c2")).await.unwrap());
    s.close().await;
}

async fn counters_are_kept_per_commit_and_outlive_pruning(site: Site) {
    let s = site.open().await;
    // c1 parked twice (a ringback re-park counts from the newest park), retrieved after
    // 40 s; c2 in lot `sales` retrieved after 700 s; c3 retrieved with no park logged.
    s.apply(
        "ast",
        &[],
        &[
            entry(LogKind::Parked, "c1", Some("701"), None, 1_000),
            entry(LogKind::Parked, "c2", Some("702"), Some("sales"), 1_000),
        ],
    )
    .await
    .unwrap();
    s.apply(
        "ast",
        &[],
        &[
            entry(LogKind::Parked, "c1", Some("701"), None, 5_000),
            entry(LogKind::Retrieved, "c1", Some("701"), None, 45_000),
            entry(
                LogKind::Retrieved,
                "c2",
                Some("702"),
                Some("sales"),
                701_000,
            ),
            entry(LogKind::Retrieved, "c3", None, None, 9_000),
        ],
    )
    .await
    .unwrap();
    s.apply(
        "fs",
        &[],
        &[entry(LogKind::Parked, "c9", None, None, 9_000)],
    )
    .await
    .unwrap();
    let counts = vec![
        ("ast".to_string(), "parked".to_string(), 3),
        ("ast".to_string(), "retrieved".to_string(), 3),
        ("fs".to_string(), "parked".to_string(), 1),
    ];
    assert_eq!(s.log_counts().await.unwrap(), counts);
    let waits = vec![
        WaitBucket {
            pool: "ast".into(),
            lot: "general".into(),
            le_ms: 60_000,
            n: 1,
            sum_ms: 40_000,
        },
        WaitBucket {
            pool: "ast".into(),
            lot: "sales".into(),
            le_ms: i64::MAX,
            n: 1,
            sum_ms: 700_000,
        },
    ];
    assert_eq!(s.retrieve_waits().await.unwrap(), waits);
    assert_eq!(s.prune_log(Millis::MAX, 100).await.unwrap(), 7);
    assert_eq!(s.log_counts().await.unwrap(), counts);
    assert_eq!(s.retrieve_waits().await.unwrap(), waits);
    s.close().await;
}

async fn media_records_are_kept_by_name(site: Site) {
    let s = site.open().await;
    let m = |name: &str, sum: &str| Media {
        name: name.into(),
        path: format!("/var/lib/callpark/moh/{name}.wav"),
        sha256: sum.into(),
        size: 4_000_000_000,
    };
    s.put_media(&m("music_on_hold", "aa"), 1).await.unwrap();
    s.put_media(&m("music_on_hold/sales", "bb"), 2)
        .await
        .unwrap();
    s.put_media(&m("music_on_hold", "cc"), 3).await.unwrap();
    assert_eq!(
        s.media().await.unwrap(),
        vec![m("music_on_hold", "cc"), m("music_on_hold/sales", "bb")]
    );
    s.close().await;
}

async fn a_reopened_store_keeps_everything(site: Site) {
    let s = site.open().await;
    let (a, b) = (call("a", "701", 1), call("b", "5000", 2));
    s.apply(
        "ast",
        &[up(&a)],
        &[entry(LogKind::Parked, "a", Some("701"), None, 1)],
    )
    .await
    .unwrap();
    s.apply(
        "fs",
        &[up(&b)],
        &[entry(LogKind::Parked, "b", Some("5000"), None, 2)],
    )
    .await
    .unwrap();
    s.put_media(
        &Media {
            name: "music_on_hold".into(),
            path: "/x.wav".into(),
            sha256: "ab".into(),
            size: 3,
        },
        1,
    )
    .await
    .unwrap();
    s.save_orbit_table(&table()).await.unwrap();
    let (calls, log, counts, media) = (
        s.parked(None).await.unwrap(),
        s.log(10).await.unwrap(),
        s.log_counts().await.unwrap(),
        s.media().await.unwrap(),
    );
    s.close().await;
    // A restart of the service, and of PostgreSQL itself.
    site.restart_server();
    let s = site.open().await;
    assert_eq!(s.parked(None).await.unwrap(), calls);
    assert_eq!(s.log(10).await.unwrap(), log);
    assert_eq!(s.log_counts().await.unwrap(), counts);
    assert_eq!(s.media().await.unwrap(), media);
    // The timers' deadlines are what was stored, to the ms.
    assert_eq!(calls[0].1.deadline, a.deadline);
    s.close().await;
}

/// An SQLite store as a site has it: calls, a log with a pruned start, counters, a music
/// file's record and the orbit table.
async fn sqlite_site(path: &std::path::Path) -> (Vec<(String, ParkedCall)>, i64) {
    let s = Store::open(path).await.unwrap();
    s.save_orbit_table(&table()).await.unwrap();
    let mut calls = Vec::new();
    for i in 0..30u32 {
        let c = call(
            &format!("ch-{i:02}"),
            &(701 + i).to_string(),
            1_000 + i64::from(i),
        );
        s.apply(
            "ast",
            &[up(&c)],
            &[entry(
                LogKind::Parked,
                c.channel.as_str(),
                Some(&(701 + i).to_string()),
                None,
                c.parked_at,
            )],
        )
        .await
        .unwrap();
        calls.push(c);
    }
    // Ten retrieved (and their entries pruned below), twenty still parked.
    for c in &calls[..10] {
        s.apply(
            "ast",
            &[Change::Remove(c.channel.clone())],
            &[entry(
                LogKind::Retrieved,
                c.channel.as_str(),
                None,
                None,
                50_000,
            )],
        )
        .await
        .unwrap();
    }
    s.apply(
        "ast",
        &[],
        &[entry(LogKind::Disconnected, "gone", None, None, 60_000)],
    )
    .await
    .unwrap();
    assert_eq!(s.prune_log(1_005, 100).await.unwrap(), 5);
    s.put_media(
        &Media {
            name: "music_on_hold".into(),
            path: "/var/lib/callpark/moh/hold.wav".into(),
            sha256: "ab".into(),
            size: 3,
        },
        1,
    )
    .await
    .unwrap();
    let parked = s.parked(None).await.unwrap();
    let last = s.last_log_id().await.unwrap();
    s.close().await;
    (parked, last)
}

fn callpark(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_callpark"))
        .args(args)
        .env("CALLPARK_CONFIG", "/nonexistent/callpark.toml")
        .output()
        .unwrap()
}

#[tokio::test]
async fn migrate_copies_a_sqlite_store_into_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("callpark.db");
    let (parked, last) = sqlite_site(&file).await;
    let source = Store::open(&file).await.unwrap();
    let (log, counts, waits, media) = (
        source.log(1000).await.unwrap(),
        source.log_counts().await.unwrap(),
        source.retrieve_waits().await.unwrap(),
        source.media().await.unwrap(),
    );
    source.close().await;
    assert_eq!(parked.len(), 20);
    assert_eq!(log.len(), 36);

    let pg = PgCluster::start();
    let url = pg.create_db("site");
    let out = callpark(&[
        "migrate",
        "--from",
        &format!("sqlite:{}", file.display()),
        "--to",
        &url,
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "20 parked calls, 36 log entries, 3 metric counters, 1 time-to-retrieve buckets, \
             1 music file records, 2 orbit ranges"
        ),
        "{stdout}"
    );

    let s = Store::open_postgres(&PgUrl::new(&url).unwrap())
        .await
        .unwrap();
    assert_eq!(
        s.parked(None).await.unwrap(),
        parked,
        "the calls read back equal"
    );
    assert_eq!(s.log(1000).await.unwrap(), log, "the log with its ids");
    assert_eq!(s.log_counts().await.unwrap(), counts);
    assert_eq!(s.retrieve_waits().await.unwrap(), waits);
    assert_eq!(s.media().await.unwrap(), media);
    assert_eq!(s.last_log_id().await.unwrap(), last);
    // The orbits stay held: a second call on a parked call's orbit is refused.
    assert!(
        s.apply("ast", &[up(&call("new", "711", 9))], &[])
            .await
            .is_err()
    );
    // New entries go on after the copied ids.
    s.apply(
        "ast",
        &[],
        &[entry(LogKind::Parked, "new", None, None, 70_000)],
    )
    .await
    .unwrap();
    let next = s.log_after(last, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].id, last + 1);
    s.close().await;

    // Done once: a second run refuses the target, which now holds calls and a log.
    let again = callpark(&[
        "migrate",
        "--from",
        &format!("sqlite:{}", file.display()),
        "--to",
        &url,
    ]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("already holds 20 parked calls and 37 log entries")
            && stderr.contains("empty store only"),
        "{stderr}"
    );
}

#[tokio::test]
async fn migrate_refuses_a_target_with_a_log_and_leaves_it_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("callpark.db");
    sqlite_site(&file).await;
    let pg = PgCluster::start();
    let url = pg.create_db("used");
    let target = Store::open_postgres(&PgUrl::new(&url).unwrap())
        .await
        .unwrap();
    target
        .apply("other", &[], &[entry(LogKind::Parked, "x", None, None, 1)])
        .await
        .unwrap();
    let source = Store::open(&file).await.unwrap();
    let e = source
        .copy_into(&target, &PgUrl::new(&url).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::TargetNotEmpty {
                calls: 0,
                entries: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(target.parked(None).await.unwrap().is_empty());
    assert_eq!(target.log(10).await.unwrap().len(), 1);
    source.close().await;
    target.close().await;
}

#[tokio::test]
async fn migrate_says_what_is_wrong_with_its_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.db");
    let out = callpark(&[
        "migrate",
        "--from",
        &format!("sqlite:{}", missing.display()),
        "--to",
        "postgres://cp@127.0.0.1:1/x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no SQLite store at"));
    assert!(!missing.exists(), "no store made where none was");
    let out = callpark(&["migrate", "--from", "sqlite:x.db", "--to", "mysql://db/x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--to names a PostgreSQL database"));
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn an_unreachable_server_is_named_without_the_password() {
    let port = closed_port();
    let url = PgUrl::new(&format!("postgres://cp:s3cret@127.0.0.1:{port}/callpark")).unwrap();
    let e = Store::open_postgres(&url).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, StoreError::PgRefused { .. }), "{msg}");
    assert!(
        msg.contains(&format!(
            "PostgreSQL at 127.0.0.1:{port} refused the connection"
        )) && msg.contains("is it running"),
        "{msg}"
    );
    assert!(!msg.contains("s3cret"), "{msg}");

    // The same through the service's configuration: `callpark parked` says it, not the secret.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("callpark.toml");
    std::fs::write(
        &cfg,
        format!(
            "[service]\ndata_dir = \"{}\"\ndatabase = \"postgres://cp:s3cret@127.0.0.1:{port}/callpark\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_callpark"))
        .args(["--config", cfg.to_str().unwrap(), "parked"])
        .env("CALLPARK_LOG", "debug")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("refused the connection"), "{all}");
    assert!(!all.contains("s3cret"), "{all}");
    assert!(
        !dir.path().join("callpark.db").exists(),
        "no SQLite store instead"
    );
}

#[tokio::test]
async fn a_wrong_database_or_url_is_named() {
    let pg = PgCluster::start();
    let url = PgUrl::new(&pg.url("nosuchdb")).unwrap();
    let e = Store::open_postgres(&url).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::PgNoDatabase { database, .. } if database == "nosuchdb"),
        "{e}"
    );
    assert!(e.to_string().contains("createdb"), "{e}");
    let bad = PgUrl::new("postgres://cp:s3cret@127.0.0.1:notaport/x").unwrap();
    let e = Store::open_postgres(&bad).await.unwrap_err();
    assert!(matches!(e, StoreError::PgUrl { .. }), "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
}

/// Pool leases (several nodes on one PostgreSQL): one holder at a time; a lease that runs out
/// is taken with the next epoch; the old holder can neither renew it nor write through its
/// fenced store, and the new holder can.
#[tokio::test]
async fn a_lease_has_one_holder_and_a_takeover_fences_the_old_one_out() {
    let site = Site::postgres();
    let (a, b) = (site.open().await, site.open().await);
    let ttl = 400;
    let la = a
        .take_lease("pbx-a", "node-a", ttl)
        .await
        .unwrap()
        .expect("free");
    assert_eq!(la.epoch, 1);
    assert_eq!(
        b.take_lease("pbx-a", "node-b", ttl).await.unwrap(),
        None,
        "held"
    );
    assert!(a.renew_lease(&la, ttl).await.unwrap());
    // Another pool is leased on its own.
    let other = b
        .take_lease("pbx-b", "node-b", ttl)
        .await
        .unwrap()
        .expect("free");
    assert_eq!(other.epoch, 1);

    let fenced_a = a.fenced(la.clone());
    let c1 = call("c1", "701", 1_000);
    fenced_a.apply("pbx-a", &[up(&c1)], &[]).await.unwrap();

    // A stops renewing: B takes it once it runs out, with the next epoch.
    tokio::time::sleep(std::time::Duration::from_millis(ttl as u64 + 100)).await;
    let lb = b
        .take_lease("pbx-a", "node-b", ttl)
        .await
        .unwrap()
        .expect("ran out");
    assert_eq!((lb.holder.as_str(), lb.epoch), ("node-b", 2));
    assert!(!a.renew_lease(&la, ttl).await.unwrap(), "A's epoch is over");
    let c2 = call("c2", "702", 2_000);
    match fenced_a.apply("pbx-a", &[up(&c2)], &[]).await {
        Err(StoreError::Fenced {
            pool,
            holder,
            epoch,
        }) => {
            assert_eq!(
                (pool.as_str(), holder.as_str(), epoch),
                ("pbx-a", "node-a", 1)
            )
        }
        other => panic!("A's write after the takeover: {other:?}"),
    }
    let fenced_b = b.fenced(lb.clone());
    fenced_b
        .apply("pbx-a", &[Change::Remove(c1.channel.clone())], &[])
        .await
        .unwrap();
    assert!(
        b.parked(Some("pbx-a")).await.unwrap().is_empty(),
        "B's write landed, A's did not"
    );
    let rows = b.leases().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0].pool.as_str(),
            rows[0].holder.as_str(),
            rows[0].epoch
        ),
        ("pbx-a", "node-b", 2)
    );
    assert!(rows[0].left_ms > 0 && rows[0].left_ms <= ttl, "{rows:?}");

    // Given back, it is taken at once, by anyone.
    b.release_lease(&lb).await.unwrap();
    let again = a
        .take_lease("pbx-a", "node-a", ttl)
        .await
        .unwrap()
        .expect("given back");
    assert_eq!(again.epoch, 3);
}

/// A node's sign of life, for `prefer`; and an SQLite store has no leases (one node).
#[tokio::test]
async fn nodes_are_seen_alive_and_sqlite_has_no_leases() {
    let site = Site::postgres();
    let s = site.open().await;
    assert!(!s.node_alive("node-a", 1000).await.unwrap(), "never seen");
    s.node_seen("node-a").await.unwrap();
    assert!(s.node_alive("node-a", 1000).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !s.node_alive("node-a", 200).await.unwrap(),
        "seen too long ago"
    );
    assert!(s.is_postgres());

    let file = Site::sqlite();
    let f = file.open().await;
    assert!(!f.is_postgres());
    match f.take_lease("pbx-a", "node-a", 1000).await {
        Err(e @ StoreError::NotPostgresFor { .. }) => {
            assert!(e.to_string().contains("postgres://"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}
