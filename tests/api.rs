//! The admin API (`[api]`) against a real SQLite store, served on a loopback port: the bearer
//! token, parked calls, orbits, settings, metrics, and the event stream with its resume; and the
//! operator's side (API and command line) against `callpark run` on both testbeds.

use std::sync::Arc;
use std::time::Duration;

use callpark::api::{ApiState, serve};
use callpark::config::Config;
use callpark::park::*;
use callpark::store::Store;
use futures_util::StreamExt;
use serde_json::Value;

const TOKEN: &str = "s3cret-token-for-the-tests";

struct Api {
    base: String,
    store: Store,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn call(ch: &str, orbit: &str, lot: Option<&str>) -> ParkedCall {
    ParkedCall {
        channel: ChannelId::new(ch),
        orbit: Some(orbit.parse().unwrap()),
        caller: Party {
            name: "Carol".into(),
            number: "5551234".into(),
        },
        parker: Parker {
            ids: vec!["alice".into()],
            endpoint: Some("PJSIP/alice".into()),
            display: "PJSIP/alice".into(),
        },
        lot: lot.map(str::to_string),
        parked_at: 1_000,
        deadline: 91_000,
        attempts: 0,
        fallback_tried: false,
        state: CallState::Parked,
        page: Default::default(),
    }
}

fn log(ch: &str, kind: LogKind, orbit: &str, lot: Option<&str>) -> LogEvent {
    LogEvent {
        at: 1_000,
        kind,
        channel: ChannelId::new(ch),
        orbit: Some(orbit.parse().unwrap()),
        lot: lot.map(str::to_string),
        detail: "by PJSIP/alice from Carol <5551234>".into(),
    }
}

async fn start() -> Api {
    start_with("").await
}

/// [`start`] with more `[api]` keys.
async fn start_with(api_extra: &str) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let cfg = Config::from_toml(
        &format!(
            r#"
[api]
listen = "127.0.0.1:0"
token_file = "{}"
{api_extra}

[[pbx]]
name = "pbx-a"
kind = "asterisk"
address = "http://127.0.0.1:8088"

[[lot]]
name = "sales"
max_pickup_attempts = 3

[[orbit_range]]
name = "main"
first = "701"
last = "709"
pool = "pbx-a"

[[orbit_range]]
name = "sales"
first = "710"
last = "711"
pool = "pbx-a"
lot = "sales"
"#,
            token_file.display()
        ),
        "api.toml",
    )
    .unwrap();
    let store = Store::open(&dir.path().join("callpark.db")).await.unwrap();
    store
        .apply(
            "pbx-a",
            &[
                Change::Upsert(Box::new(call("c1", "701", None))),
                Change::Upsert(Box::new(call("c2", "710", Some("sales")))),
            ],
            &[
                log("c1", LogKind::Parked, "701", None),
                log("c2", LogKind::Parked, "710", Some("sales")),
            ],
        )
        .await
        .unwrap();
    let api = cfg.api.clone().unwrap();
    let token = api.token().unwrap();
    let listener = tokio::net::TcpListener::bind(api.listen).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // pbx-a connected twice so far (a reconnect), and up now.
    let health = callpark::service::health::Health::default();
    let beat = health.pool("pbx-a");
    beat.connected();
    beat.disconnected();
    beat.connected();
    // Two store commits: 0.8 ms and 30 ms.
    beat.committed(Duration::from_micros(800));
    beat.committed(Duration::from_millis(30));
    let state = ApiState::new(store.clone(), Arc::new(cfg), token).with_health(health);
    tokio::spawn(serve(state, listener));
    Api {
        base,
        store,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Api {
    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

#[tokio::test]
async fn every_request_needs_the_bearer_token() {
    let api = start().await;
    for path in [
        "/api/v1/parked",
        "/api/v1/orbits",
        "/metrics",
        "/api/v1/events",
    ] {
        let url = format!("{}{path}", api.base);
        let none = api.http.get(&url).send().await.unwrap();
        assert_eq!(none.status().as_u16(), 401, "{path}");
        assert_eq!(none.headers()["www-authenticate"], "Bearer");
        let body: Value = none.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("Bearer"));
        let wrong = api
            .http
            .get(&url)
            .bearer_auth("s3cret-token-for-the-tesTS")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 401, "{path}");
    }
    assert_eq!(api.get("/api/v1/parked").await.0, 200);
}

#[tokio::test]
async fn parked_calls_orbits_and_settings_as_json() {
    let api = start().await;
    let parked = api.json("/api/v1/parked").await;
    let calls = parked.as_array().unwrap();
    assert_eq!(calls.len(), 2);
    let c1 = calls.iter().find(|c| c["orbit"] == "701").unwrap();
    let fields: Vec<&String> = c1.as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        [
            "attempt",
            "caller",
            "channel",
            "lot",
            "max_attempts",
            "max_pages",
            "next_deadline",
            "next_page",
            "orbit",
            "pages",
            "parked_at",
            "parker",
            "pool",
            "state"
        ]
    );
    assert_eq!(c1["channel"], "c1");
    assert_eq!(c1["parked_at"], 1_000);
    assert_eq!(c1["parker"], "PJSIP/alice");
    assert_eq!(c1["lot"], "general");
    assert_eq!(c1["pool"], "pbx-a");
    assert_eq!(c1["caller"]["name"], "Carol");
    assert_eq!(c1["caller"]["number"], "5551234");
    assert_eq!(c1["state"], "parked");
    assert_eq!(c1["attempt"], 0);
    assert_eq!(c1["max_attempts"], 1);
    assert_eq!(c1["next_deadline"], 91_000);
    assert_eq!(
        (c1["pages"].as_u64(), c1["max_pages"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(c1["next_page"].is_null());
    let c2 = api.json("/api/v1/parked/710").await;
    assert_eq!(
        (c2["lot"].as_str(), c2["max_attempts"].as_u64()),
        (Some("sales"), Some(3))
    );
    // Bad input names the field; an empty orbit and one of no range are told apart.
    let (status, body) = api.get("/api/v1/parked/7x1").await;
    assert_eq!(status, 400);
    assert!(body.contains("orbit: `7x1` is not an orbit"), "{body}");
    let (status, body) = api.get("/api/v1/parked/705").await;
    assert_eq!(status, 404);
    assert!(body.contains("no call is parked on 705"), "{body}");
    let (status, body) = api.get("/api/v1/parked/999").await;
    assert_eq!(status, 404);
    assert!(body.contains("in no configured orbit range"), "{body}");

    let orbits = api.json("/api/v1/orbits").await;
    let main = orbits
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "main")
        .unwrap();
    assert_eq!(
        (
            main["size"].as_u64(),
            main["used"].as_u64(),
            main["free"].as_u64()
        ),
        (Some(9), Some(1), Some(8))
    );
    let sales = orbits
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "sales")
        .unwrap();
    assert_eq!(
        (sales["lot"].as_str(), sales["used"].as_u64()),
        (Some("sales"), Some(1))
    );

    let settings = api.json("/api/v1/settings").await;
    assert_eq!(
        settings["lots"]["general"]["settings"]["pickup_timeout_ms"],
        90_000
    );
    assert_eq!(settings["lots"]["sales"]["park_codes"][0], "park-sales");
    assert_eq!(
        settings["lots"]["sales"]["settings"]["max_pickup_attempts"],
        3
    );
}

#[tokio::test]
async fn webhooks_get_every_entry_in_order_with_retries_and_a_dead_one_delays_nobody() {
    use axum::http::StatusCode;
    use std::sync::Mutex;
    // A webhook that fails twice, then takes everything; it keeps the ids it took.
    // (failures answered, (id, orbit_freed) of each entry taken)
    type Got = (u32, Vec<(i64, bool)>);
    let got: Arc<Mutex<Got>> = Arc::default();
    let app = {
        let got = got.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
                let got = got.clone();
                async move {
                    let mut g = got.lock().unwrap();
                    if g.0 < 2 {
                        g.0 += 1;
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    g.1.push((v["id"].as_i64().unwrap(), v["orbit_freed"] == true));
                    StatusCode::NO_CONTENT
                }
            }),
        )
    };
    let ok = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ok_url = format!("http://{}/hook", ok.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(ok, app).await });
    // One that takes the connection and never answers.
    let dead_url = support::dead_webhook().await;
    let api = start_with(&format!(
        "webhooks = [\"{dead_url}\", \"{ok_url}\"]\nwebhook_timeout = \"1s\""
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (ch, kind) in [("c1", LogKind::Retrieved), ("c2", LogKind::RingbackStarted)] {
        api.store
            .apply("pbx-a", &[], &[log(ch, kind, "701", None)])
            .await
            .unwrap();
    }
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let g = got.lock().unwrap().clone();
        if g.1.len() == 2 {
            // A retrieve frees its orbit; a ringback does not.
            assert_eq!(
                g,
                (2, vec![(3, true), (4, false)]),
                "two failures, then each entry once, in order"
            );
            break;
        }
        assert!(std::time::Instant::now() < end, "webhook got {g:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_in_prometheus_text() {
    let api = start().await;
    // Carol's call on 701 (parked at 1 s) retrieved 41.5 s later.
    let mut done = log("c1", LogKind::Retrieved, "701", None);
    done.at = 42_500;
    api.store
        .apply("pbx-a", &[Change::Remove(ChannelId::new("c1"))], &[done])
        .await
        .unwrap();
    let (status, text) = api.get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "# TYPE callpark_parked gauge",
        "callpark_parked{pool=\"pbx-a\",lot=\"general\"} 0",
        "callpark_parked{pool=\"pbx-a\",lot=\"sales\"} 1",
        "callpark_lot_orbits{pool=\"pbx-a\",lot=\"general\"} 9",
        "callpark_events_total{pool=\"pbx-a\",kind=\"parked\"} 2",
        "callpark_events_total{pool=\"pbx-a\",kind=\"retrieved\"} 1",
        "callpark_lot_utilisation{pool=\"pbx-a\",lot=\"sales\"} 0.5",
        "callpark_lot_utilisation{pool=\"pbx-a\",lot=\"general\"} 0.0",
        "callpark_pbx_connected{pool=\"pbx-a\"} 1",
        "callpark_pbx_connects_total{pool=\"pbx-a\"} 2",
        "# TYPE callpark_store_commit_seconds histogram",
        "callpark_store_commit_seconds_bucket{pool=\"pbx-a\",le=\"0.0005\"} 0",
        "callpark_store_commit_seconds_bucket{pool=\"pbx-a\",le=\"0.001\"} 1",
        "callpark_store_commit_seconds_bucket{pool=\"pbx-a\",le=\"0.025\"} 1",
        "callpark_store_commit_seconds_bucket{pool=\"pbx-a\",le=\"0.05\"} 2",
        "callpark_store_commit_seconds_bucket{pool=\"pbx-a\",le=\"+Inf\"} 2",
        "callpark_store_commit_seconds_sum{pool=\"pbx-a\"} 0.0308",
        "callpark_store_commit_seconds_count{pool=\"pbx-a\"} 2",
        "# TYPE callpark_time_to_retrieve_seconds histogram",
        "callpark_time_to_retrieve_seconds_bucket{pool=\"pbx-a\",lot=\"general\",le=\"30\"} 0",
        "callpark_time_to_retrieve_seconds_bucket{pool=\"pbx-a\",lot=\"general\",le=\"60\"} 1",
        "callpark_time_to_retrieve_seconds_bucket{pool=\"pbx-a\",lot=\"general\",le=\"+Inf\"} 1",
        "callpark_time_to_retrieve_seconds_sum{pool=\"pbx-a\",lot=\"general\"} 41.5",
        "callpark_time_to_retrieve_seconds_count{pool=\"pbx-a\",lot=\"sales\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
    // The counters are kept as entries are committed: pruning the log changes no metric.
    assert_eq!(api.store.prune_log(i64::MAX, 1000).await.unwrap(), 3);
    assert_eq!(api.store.oldest_log_id().await.unwrap(), None);
    let (_, again) = api.get("/metrics").await;
    assert_eq!(again, text);
}

#[tokio::test]
async fn metric_label_values_are_escaped() {
    // A lot name may hold a backslash; a kind or pool in an old store anything.
    let api = start_with("").await;
    let mut odd = log("c9", LogKind::Parked, "702", None);
    odd.lot = Some("a\\b".into());
    api.store.apply("pbx-a", &[], &[odd]).await.unwrap();
    api.store
        .apply(
            "pool \"x\"\nnext",
            &[],
            &[log("c8", LogKind::Parked, "703", None)],
        )
        .await
        .unwrap();
    let (_, text) = api.get("/metrics").await;
    let line = "callpark_events_total{pool=\"pool \\\"x\\\"\\nnext\",kind=\"parked\"} 1";
    assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    // Every sample line is one line with balanced quotes.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let unescaped = l.replace("\\\\", "").replace("\\\"", "");
        assert_eq!(unescaped.matches('"').count() % 2, 0, "{l}");
    }
}

#[tokio::test]
async fn the_list_of_parked_calls_follows_every_commit() {
    let api = start().await;
    let orbits = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["orbit"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(orbits(api.json("/api/v1/parked").await), ["701", "710"]);
    // Asked again with no commit between: the same list (kept, not read again).
    assert_eq!(orbits(api.json("/api/v1/parked").await), ["701", "710"]);
    let mut c3 = call("c3", "702", None);
    c3.parked_at = 2_000;
    api.store
        .apply(
            "pbx-a",
            &[Change::Upsert(Box::new(c3))],
            &[log("c3", LogKind::Parked, "702", None)],
        )
        .await
        .unwrap();
    assert_eq!(
        orbits(api.json("/api/v1/parked").await),
        ["701", "710", "702"]
    );
    assert_eq!(api.json("/api/v1/parked/702").await["channel"], "c3");
    // Retrieved: gone from the very next read.
    api.store
        .apply(
            "pbx-a",
            &[Change::Remove(ChannelId::new("c3"))],
            &[log("c3", LogKind::Retrieved, "702", None)],
        )
        .await
        .unwrap();
    assert_eq!(orbits(api.json("/api/v1/parked").await), ["701", "710"]);
    assert_eq!(api.get("/api/v1/parked/702").await.0, 404);
    // A change without a log entry (a call's state) is seen too.
    let mut c1 = call("c1", "701", None);
    c1.attempts = 1;
    api.store
        .apply("pbx-a", &[Change::Upsert(Box::new(c1))], &[])
        .await
        .unwrap();
    assert_eq!(api.json("/api/v1/parked/701").await["attempt"], 1);
}

/// The whole body of an event stream that ends (after a `reset`), uncompressed.
async fn whole_stream(api: &Api, last_event_id: &str) -> String {
    let r = api
        .http
        .get(format!("{}/api/v1/events", api.base))
        .bearer_auth(TOKEN)
        .header("Last-Event-ID", last_event_id)
        .header("Accept-Encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    tokio::time::timeout(Duration::from_secs(5), r.text())
        .await
        .expect("the stream ends within 5 s")
        .unwrap()
}

#[tokio::test]
async fn a_resume_older_than_the_kept_log_gets_a_reset_with_the_oldest_id() {
    let api = start().await;
    let mut late = log("c1", LogKind::Retrieved, "701", None);
    late.at = 5_000;
    api.store
        .apply("pbx-a", &[Change::Remove(ChannelId::new("c1"))], &[late])
        .await
        .unwrap();
    // Entries 1 and 2 (at 1 s) pruned; 3 kept.
    assert_eq!(api.store.prune_log(2_000, 1000).await.unwrap(), 2);
    for asked in ["0", "1"] {
        let body = whole_stream(&api, asked).await;
        assert_eq!(
            body, "event: reset\ndata: {\"oldest\":3,\"reason\":\"pruned\"}\n\n",
            "after {asked}"
        );
    }
    // Right after the last pruned entry: nothing was skipped, the stream goes on as ever.
    let r = api
        .http
        .get(format!("{}/api/v1/events", api.base))
        .bearer_auth(TOKEN)
        .header("Last-Event-ID", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(read_events(r, 1).await, [(3, "retrieved".to_string())]);
    // The log emptied by a prune still knows its last id: a resume after it is no reset.
    assert_eq!(api.store.prune_log(i64::MAX, 1000).await.unwrap(), 1);
    assert_eq!(api.store.last_log_id().await.unwrap(), 3);
    let r = api
        .http
        .get(format!("{}/api/v1/events", api.base))
        .bearer_auth(TOKEN)
        .header("Last-Event-ID", "3")
        .send()
        .await
        .unwrap();
    api.store
        .apply(
            "pbx-a",
            &[],
            &[log("c2", LogKind::Retrieved, "710", Some("sales"))],
        )
        .await
        .unwrap();
    assert_eq!(read_events(r, 1).await, [(4, "retrieved".to_string())]);
    assert_eq!(
        whole_stream(&api, "2").await,
        "event: reset\ndata: {\"oldest\":4,\"reason\":\"pruned\"}\n\n"
    );
}

#[tokio::test]
async fn a_store_error_on_resume_is_a_reset_not_an_empty_stream() {
    let api = start().await;
    // Serving (it read the log's last id at start), then every connection of the store the
    // API reads closed: every read fails.
    assert_eq!(api.get("/api/v1/parked").await.0, 200);
    api.store.clone().close().await;
    assert_eq!(
        whole_stream(&api, "1").await,
        "event: reset\ndata: {\"oldest\":null,\"reason\":\"store\"}\n\n"
    );
    // A fresh subscriber cannot be placed: an error, not a stream from 0.
    assert_eq!(api.get("/api/v1/events").await.0, 500);
}

#[tokio::test]
async fn a_long_backlog_is_read_in_pages_to_its_end() {
    let api = start().await;
    let many: Vec<LogEvent> = (0..11_998)
        .map(|i| log(&format!("b{i}"), LogKind::Parked, "702", None))
        .collect();
    api.store.apply("pbx-a", &[], &many).await.unwrap();
    let r = api
        .http
        .get(format!("{}/api/v1/events", api.base))
        .bearer_auth(TOKEN)
        .header("Last-Event-ID", "0")
        .send()
        .await
        .unwrap();
    let got = read_events(r, 12_000).await;
    let ids: Vec<i64> = got.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (1..=12_000).collect::<Vec<_>>());
}

/// Reads SSE events (id, event) from a response until `n` arrived; a gzip stream is decoded
/// as it comes, each batch on its own, as a browser does.
async fn read_events(resp: reqwest::Response, n: usize) -> Vec<(i64, String)> {
    use std::io::Write;
    let gz = resp
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let mut gunzip = flate2::write::GzDecoder::new(Vec::new());
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let read = async {
        while out.len() < n {
            let mut chunk = stream
                .next()
                .await
                .expect("the stream ended")
                .unwrap()
                .to_vec();
            if gz {
                gunzip.write_all(&chunk).expect("gzip");
                gunzip.flush().expect("gzip");
                chunk = std::mem::take(gunzip.get_mut());
            }
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let field = |k: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{k}:")))
                        .map(|v| v.trim().to_string())
                };
                if let (Some(id), Some(ev)) = (field("id"), field("event")) {
                    out.push((id.parse().unwrap(), ev));
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("events within 5 s");
    out
}

#[tokio::test]
async fn the_event_stream_resumes_from_last_event_id_then_goes_live() {
    let api = start().await;
    let url = format!("{}/api/v1/events", api.base);
    // Resumed after entry 1: entry 2 from the store, then what is logged next; by a client
    // that takes no gzip, so uncompressed.
    let resumed = api
        .http
        .get(&url)
        .bearer_auth(TOKEN)
        .header("Last-Event-ID", "1")
        .header("Accept-Encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status().as_u16(), 200);
    assert_eq!(resumed.headers()["content-type"], "text/event-stream");
    assert_eq!(resumed.headers().get("content-encoding"), None);
    // A fresh subscriber gets only what happens from now on; asking as browsers do, it gets
    // gzip (read raw here, and decoded by `read_events`).
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let fresh = raw
        .get(&url)
        .bearer_auth(TOKEN)
        .header("Accept-Encoding", "gzip, deflate, br, zstd")
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.headers()["content-encoding"], "gzip");
    assert_eq!(fresh.headers()["vary"], "accept-encoding");
    // Resumed in gzip too: the backlog's chunks and the live batches are one gzip stream.
    let resumed_gz = raw
        .get(&url)
        .bearer_auth(TOKEN)
        .header("Last-Event-ID", "0")
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resumed_gz.headers()["content-encoding"], "gzip");
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.store
        .apply(
            "pbx-a",
            &[Change::Remove(ChannelId::new("c1"))],
            &[log("c1", LogKind::Retrieved, "701", None)],
        )
        .await
        .unwrap();
    assert_eq!(
        read_events(resumed, 2).await,
        [(2, "parked".to_string()), (3, "retrieved".to_string())]
    );
    assert_eq!(read_events(fresh, 1).await, [(3, "retrieved".to_string())]);
    assert_eq!(
        read_events(resumed_gz, 3).await,
        [
            (1, "parked".to_string()),
            (2, "parked".to_string()),
            (3, "retrieved".to_string())
        ]
    );
    // A Last-Event-ID that is no id is refused, naming the header.
    let bad = api
        .http
        .get(&url)
        .bearer_auth(TOKEN)
        .header("Last-Event-ID", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.text().await.unwrap().contains("Last-Event-ID"));
}

use callpark_testkit as support;

/// Each thread of process `pid`: its name, and what `read` finds in its /proc directory.
fn per_thread<T>(pid: u32, read: impl Fn(&std::path::Path) -> Option<T>) -> Vec<(String, T)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap().path();
        let comm = std::fs::read_to_string(t.join("comm")).unwrap_or_default();
        if let Some(v) = read(&t) {
            out.push((comm.trim().to_string(), v));
        }
    }
    out
}

/// Each thread of process `pid`: its name and cgroup v1 cpu cgroup.
fn threads_cpu_cgroup(pid: u32) -> Vec<(String, String)> {
    per_thread(pid, |t| {
        let cg = std::fs::read_to_string(t.join("cgroup")).ok()?;
        // `N:cpu:/path` (or `N:cpu,cpuacct:/path`).
        cg.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            ctrl.split(',')
                .any(|c| c == "cpu")
                .then(|| path.to_string())
        })
    })
}

/// Each thread of process `pid`: its name and nice value.
fn threads_nice(pid: u32) -> Vec<(String, i64)> {
    per_thread(pid, |t| {
        let stat = std::fs::read_to_string(t.join("stat")).ok()?;
        // Fields after the parenthesised name: state is the 3rd field, nice the 19th.
        let (_, rest) = stat.rsplit_once(") ")?;
        rest.split(' ').nth(16)?.parse().ok()
    })
}

/// The operator's side on the real Asterisk: `callpark run` with `[api]`, a parked call
/// retrieved to an extension through the API, another hung up, and bad requests refused.
#[tokio::test]
async fn asterisk_retrieve_to_an_extension_and_hang_up_through_the_api() {
    use support::*;
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let (api_toml, port, _api_dir) = api_table(TOKEN);
    let cp = Callpark::start(&Setup {
        extra: api_toml,
        park: "pickup_timeout = \"60s\"\n".into(),
        ..Setup::default()
    })
    .await;
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let http = reqwest::Client::new();
    // The API's threads yield the CPU to the pools': a lower priority than theirs.
    let nice = threads_nice(cp.pid().unwrap());
    let api_nice: Vec<i64> = nice
        .iter()
        .filter(|(c, _)| c == "callpark-api")
        .map(|(_, n)| *n)
        .collect();
    let pool_nice: Vec<i64> = nice
        .iter()
        .filter(|(c, _)| c == "tokio-rt-worker")
        .map(|(_, n)| *n)
        .collect();
    assert!(
        !api_nice.is_empty() && api_nice.iter().all(|n| *n == 10),
        "{nice:?}"
    );
    assert!(
        !pool_nice.is_empty() && pool_nice.iter().all(|n| *n == 0),
        "{nice:?}"
    );
    // ... and, against Asterisk too, they sit in an idle cgroup of their own
    // (src/service/sched.rs); the pools stay where the service was started.
    let groups = threads_cpu_cgroup(cp.pid().unwrap());
    let in_group = |name: &str| -> Vec<&String> {
        groups
            .iter()
            .filter(|(c, _)| c == name)
            .map(|(_, g)| g)
            .collect()
    };
    let api_groups = in_group("callpark-api");
    assert!(
        !api_groups.is_empty() && api_groups.iter().all(|g| g.ends_with("/callpark-api")),
        "{groups:?}"
    );
    assert!(
        in_group("tokio-rt-worker")
            .iter()
            .all(|g| !g.ends_with("/callpark-api")),
        "{groups:?}"
    );
    let idle = format!("/sys/fs/cgroup/cpu{}/cpu.idle", api_groups[0]);
    assert_eq!(
        std::fs::read_to_string(&idle).unwrap().trim(),
        "1",
        "{idle}"
    );
    let (caller, _) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    let caller = caller["id"].as_str().unwrap().to_string();
    cp.wait_parked_on("701").await;
    let listed: Value = http
        .get(format!("{base}/parked"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["orbit"], "701");
    assert_eq!(listed[0]["channel"], caller.as_str());
    // Bad requests change nothing and name the field.
    let post = |orbit: &str, body: Value| {
        http.post(format!("{base}/parked/{orbit}/retrieve"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let r = post("701", serde_json::json!({ "to": "nowhere" }))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().starts_with("{\"error\":\"to: "));
    let r = post("705", serde_json::json!({ "to": "exten:answer@phones" }))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(cp.kinds_of(&caller).await, ["parked"]);
    // The CLI: the parked calls as JSON, the event stream, and a retrieve to an extension
    // that answers, through the service: bridged, and the log says by whom.
    let cli = |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_callpark"));
        c.arg("--config").arg(&cp.config).args(args);
        c
    };
    let out = cli(&["parked", "--format", "json"]).output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["orbit"], "701");
    let mut watch = cli(&["watch"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("retrieved"))
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = cli(&["retrieve", "701", "--to", "exten:answer@phones"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    cp.wait_log(&caller, "retrieved", Duration::from_secs(10))
        .await;
    // The feed sends a batch at most once a second; the reader ends when it has the line.
    wait_for(
        "callpark watch to print the retrieve",
        Duration::from_secs(10),
        || async { lines.is_finished().then_some(()) },
    )
    .await;
    let _ = watch.kill();
    let _ = watch.wait();
    let seen = tokio::task::spawn_blocking(move || lines.join().unwrap())
        .await
        .unwrap();
    let seen = seen.expect("callpark watch printed the retrieve");
    assert!(seen.contains("701") && seen.contains(&caller), "{seen}");
    let bridged = wait_for(
        "the call bridged to the extension",
        Duration::from_secs(5),
        || async {
            ari.bridges().await.into_iter().find(|b| {
                let chans = b["channels"].as_array().cloned().unwrap_or_default();
                chans.len() == 2 && chans.iter().any(|c| c == caller.as_str())
            })
        },
    )
    .await;
    assert_eq!(bridged["channels"].as_array().unwrap().len(), 2);
    let row = cp.log_row(&caller, "retrieved").await;
    assert!(row.detail.contains("exten:answer@phones"), "{}", row.detail);
    // Another call, hung up by the operator.
    let (other, _) = park_by_transfer(&ari, &ami, "bob", "\"Dave\" <5552222>").await;
    let other = other["id"].as_str().unwrap().to_string();
    cp.wait_parked_on("701").await;
    let r = http
        .delete(format!("{base}/parked/701"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    cp.wait_log(&other, "disconnected", Duration::from_secs(5))
        .await;
    wait_for("the call hung up", Duration::from_secs(5), || async {
        (!ari.channel_exists(&other).await).then_some(())
    })
    .await;
}

/// Checks `value` against the subset of JSON Schema the document uses (type, nullable,
/// required, properties, items, enum, $ref); returns what does not match.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errs: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let path = r.trim_start_matches("#/").split('/');
        let target = path.fold(doc, |v, k| &v[k]);
        return check(doc, target, value, at, errs);
    }
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    let ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !ok {
        errs.push(format!("{at}: {value} is not {}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errs.push(format!("{at}: {value} not in {allowed:?}"));
        }
    }
    for k in schema["required"].as_array().into_iter().flatten() {
        if value.get(k.as_str().unwrap()).is_none() {
            errs.push(format!("{at}: `{}` missing", k.as_str().unwrap()));
        }
    }
    if let Some(props) = schema["properties"].as_object() {
        for (k, s) in props {
            if let Some(v) = value.get(k) {
                check(doc, s, v, &format!("{at}.{k}"), errs);
            }
        }
    }
    if let (Some(items), Some(vs)) = (schema.get("items"), value.as_array()) {
        for (i, v) in vs.iter().enumerate() {
            check(doc, items, v, &format!("{at}[{i}]"), errs);
        }
    }
}

/// The running server against `api/openapi.json`: every answer's status is one the document
/// gives for that operation, and every JSON body matches the schema it names. Each operation
/// is tried with good input, bad input and no token; no pool runs here, so a retrieve or
/// hang-up of a parked call gets the documented 503.
#[tokio::test]
async fn every_answer_is_one_the_openapi_document_describes() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/api/openapi.json")).unwrap(),
    )
    .unwrap();
    let api = start().await;
    let cases: &[(&str, &str, &str, Option<Value>)] = &[
        ("get", "/api/v1/parked", "/api/v1/parked", None),
        ("get", "/api/v1/parked/{orbit}", "/api/v1/parked/701", None),
        ("get", "/api/v1/parked/{orbit}", "/api/v1/parked/705", None),
        ("get", "/api/v1/parked/{orbit}", "/api/v1/parked/7x1", None),
        ("get", "/api/v1/parked/{orbit}", "/api/v1/parked/999", None),
        (
            "delete",
            "/api/v1/parked/{orbit}",
            "/api/v1/parked/701",
            None,
        ),
        (
            "delete",
            "/api/v1/parked/{orbit}",
            "/api/v1/parked/abc",
            None,
        ),
        (
            "post",
            "/api/v1/parked/{orbit}/retrieve",
            "/api/v1/parked/701/retrieve",
            Some(serde_json::json!({"to": "exten:201@phones"})),
        ),
        (
            "post",
            "/api/v1/parked/{orbit}/retrieve",
            "/api/v1/parked/701/retrieve",
            Some(serde_json::json!({"to": "nowhere"})),
        ),
        (
            "post",
            "/api/v1/parked/{orbit}/retrieve",
            "/api/v1/parked/701/retrieve",
            Some(serde_json::json!({"too": 1})),
        ),
        (
            "post",
            "/api/v1/parked/{orbit}/retrieve",
            "/api/v1/parked/999/retrieve",
            Some(serde_json::json!({"to": "exten:201@phones"})),
        ),
        ("get", "/api/v1/orbits", "/api/v1/orbits", None),
        ("get", "/api/v1/settings", "/api/v1/settings", None),
        ("get", "/metrics", "/metrics", None),
    ];
    let mut errs = Vec::new();
    for (method, template, path, body) in cases {
        let op = &doc["paths"][*template][*method];
        assert!(op.is_object(), "{method} {template} is not in the document");
        for token in [Some(TOKEN), None] {
            let mut req = api.http.request(
                method.to_uppercase().parse().unwrap(),
                format!("{}{path}", api.base),
            );
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16().to_string();
            let json = r
                .headers()
                .get("content-type")
                .is_some_and(|c| c.to_str().unwrap().starts_with("application/json"));
            let text = r.text().await.unwrap();
            let Some(resp) = op["responses"].get(&status) else {
                errs.push(format!(
                    "{method} {path}: {status} is not documented ({text})"
                ));
                continue;
            };
            let resp = match resp["$ref"].as_str() {
                Some(r) => r
                    .trim_start_matches("#/")
                    .split('/')
                    .fold(&doc, |v, k| &v[k]),
                None => resp,
            };
            let schema = &resp["content"]["application/json"]["schema"];
            if json {
                assert!(
                    !schema.is_null(),
                    "{method} {path} {status}: JSON not documented"
                );
                let v: Value = serde_json::from_str(&text).unwrap();
                check(
                    &doc,
                    schema,
                    &v,
                    &format!("{method} {path} {status}"),
                    &mut errs,
                );
            } else {
                assert!(
                    schema.is_null(),
                    "{method} {path} {status}: JSON documented, not sent"
                );
            }
        }
    }
    assert!(errs.is_empty(), "{errs:#?}");
}

/// The same operator's retrieve on the real FreeSWITCH: through the API to an extension of
/// the testbed's context that answers; bridged there, and logged by whom.
#[tokio::test]
async fn freeswitch_retrieve_to_an_extension_through_the_api() {
    use support::fs::{self, fb, fs_testbed};
    use support::*;
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let (api_toml, port, _api_dir) = api_table(TOKEN);
    let cp = Callpark::start(&Setup {
        extra: api_toml,
        park: "pickup_timeout = \"60s\"\n".into(),
        ..Setup::freeswitch()
    })
    .await;
    let caller = fs::park_by_transfer(&esl, "alice", "Carol", "5551234").await;
    cp.wait_parked_on("601").await;
    let to = format!("exten:answer@{}", fb("CONTEXT"));
    let r = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/api/v1/parked/601/retrieve"
        ))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "to": to }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    cp.wait_log(&caller, "retrieved", Duration::from_secs(10))
        .await;
    let peer = esl.getvar(&caller, "bridge_uuid").await;
    assert_eq!(peer.len(), 36, "bridged: {peer}");
    let row = cp.log_row(&caller, "retrieved").await;
    assert!(row.detail.contains(&to), "{}", row.detail);
}

#[tokio::test]
async fn an_api_whose_log_cannot_be_read_at_start_fails_instead_of_replaying_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("callpark.db")).await.unwrap();
    let cfg = Config::from_toml("", "empty.toml").unwrap();
    store.clone().close().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let state = ApiState::new(store, Arc::new(cfg), TOKEN.into());
    let served = tokio::time::timeout(Duration::from_secs(10), serve(state, listener))
        .await
        .expect("it gives up within seconds");
    let e = served.unwrap_err().to_string();
    assert!(e.contains("event log cannot be read at start"), "{e}");
}

/// The operator's command line against `callpark run` on each testbed, the scenario written
/// once: `callpark parked` lists the call, `callpark watch` prints the retrieve that
/// `callpark retrieve <orbit> --to <extension>` makes through the service, the log names the
/// extension; another call hung up through the API is gone from the PBX.
async fn operator_command_line(pbx: &impl support::testbed::Testbed) {
    use support::*;
    let (api_toml, port, _api_dir) = api_table(TOKEN);
    let cp = Callpark::start(&Setup {
        extra: api_toml,
        ..pbx.setup("pickup_timeout = \"60s\"\n")
    })
    .await;
    let orbit = pbx.orbit(1);
    let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
    cp.wait_parked_on(&orbit).await;
    let cli = |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_callpark"));
        c.arg("--config").arg(&cp.config).args(args);
        c
    };
    let out = cli(&["parked", "--format", "json"]).output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["orbit"], orbit.as_str());
    assert_eq!(json[0]["channel"], caller.id.as_str());
    let mut watch = cli(&["watch"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("retrieved"))
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let to = pbx.exten("answer");
    let out = cli(&["retrieve", &orbit, "--to", &to]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    cp.wait_log(&caller.id, "retrieved", Duration::from_secs(10))
        .await;
    wait_for(
        "callpark watch to print the retrieve",
        Duration::from_secs(10),
        || async { lines.is_finished().then_some(()) },
    )
    .await;
    let _ = watch.kill();
    let _ = watch.wait();
    let seen = tokio::task::spawn_blocking(move || lines.join().unwrap())
        .await
        .unwrap()
        .expect("callpark watch printed the retrieve");
    assert!(
        seen.contains(orbit.as_str()) && seen.contains(&caller.id),
        "{seen}"
    );
    let row = cp.log_row(&caller.id, "retrieved").await;
    assert!(row.detail.contains(&to), "{}", row.detail);
    assert!(
        pbx.exists(&caller.id).await,
        "the caller talks to the extension"
    );
    // Another call, hung up by the operator through the API.
    let other = pbx.park_by_transfer("bob", "Dave", "5552222").await;
    cp.wait_parked_on(&orbit).await;
    let r = reqwest::Client::new()
        .delete(format!("http://127.0.0.1:{port}/api/v1/parked/{orbit}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    cp.wait_log(&other.id, "disconnected", Duration::from_secs(5))
        .await;
    pbx.wait_gone("the call hung up", &other.id, Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn asterisk_operator_command_line_retrieve_watch_and_hang_up() {
    operator_command_line(&support::testbed::AsteriskTestbed::take().await).await;
}

#[tokio::test]
async fn freeswitch_operator_command_line_retrieve_watch_and_hang_up() {
    operator_command_line(&support::testbed::FreeswitchTestbed::take().await).await;
}
