//! The cost of the operator's side: park latency on the Asterisk testbed with no `[api]`, and
//! again with the API on, 1,000 Server-Sent-Events subscribers and two slow webhooks (one
//! answers after 2 s, one never answers), at a paced park rate; plus the API's own request
//! latency (`GET /api/v1/parked`) under that load.
//!
//! Park latency is from the blind transfer (AMI BlindTransfer sent) to callpark's `parked` log
//! entry (the orbit allocated and the step committed), both on this machine's clock, in ms.
//!
//! Run: `cargo bench --bench operator_side [-- --calls N --rate R]` (defaults 600 calls at 200
//! per second); under `cargo test` it parks 20 calls at 20 per second with 50 subscribers.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::*;

const TOKEN: &str = "operator-side-bench-token";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn pct(v: &mut [i64], p: f64) -> i64 {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// A bridged pair for call `i`, its caller named `P<i>`; returns the transferer's name.
async fn pair(ari: &Ari, ami: &Ami, i: usize) -> String {
    let tag = format!("o{i}");
    let mark = ami.mark();
    let b = format!("{tag}-b");
    ari.post(
        "/channels",
        &[
            ("endpoint", &format!("Local/to-dev-{tag}@calls")),
            ("extension", "answer"),
            ("context", "phones"),
            ("priority", "1"),
            ("callerId", &format!("\"P{i}\" <5550100>")),
            ("channelId", &format!("{tag}-a")),
            ("otherChannelId", &b),
        ],
    )
    .await;
    let callee = format!("Local/dev-{tag}@phones-");
    let t = Duration::from_secs(30);
    ami.wait_event(mark, "BridgeEnter", t, |m| {
        m.get("Channel").is_some_and(|c| c.starts_with(&callee))
    })
    .await;
    ami.wait_event(mark, "BridgeEnter", t, |m| {
        m.get("Uniqueid").map(String::as_str) == Some(b.as_str())
    })
    .await["Channel"]
        .clone()
}

/// Parks `calls` calls at `rate` per second; returns each park's latency in ms.
async fn park_run(ari: &Ari, ami: &Ami, cp: &Callpark, calls: usize, rate: f64) -> Vec<i64> {
    // The pairs first, so the paced part is only the transfers.
    let mut transferers = Vec::new();
    for chunk in (0..calls).collect::<Vec<_>>().chunks(10) {
        let pairs = chunk.iter().map(|i| pair(ari, ami, *i));
        transferers.extend(futures_util::future::join_all(pairs).await);
    }
    let start = Instant::now();
    let mut sent = Vec::new();
    let transfers = transferers.iter().enumerate().map(|(i, t)| {
        let ami = ami.clone();
        async move {
            tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate)).into())
                .await;
            let t0 = now_ms();
            ami.blind_transfer(t, "park", "park-in").await;
            (i, t0)
        }
    });
    sent.extend(futures_util::future::join_all(transfers).await);
    let took = start.elapsed();
    wait_for("every call parked", Duration::from_secs(60), || async {
        (cp.parked().await.len() >= calls).then_some(())
    })
    .await;
    println!(
        "  {calls} transfers sent in {:.2} s ({:.0} per second)",
        took.as_secs_f64(),
        calls as f64 / took.as_secs_f64()
    );
    let rows = cp.log_rows().await;
    sent.iter()
        .map(|(i, t0)| {
            let who = format!("from P{i} <");
            let row = rows
                .iter()
                .find(|r| r.kind == "parked" && r.detail.contains(&who))
                .unwrap_or_else(|| panic!("call P{i} was not parked"));
            row.at - t0
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let arg = |k: &str, d: f64| {
        let args: Vec<String> = std::env::args().collect();
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (calls, rate, subscribers) = if full {
        (arg("--calls", 600.0) as usize, arg("--rate", 200.0), 1000)
    } else {
        (20, 20.0, 50)
    };
    let _turn = exclusive_of("asterisk").await;
    let (ari, ami) = testbed().await;
    let base = || Setup {
        park: "pickup_timeout = \"10m\"\nmusic_on_hold = false\n".into(),
        ranges: vec![("701", "799"), ("5000", "5999")],
        ast_include_from_config: true,
        log: "info",
        ..Setup::default()
    };

    // Without the operator's side.
    let cp = Callpark::start(&base()).await;
    println!("park -> parked (orbit committed), {calls} calls at {rate} per second:");
    println!(" without [api]:");
    let mut without = park_run(&ari, &ami, &cp, calls, rate).await;
    ari.reset().await;
    drop(cp);

    // With it: the API, its subscribers, and two webhooks that are no help.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_url = format!("http://{}/hook", slow.local_addr().unwrap());
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                "ok"
            }),
        );
        axum::serve(slow, app).await
    });
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = dead.accept().await {
            held.push(s);
        }
    });
    let (api_toml, port, _api_dir) = api_table(TOKEN);
    let cp = Callpark::start(&Setup {
        extra: format!(
            "{api_toml}webhooks = [\"{slow_url}\", \"{dead_url}\"]\nwebhook_timeout = \"30s\"\n"
        ),
        ..base()
    })
    .await;
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(subscribers + 10)
        .build()
        .unwrap();
    let events = Arc::new(AtomicUsize::new(0));
    for _ in 0..subscribers {
        let (http, api, events) = (http.clone(), api.clone(), events.clone());
        tokio::spawn(async move {
            let r = http
                .get(format!("{api}/events"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("subscribe");
            let mut s = r.bytes_stream();
            // Each event has one `id:` line; the tail of a chunk is kept so a line split
            // across two chunks is counted once.
            let mut carry = b"\n".to_vec();
            while let Some(Ok(chunk)) = s.next().await {
                carry.extend_from_slice(&chunk);
                let n = carry.windows(4).filter(|w| w == b"\nid:").count();
                events.fetch_add(n, Ordering::Relaxed);
                carry = carry[carry.len().saturating_sub(3)..].to_vec();
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The API's own latency while parking goes on.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let (http, api, stop) = (http.clone(), api.clone(), stop.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let r = http
                    .get(format!("{api}/parked"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .expect("GET /parked");
                assert!(r.status().is_success());
                let _ = r.bytes().await;
                lat.push(t0.elapsed().as_micros() as i64);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            lat
        })
    };
    println!(" with [api], {subscribers} event-stream subscribers, a 2 s webhook and a dead one:");
    let mut with = park_run(&ari, &ami, &cp, calls, rate).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut api_lat = prober.await.unwrap();
    let delivered = events.load(Ordering::Relaxed);
    ari.reset().await;
    drop(cp);
    let shipped = std::path::Path::new(REPO).join("dialplan/asterisk/callpark.conf");
    install_asterisk_include(&std::fs::read_to_string(shipped).unwrap());

    let (w50, w99) = (pct(&mut without, 0.5), pct(&mut without, 0.99));
    let (o50, o99) = (pct(&mut with, 0.5), pct(&mut with, 0.99));
    println!("  without: p50 {w50} ms  p99 {w99} ms");
    println!("  with:    p50 {o50} ms  p99 {o99} ms");
    println!(
        "  p99 difference: {} ms ({:+.1} %)",
        o99 - w99,
        100.0 * (o99 - w99) as f64 / w99.max(1) as f64
    );
    println!(
        "  GET /api/v1/parked under load: {} requests, p50 {:.1} ms  p99 {:.1} ms",
        api_lat.len(),
        pct(&mut api_lat, 0.5) as f64 / 1000.0,
        pct(&mut api_lat, 0.99) as f64 / 1000.0
    );
    println!(
        "  events delivered to the subscribers: {delivered} of {} ({} parks x {subscribers})",
        calls * subscribers,
        calls
    );
    assert!(
        delivered >= calls * subscribers,
        "every subscriber sees every park"
    );
}
