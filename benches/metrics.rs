//! The cost of a `/metrics` scrape and of pruning the event log, against a store holding N
//! park/retrieve pairs (2N log entries). The metrics come from counters kept as entries are
//! committed, so a scrape should cost the same at 1,000 entries and at 20 million: the target
//! is a median under 10 ms at 10 million pairs.
//!
//! The store is filled in bulk (one `INSERT ... SELECT` over a recursive counter, the channel
//! index dropped meanwhile and rebuilt after), with the counters set to what committing those
//! entries one by one would have made them. Then the real API is served on loopback and
//! scraped `--scrapes` times (also `GET /api/v1/parked`, with 100 calls parked). Then the log
//! is pruned in the service's batches
//! (`service::PRUNE_BATCH`), timing each batch, while a stand-in pool commits a park every
//! 10 ms, timing each commit: its latency with and without pruning next to it. The scrape is
//! timed again after the prune. Last, `--old` times, once, the two queries the scrape made
//! before the counters (an aggregate of the whole log and its self-join), for comparison: last
//! because they read the whole database and write large temporary files, whose write-back
//! stalled the next writes for seconds when they ran before the prune.
//!
//! Run: `cargo bench --bench metrics [-- --pairs N --scrapes K --prune ROWS --old]` (default
//! 1,000,000 pairs, 200 scrapes, pruning 200,000 entries; `CALLPARK_BENCH_PAIRS` also sets N,
//! up to 10,000,000 and more); under `cargo test` it runs with 1,000 pairs. The database is
//! written under `CALLPARK_BENCH_DIR` (default: the system's temporary directory); 10 million
//! pairs take about 3 GB.

use std::sync::Arc;
use std::time::{Duration, Instant};

use callpark::api::{ApiState, serve};
use callpark::config::Config;
use callpark::park::*;
use callpark::store::Store;
use callpark_testkit::stats::{Summary, ms_to};

const TOKEN: &str = "metrics-bench-token-0123456789";

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Median, p99 and the largest, in milliseconds to a hundredth.
fn summary(v: &[Duration]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    let s = Summary::new(v.iter().copied());
    format!(
        "median {}  p99 {}  max {}  (n={})",
        ms_to(s.median(), 2),
        ms_to(s.p(0.99), 2),
        ms_to(s.max(), 2),
        s.len()
    )
}

fn call(i: usize) -> ParkedCall {
    ParkedCall {
        channel: ChannelId::new(format!("held-{i}")),
        orbit: Some(format!("{}", 1000 + i).parse().unwrap()),
        caller: Party {
            name: "Carol".into(),
            number: "5551234".into(),
        },
        parker: Parker {
            ids: vec!["alice".into()],
            endpoint: Some("PJSIP/alice".into()),
            display: "PJSIP/alice".into(),
        },
        lot: None,
        parked_at: 1_000,
        deadline: NO_DEADLINE,
        attempts: 0,
        fallback_tried: false,
        state: CallState::Parked,
        page: Default::default(),
    }
}

/// Fills the log with `pairs` park/retrieve pairs logged `pairs` seconds up to a year ago
/// (a retrieve 40 s after its park), and the counters as the commits would have left them.
/// Channel names are scattered (a multiplicative hash of the pair's number, as FreeSWITCH's
/// UUIDs are random): pruning deletes from all over the channel index, not from one end.
async fn fill(path: &std::path::Path, pairs: i64) {
    use sqlx::ConnectOptions;
    let mut db = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Off)
        .pragma("cache_size", "-262144")
        .connect()
        .await
        .expect("open the database");
    let q = |sql: &'static str| sqlx::query(sql);
    q("DROP INDEX event_log_channel")
        .execute(&mut db)
        .await
        .unwrap();
    let start = 1_700_000_000_000i64 - 366 * 86_400_000;
    const CHUNK: i64 = 1_000_000;
    let mut done = 0;
    while done < pairs {
        let n = CHUNK.min(pairs - done);
        sqlx::query(
            "WITH RECURSIVE c(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM c WHERE i < ?1 + ?2 - 1)
             INSERT INTO event_log (at, pool, kind, channel, orbit, lot, detail)
             SELECT ?3 + i * 1000 + k * 40000, 'pbx-a',
                    CASE k WHEN 0 THEN 'parked' ELSE 'retrieved' END,
                    printf('%08x-%x', (i * 2654435761) % 4294967296, i),
                    CAST(701 + i % 9 AS TEXT), NULL,
                    CASE k WHEN 0 THEN 'by PJSIP/alice from Carol <5551234>'
                           ELSE 'by PJSIP/bob' END
               FROM c, (SELECT 0 AS k UNION ALL SELECT 1) ORDER BY i, k",
        )
        .bind(done)
        .bind(n)
        .bind(start)
        .execute(&mut db)
        .await
        .expect("bulk insert");
        done += n;
        eprint!("\rfilled {done} of {pairs} pairs");
    }
    eprintln!();
    q("CREATE INDEX event_log_channel ON event_log (channel)")
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO metric_counter (pool, kind, n) VALUES ('pbx-a', 'parked', ?1), ('pbx-a', 'retrieved', ?1)
         ON CONFLICT (pool, kind) DO UPDATE SET n = n + excluded.n",
    )
    .bind(pairs)
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO retrieve_wait (pool, lot, le_ms, n, sum_ms) VALUES ('pbx-a', 'general', 60000, ?1, ?1 * 40000)
         ON CONFLICT (pool, lot, le_ms) DO UPDATE SET n = n + excluded.n, sum_ms = sum_ms + excluded.sum_ms",
    )
    .bind(pairs)
    .execute(&mut db)
    .await
    .unwrap();
    q("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut db)
        .await
        .unwrap();
}

async fn scrape(http: &reqwest::Client, url: &str, times: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(times);
    for _ in 0..times {
        let t = Instant::now();
        let r = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        let body = r.bytes().await.unwrap();
        out.push(t.elapsed());
        assert!(!body.is_empty());
    }
    out
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let pairs: i64 = arg(&args, "--pairs")
        .or_else(|| std::env::var("CALLPARK_BENCH_PAIRS").ok())
        .map(|v| v.replace('_', "").parse().expect("--pairs N"))
        .unwrap_or(if full { 1_000_000 } else { 1_000 });
    let scrapes: usize = arg(&args, "--scrapes")
        .map(|v| v.parse().expect("--scrapes K"))
        .unwrap_or(if full { 200 } else { 20 });
    let prune_rows: u64 = arg(&args, "--prune")
        .map(|v| v.replace('_', "").parse().expect("--prune ROWS"))
        .unwrap_or(if full { 200_000 } else { 1_000 });
    let dir = match std::env::var_os("CALLPARK_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("a temporary directory");
    let path = dir.path().join("callpark.db");
    Store::open(&path)
        .await
        .expect("create the store")
        .close()
        .await;
    let t = Instant::now();
    fill(&path, pairs).await;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "filled {pairs} pairs ({} entries) in {:.1} s; database {:.0} MB",
        2 * pairs,
        t.elapsed().as_secs_f64(),
        size as f64 / 1e6
    );

    let store = Store::open(&path).await.expect("open the store");
    let held: Vec<Change> = (0..100)
        .map(|i| Change::Upsert(Box::new(call(i))))
        .collect();
    store.apply("pbx-a", &held, &[]).await.unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let cfg = Config::from_toml(
        &format!(
            r#"
[api]
listen = "127.0.0.1:0"
token_file = "{}"

[[pbx]]
name = "pbx-a"
kind = "asterisk"
address = "http://127.0.0.1:8088"

[[orbit_range]]
name = "main"
first = "701"
last = "709"
pool = "pbx-a"

[[orbit_range]]
name = "held"
first = "1000"
last = "1999"
pool = "pbx-a"
"#,
            token_file.display()
        ),
        "bench.toml",
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind(cfg.api.as_ref().unwrap().listen)
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let api_store = Store::open(&path).await.expect("the API's store");
    tokio::spawn(serve(
        ApiState::new(api_store, Arc::new(cfg), TOKEN.into()),
        listener,
    ));
    let http = reqwest::Client::new();
    let metrics = format!("{base}/metrics");
    let first = http
        .get(&metrics)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let want = format!("callpark_events_total{{pool=\"pbx-a\",kind=\"retrieved\"}} {pairs}");
    assert!(first.lines().any(|l| l == want), "{want} missing:\n{first}");
    println!(
        "GET /metrics:        {}",
        summary(&scrape(&http, &metrics, scrapes).await)
    );
    println!(
        "GET /api/v1/parked:  {}  (100 calls; no commit between requests)",
        summary(&scrape(&http, &format!("{base}/api/v1/parked"), scrapes).await)
    );

    // A stand-in pool: a park committed every 10 ms, each timed.
    let commits = |store: Store, stop: Arc<std::sync::atomic::AtomicBool>| async move {
        let mut took = Vec::new();
        let mut i = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            tick.tick().await;
            i += 1;
            let entry = LogEvent {
                at: 1_700_000_000_000,
                kind: LogKind::RingbackStarted,
                channel: ChannelId::new(format!("bench-{i}")),
                orbit: None,
                lot: None,
                detail: "ringback 1 of 1".into(),
            };
            let t = Instant::now();
            store.apply("pbx-a", &[], &[entry]).await.unwrap();
            took.push(t.elapsed());
        }
        took
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let alone = tokio::spawn(commits(store.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(if full { 5 } else { 1 })).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let alone = alone.await.unwrap();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let beside = tokio::spawn(commits(store.clone(), stop.clone()));
    let mut batches = Vec::new();
    let mut pruned = 0u64;
    let t = Instant::now();
    while pruned < prune_rows {
        let b = Instant::now();
        let n = store
            .prune_log(i64::MAX, callpark::service::PRUNE_BATCH)
            .await
            .unwrap();
        batches.push(b.elapsed());
        pruned += n;
        if n == 0 {
            break;
        }
        tokio::time::sleep(callpark::service::PRUNE_PAUSE).await;
    }
    let wall = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let beside = beside.await.unwrap();
    let busy: Duration = batches.iter().sum();
    // The first batch reads its pages from disk (the fill went through another connection);
    // the slowest says whether one stalls the pools.
    let slowest = (0..batches.len()).max_by_key(|i| batches[*i]);
    if let (Some(first), Some(i)) = (batches.first(), slowest) {
        println!(
            "prune: first batch {}, slowest batch #{i} {}",
            ms_to(*first, 2),
            ms_to(batches[i], 2)
        );
    }
    println!(
        "prune: {pruned} entries in {} batches of {}: {:.0} entries/s deleting, {:.0} entries/s with the {} ms pauses; batch {}",
        batches.len(),
        callpark::service::PRUNE_BATCH,
        pruned as f64 / busy.as_secs_f64(),
        pruned as f64 / wall.as_secs_f64(),
        callpark::service::PRUNE_PAUSE.as_millis(),
        summary(&batches)
    );
    println!("pool commit alone:        {}", summary(&alone));
    println!(
        "pool commit while pruning: {}; commits over 50 ms: {}",
        summary(&beside),
        beside
            .iter()
            .filter(|d| **d > Duration::from_millis(50))
            .count()
    );
    println!(
        "GET /metrics after the prune: {}",
        summary(&scrape(&http, &metrics, scrapes).await)
    );
    let after = http
        .get(&metrics)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        after.lines().any(|l| l == want),
        "pruning changed a counter"
    );
    if args.iter().any(|a| a == "--old") {
        let raw = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new().filename(&path),
        )
        .await
        .unwrap();
        let t = Instant::now();
        sqlx::query("SELECT pool, kind, COUNT(*) AS n FROM event_log GROUP BY pool, kind")
            .fetch_all(&raw)
            .await
            .unwrap();
        let counts = t.elapsed();
        let t = Instant::now();
        sqlx::query(
            "SELECT r.pool AS pool, r.lot AS lot, r.at - MAX(p.at) AS waited
               FROM event_log r JOIN event_log p
                 ON p.channel = r.channel AND p.kind = 'parked' AND p.id < r.id
              WHERE r.kind = 'retrieved'
              GROUP BY r.id",
        )
        .fetch_all(&raw)
        .await
        .unwrap();
        println!(
            "before the counters (on the log left after the prune), one scrape's queries: counts {}, waits {}",
            ms_to(counts, 0),
            ms_to(t.elapsed(), 0)
        );
        raw.close().await;
    }

    store.close().await;
}
