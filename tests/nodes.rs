//! Several callpark nodes on one real PostgreSQL (a throwaway cluster), end to end on both
//! testbeds: each scenario is written once against [`Testbed`] and run on Asterisk and on
//! FreeSWITCH. One node drives the pool under its lease while the other stands by; when the
//! holder is killed or frozen, the standby takes the lease with the next epoch, adopts every
//! parked call, and fires each stored deadline once. A frozen holder that wakes after the
//! takeover acts on the PBX no more.

use callpark_testkit as support;

use std::time::Duration;

use callpark::store::{LeaseRow, Location, Store};
use support::postgres::PgCluster;
use support::testbed::*;
use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

async fn asterisk() -> AsteriskTestbed {
    AsteriskTestbed::take().await
}

async fn freeswitch() -> FreeswitchTestbed {
    FreeswitchTestbed::take().await
}

/// The pool each testbed's setup configures.
fn pool_of(pbx: &impl Testbed) -> &'static str {
    match pbx.link() {
        "ARI" => "pbx-a",
        _ => "pbx-b",
    }
}

/// Two nodes of one site: `node-a` drives the pool, `node-b` stands by. Each has its admin
/// API, on `api[0]` and `api[1]`.
struct Site {
    pg: PgCluster,
    url: String,
    a: Callpark,
    b: Callpark,
    api: [u16; 2],
    _tokens: Vec<tempfile::TempDir>,
}

const TOKEN: &str = "nodes-test-token-0123456789";

async fn site(pbx: &impl Testbed, park: &str) -> Site {
    let pg = PgCluster::start();
    let url = pg.create_db("callpark");
    let (mut api, mut tokens) = ([0u16; 2], Vec::new());
    let mut node = |i: usize, name: &str| {
        let mut s = pbx.setup(park);
        s.service = format!("database = \"{url}\"\nnode = \"{name}\"\n");
        let (toml, port, dir) = api_table(TOKEN);
        s.extra.push_str(&toml);
        api[i] = port;
        tokens.push(dir);
        s
    };
    let (sa, sb) = (node(0, "node-a"), node(1, "node-b"));
    let a = Callpark::start_node(&sa).await;
    wait_for("node-a to drive the pool", S(20), || async {
        let t = a.log_text();
        (t.contains("lease taken") && t.contains(&format!("connected to {}", pbx.link())))
            .then_some(())
    })
    .await;
    let b = Callpark::start_node(&sb).await;
    Site {
        pg,
        url,
        a,
        b,
        api,
        _tokens: tokens,
    }
}

impl Site {
    async fn leases(&self) -> Vec<LeaseRow> {
        let s = Store::open_at(&Location::from_setting(&self.url))
            .await
            .unwrap();
        let l = s.leases().await.unwrap();
        s.close().await;
        l
    }

    async fn lease(&self, pool: &str) -> LeaseRow {
        self.leases()
            .await
            .into_iter()
            .find(|l| l.pool == pool)
            .unwrap_or_else(|| panic!("no lease row for {pool}"))
    }
}

/// Waits until `node`'s log shows it took the lease and connected `times` times in all.
async fn wait_drives(node: &Callpark, link: &str, times: usize, timeout: Duration) {
    let connected = format!("connected to {link}");
    wait_for(
        "the node to take the lease and connect",
        timeout,
        || async {
            let t = node.log_text();
            (t.matches("lease taken").count() >= times && t.matches(&connected).count() >= times)
                .then_some(())
        },
    )
    .await;
}

/// The standby takes over a killed holder's pool: the same calls with the same deadlines, a
/// retrieve through it, and every other call rung back once, at its stored deadline.
async fn a_killed_holder_is_taken_over(pbx: &impl Testbed) {
    let mut site = site(
        pbx,
        "pickup_timeout = \"20s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"10s\"\n",
    )
    .await;
    let pool = pool_of(pbx);
    tokio::time::sleep(S(2)).await;
    assert!(
        !site.b.log_text().contains("lease taken"),
        "node-b stands by while node-a renews"
    );
    let first = site.lease(pool).await;
    assert_eq!((first.holder.as_str(), first.epoch), ("node-a", 1));

    let mut callers = Vec::new();
    for i in 1..=4 {
        let caller = pbx
            .park_by_transfer(&format!("p{i}"), &format!("C{i}"), &format!("55501{i:02}"))
            .await;
        site.a.wait_parked_on(&pbx.orbit(i)).await;
        callers.push(caller);
    }
    let mut before = site.a.parked().await;
    before.sort_by_key(|c| c.orbit);

    site.a.kill();
    let killed = std::time::Instant::now();
    wait_drives(&site.b, pbx.link(), 1, S(15)).await;
    let took = killed.elapsed();
    // The lease lasts 3 s after its last renewal; the standby polls every 0.5 s.
    assert!(took < S(8), "takeover took {took:?}");
    let now = site.lease(pool).await;
    assert_eq!((now.holder.as_str(), now.epoch), ("node-b", 2));

    let mut after = site.b.parked().await;
    after.sort_by_key(|c| c.orbit);
    assert_eq!(
        before, after,
        "same calls, orbits and deadlines after the takeover"
    );
    for c in &callers {
        assert!(pbx.exists(&c.id).await, "the parked channel is still there");
    }

    let retriever = pbx.dial_orbit(&pbx.orbit(2), "Dave", "202").await;
    pbx.wait_bridged(
        "orbit 2 retrieved through node-b",
        &callers[1].id,
        &retriever.id,
    )
    .await;

    let pending: Vec<_> = before
        .iter()
        .filter(|c| c.channel.as_str() != callers[1].id)
        .collect();
    let last = pending.iter().map(|c| c.deadline).max().unwrap();
    let wait = (last - callpark::service::now_ms()).max(0) as u64 + 5_000;
    for c in &pending {
        site.b
            .wait_log(
                c.channel.as_str(),
                "ringback_started",
                Duration::from_millis(wait),
            )
            .await;
    }
    let rows = site.b.log_rows().await;
    for c in &pending {
        let rings: Vec<_> = rows
            .iter()
            .filter(|r| r.kind == "ringback_started" && r.channel == c.channel.as_str())
            .collect();
        assert_eq!(rings.len(), 1, "one ringback for {}: {rings:?}", c.channel);
        assert!(
            (rings[0].at - c.deadline).abs() < 1_500,
            "ringback of {} at {}, deadline {}",
            c.channel,
            rings[0].at,
            c.deadline
        );
    }
    for c in &pending {
        site.b
            .wait_log(c.channel.as_str(), "reconnected", S(15))
            .await;
    }
    assert!(site.b.parked().await.is_empty());
}

#[tokio::test]
async fn asterisk_a_killed_holder_is_taken_over_and_each_deadline_fires_once() {
    a_killed_holder_is_taken_over(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_a_killed_holder_is_taken_over_and_each_deadline_fires_once() {
    a_killed_holder_is_taken_over(&freeswitch().await).await;
}

/// The holder frozen (SIGSTOP) past its lease: the standby takes over; woken (SIGCONT), the
/// old holder finds its lease gone and drops its PBX connection without a command. The calls
/// stay parked as the new holder keeps them, a retrieve works, and the one ringback due comes
/// once. Given back in order (SIGTERM), the pool returns to the other node at once.
async fn a_frozen_holder_wakes_fenced(pbx: &impl Testbed) {
    let mut site = site(
        pbx,
        "pickup_timeout = \"25s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"10s\"\n",
    )
    .await;
    let pool = pool_of(pbx);
    let mut callers = Vec::new();
    for i in 1..=2 {
        let caller = pbx
            .park_by_transfer(&format!("p{i}"), &format!("F{i}"), &format!("55502{i:02}"))
            .await;
        site.a.wait_parked_on(&pbx.orbit(i)).await;
        callers.push(caller);
    }
    let before = site.a.parked().await;

    site.a.freeze();
    wait_drives(&site.b, pbx.link(), 1, S(15)).await;
    assert_eq!(site.lease(pool).await.epoch, 2);
    site.a.thaw();
    wait_for("node-a to find its lease lost", S(10), || async {
        site.a.log_text().contains("lease lost").then_some(())
    })
    .await;
    wait_for("node-a to drop its PBX connection", S(10), || async {
        site.a
            .log_text()
            .contains("connection dropped, nothing more sent")
            .then_some(())
    })
    .await;
    // A moment for anything node-a might still do, then the calls are as node-b keeps them.
    tokio::time::sleep(S(2)).await;
    for c in &callers {
        assert!(pbx.exists(&c.id).await, "{} still there", c.id);
    }
    let mut now = site.b.parked().await;
    now.sort_by_key(|c| c.orbit);
    assert_eq!(now.len(), 2);
    for (n, b) in now.iter().zip(before.iter()) {
        assert_eq!(
            (n.channel.clone(), n.orbit, n.deadline),
            (b.channel.clone(), b.orbit, b.deadline)
        );
    }
    let retriever = pbx.dial_orbit(&pbx.orbit(1), "Dave", "202").await;
    pbx.wait_bridged(
        "orbit 1 retrieved through node-b",
        &callers[0].id,
        &retriever.id,
    )
    .await;
    let other = &callers[1].id;
    let deadline = now
        .iter()
        .find(|c| c.channel.as_str() == other)
        .unwrap()
        .deadline;
    let wait = (deadline - callpark::service::now_ms()).max(0) as u64 + 5_000;
    site.b
        .wait_log(other, "ringback_started", Duration::from_millis(wait))
        .await;
    let rows = site.b.log_rows().await;
    assert_eq!(
        rows.iter()
            .filter(|r| r.kind == "ringback_started" && r.channel == *other)
            .count(),
        1,
        "one ringback"
    );
    // node-a, still running, stands by: node-b stopping in order hands the pool back at once.
    site.b.signal("TERM");
    site.b.wait_exit(S(15)).await;
    let handed = std::time::Instant::now();
    wait_drives(&site.a, pbx.link(), 2, S(10)).await;
    assert!(
        handed.elapsed() < S(3),
        "given back: {:?}",
        handed.elapsed()
    );
    assert_eq!(site.lease(pool).await.epoch, 3);
}

#[tokio::test]
async fn asterisk_a_frozen_holder_wakes_fenced_and_sends_nothing() {
    a_frozen_holder_wakes_fenced(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_a_frozen_holder_wakes_fenced_and_sends_nothing() {
    a_frozen_holder_wakes_fenced(&freeswitch().await).await;
}

/// Any node answers: the standby's API lists the calls the holder parked, carries out a
/// hang-up through the holder, says 404 for an empty orbit as the holder would, and its
/// metrics name the holder.
async fn any_node_answers(pbx: &impl Testbed) {
    let site = site(pbx, "pickup_timeout = \"60s\"\n").await;
    let pool = pool_of(pbx);
    let mut callers = Vec::new();
    for i in 1..=2 {
        let caller = pbx
            .park_by_transfer(&format!("p{i}"), &format!("O{i}"), &format!("55503{i:02}"))
            .await;
        site.a.wait_parked_on(&pbx.orbit(i)).await;
        callers.push(caller);
    }
    let http = reqwest::Client::new();
    let on_b = |path: &str| format!("http://127.0.0.1:{}{path}", site.api[1]);
    let listed: serde_json::Value = http
        .get(on_b("/api/v1/parked"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let orbits: Vec<&str> = listed
        .as_array()
        .unwrap_or_else(|| listed["calls"].as_array().expect("a list of calls"))
        .iter()
        .filter_map(|c| c["orbit"].as_str())
        .collect();
    assert_eq!(orbits, [pbx.orbit(1), pbx.orbit(2)], "{listed}");

    let r = http
        .delete(on_b(&format!("/api/v1/parked/{}", pbx.orbit(1))))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{:?}", r.text().await);
    pbx.wait_gone("the call hung up through node-a", &callers[0].id, S(10))
        .await;
    assert!(pbx.exists(&callers[1].id).await, "the other call stays");
    let r = http
        .delete(on_b(&format!("/api/v1/parked/{}", pbx.orbit(9))))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "an empty orbit, as the holder says");

    let metrics = http
        .get(on_b("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let holder = format!("callpark_pool_lease_holder{{pool=\"{pool}\",node=\"node-a\"}} 1");
    assert!(metrics.lines().any(|l| l == holder), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l == format!("callpark_pool_lease_takeovers_total{{pool=\"{pool}\"}} 0")),
        "{metrics}"
    );
}

#[tokio::test]
async fn asterisk_any_node_answers_for_every_pool() {
    any_node_answers(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_any_node_answers_for_every_pool() {
    any_node_answers(&freeswitch().await).await;
}

/// PostgreSQL stopped for longer than a lease while calls are parked and their deadlines pass:
/// the holder stops acting on the PBX (it cannot renew), the calls stay parked there, and once
/// PostgreSQL is back a node takes the lease, adopts them and rings each back once.
async fn a_postgresql_outage_loses_nothing(pbx: &impl Testbed) {
    let site = site(
        pbx,
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"10s\"\n",
    )
    .await;
    let pool = pool_of(pbx);
    let mut callers = Vec::new();
    for i in 1..=2 {
        let caller = pbx
            .park_by_transfer(&format!("p{i}"), &format!("Q{i}"), &format!("55504{i:02}"))
            .await;
        site.a.wait_parked_on(&pbx.orbit(i)).await;
        callers.push(caller);
    }
    let before = site.a.parked().await;
    let last = before.iter().map(|c| c.deadline).max().unwrap();
    site.pg.stop();
    wait_for("node-a to stop acting without its lease", S(10), || async {
        site.a
            .log_text()
            .contains("connection dropped, nothing more sent")
            .then_some(())
    })
    .await;
    // Past every deadline, with nobody able to commit a ringback.
    let until_last = (last - callpark::service::now_ms()).max(0) as u64 + 2_000;
    tokio::time::sleep(Duration::from_millis(until_last)).await;
    for c in &callers {
        assert!(pbx.exists(&c.id).await, "{} stays parked on the PBX", c.id);
    }
    site.pg.start_again();
    let back = std::time::Instant::now();
    wait_for("a node to drive the pool again", S(20), || async {
        let l = site.leases().await;
        l.iter()
            .find(|l| l.pool == pool && l.epoch >= 2 && l.left_ms > 0)
            .map(|_| ())
    })
    .await;
    for c in &before {
        site.a
            .wait_log(c.channel.as_str(), "ringback_started", S(20))
            .await;
    }
    let took = back.elapsed();
    assert!(
        took < S(15),
        "ringbacks {took:?} after PostgreSQL came back"
    );
    let rows = site.a.log_rows().await;
    for c in &before {
        assert_eq!(
            rows.iter()
                .filter(|r| r.kind == "ringback_started" && r.channel == c.channel.as_str())
                .count(),
            1,
            "one ringback for {}",
            c.channel
        );
    }
}

#[tokio::test]
async fn asterisk_a_postgresql_outage_loses_nothing() {
    a_postgresql_outage_loses_nothing(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_a_postgresql_outage_loses_nothing() {
    a_postgresql_outage_loses_nothing(&freeswitch().await).await;
}

/// Three nodes, two pools on both PBXes, each pool with a home (`prefer`). The one node
/// running at first drives both; each goes home as its node comes up; a killed home's pool
/// moves to another node and comes back when the home is up again. Calls parked all along
/// stay parked, each once in the log, and are retrieved at the end.
#[tokio::test]
async fn three_nodes_two_pools_go_home_and_move_when_their_home_dies() {
    let ast = asterisk().await;
    let fs = FreeswitchTestbed::beside(&ast).await;
    let pg = PgCluster::start();
    let url = pg.create_db("callpark");
    let node = |name: &str| Setup {
        asterisk: true,
        ranges: vec![("701", "799")],
        fs_ranges: vec![("601", "699")],
        pbx_extra: "prefer = \"node-a\"\n",
        fs_extra: "prefer = \"node-b\"\n",
        park: "pickup_timeout = \"120s\"\n".into(),
        service: format!("database = \"{url}\"\nnode = \"{name}\"\n"),
        ..Setup::default()
    };
    let leases = || async {
        let s = Store::open_at(&Location::from_setting(&url)).await.unwrap();
        let l: Vec<(String, String, i64)> = s
            .leases()
            .await
            .unwrap()
            .into_iter()
            .filter(|l| l.left_ms > 0)
            .map(|l| (l.pool, l.holder, l.epoch))
            .collect();
        s.close().await;
        l
    };
    let holders = |want: [&'static str; 2]| {
        let leases = &leases;
        async move {
            wait_for(
                &format!("pbx-a and pbx-b held by {want:?}"),
                S(15),
                || async {
                    let l = leases().await;
                    let by = |pool: &str| {
                        l.iter()
                            .find(|(p, _, _)| p == pool)
                            .map(|(_, h, _)| h.clone())
                    };
                    (by("pbx-a").as_deref() == Some(want[0])
                        && by("pbx-b").as_deref() == Some(want[1]))
                    .then_some(())
                },
            )
            .await
        }
    };

    let c = Callpark::start_node(&node("node-c")).await;
    holders(["node-c", "node-c"]).await;
    wait_drives(&c, "ARI", 1, S(15)).await;
    wait_drives(&c, "FreeSWITCH", 1, S(15)).await;
    let on_ast = ast.park_by_transfer("p1", "Ann", "5550501").await;
    c.wait_parked_on("701").await;
    let on_fs = fs.park_by_transfer("p1", "Fay", "5550502").await;
    c.wait_parked_on("601").await;

    // Each pool goes home as its node comes up.
    let mut a = Callpark::start_node(&node("node-a")).await;
    let b = Callpark::start_node(&node("node-b")).await;
    holders(["node-a", "node-b"]).await;
    assert_eq!(
        c.log_text()
            .matches("pool handed to its preferred node")
            .count(),
        2,
        "node-c handed both pools over"
    );
    wait_drives(&a, "ARI", 1, S(15)).await;
    wait_drives(&b, "FreeSWITCH", 1, S(15)).await;

    // node-a dies: its pool moves (to node-b or node-c), and comes home when it is back.
    a.kill();
    wait_for("pbx-a taken over", S(15), || async {
        let l = leases().await;
        l.iter()
            .find(|(p, h, e)| p == "pbx-a" && h != "node-a" && *e == 3)
            .map(|_| ())
    })
    .await;
    a.spawn_until_logged("pools are driven under leases").await;
    holders(["node-a", "node-b"]).await;
    let l = leases().await;
    assert!(l.contains(&("pbx-a".into(), "node-a".into(), 4)), "{l:?}");
    assert!(l.contains(&("pbx-b".into(), "node-b".into(), 2)), "{l:?}");
    wait_drives(&a, "ARI", 2, S(15)).await;

    // Both calls were parked all along, once each, and are retrieved now.
    assert!(ast.exists(&on_ast.id).await && fs.exists(&on_fs.id).await);
    let r1 = ast.dial_orbit("701", "Dave", "202").await;
    ast.wait_bridged("701 retrieved", &on_ast.id, &r1.id).await;
    let r2 = fs.dial_orbit("601", "Dave", "202").await;
    fs.wait_bridged("601 retrieved", &on_fs.id, &r2.id).await;
    for ch in [&on_ast.id, &on_fs.id] {
        c.wait_log(ch, "retrieved", S(10)).await;
        let kinds = c.kinds_of(ch).await;
        assert_eq!(
            kinds.iter().filter(|k| *k == "parked").count(),
            1,
            "{ch}: {kinds:?}"
        );
    }
    drop(b);
}

/// Under systemd (`Type=notify`, `WatchdogSec`), a node standing by is ready and alive: it
/// says READY=1 without driving any pool and keeps pinging the watchdog, so systemd never
/// restarts a healthy standby.
#[tokio::test]
async fn a_standby_node_is_ready_and_pings_the_watchdog() {
    let ast = asterisk().await;
    let pg = PgCluster::start();
    let url = pg.create_db("callpark");
    let mut sa = ast.setup("pickup_timeout = \"60s\"\n");
    sa.service = format!("database = \"{url}\"\nnode = \"node-a\"\n");
    let a = Callpark::start_node(&sa).await;
    wait_drives(&a, "ARI", 1, S(15)).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = tokio::net::UnixDatagram::bind(&path).unwrap();
    let got: std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, String)>>> =
        Default::default();
    {
        let got = got.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf).await {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                got.lock().unwrap().push((std::time::Instant::now(), msg));
            }
        });
    }
    let watchdog = S(2);
    let mut sb = ast.setup("pickup_timeout = \"60s\"\n");
    sb.service = format!("database = \"{url}\"\nnode = \"node-b\"\n");
    sb.env = vec![
        ("NOTIFY_SOCKET".into(), path.display().to_string()),
        ("WATCHDOG_USEC".into(), watchdog.as_micros().to_string()),
    ];
    let b = Callpark::start_node(&sb).await;
    let lines = |line: &str| -> Vec<std::time::Instant> {
        got.lock()
            .unwrap()
            .iter()
            .filter(|(_, m)| m.lines().any(|l| l == line))
            .map(|(t, _)| *t)
            .collect()
    };
    wait_for("READY=1 from the standby", S(10), || async {
        (!lines("READY=1").is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(S(6)).await;
    let pings = lines("WATCHDOG=1");
    assert!(pings.len() >= 4, "{} pings in 6 s", pings.len());
    for w in pings.windows(2) {
        assert!(w[1] - w[0] < watchdog, "pings {:?} apart", w[1] - w[0]);
    }
    assert!(
        !b.log_text().contains("lease taken"),
        "node-b stood by all along"
    );
    drop(a);
}
