//! The event-socket decoder on a realistic event mix: the real traffic of
//! `tests/data/freeswitch/captured/03-main.raw` (replies, plain events of a park, a retrieve, a
//! ringback), and the same events as `event json` sends them (what callpark subscribes to), each
//! repeated to about 64 MB. Reported: frames/s and MB/s of the framing alone, of framing plus
//! reading each event, and of a bare `memchr` scan for the blank lines of the same bytes (the
//! floor any framing pays). Target: at least 200 MB/s.
//!
//! Run: `cargo bench --bench esl_codec`. Under `cargo test` it runs on 1 MB only.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use callpark::pbx::freeswitch::codec::{EslCodec, Frame};
use callpark::pbx::freeswitch::model::FsEvent;
use tokio_util::codec::Decoder;

fn capture() -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/freeswitch/captured/03-main.raw");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut c = EslCodec::default();
    let mut b = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(f) = c.decode(&mut b).unwrap() {
        out.push(f);
    }
    out
}

/// The capture's plain events as `text/event-json` frames, the rest as they were.
fn as_json(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames(bytes) {
        if f.content_type() != "text/event-plain" {
            out.extend_from_slice(f.head().as_bytes());
            out.extend_from_slice(b"\n\n");
            out.extend_from_slice(&f.body);
            continue;
        }
        let text = f.body_text();
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut m = serde_json::Map::new();
        for line in head.lines() {
            if let Some((k, v)) = line.split_once(": ") {
                let v = percent_decode(v);
                m.insert(k.to_string(), serde_json::Value::String(v));
            }
        }
        if !body.is_empty() {
            m.insert("_body".into(), serde_json::Value::String(body.to_string()));
        }
        let json = serde_json::Value::Object(m).to_string();
        out.extend_from_slice(
            format!(
                "Content-Length: {}\nContent-Type: text/event-json\n\n",
                json.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(json.as_bytes());
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(x) = u8::from_str_radix(hex, 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn repeat_to(bytes: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + bytes.len());
    while out.len() < size {
        out.extend_from_slice(bytes);
    }
    out
}

/// Best of `runs` timings of `f` over `bytes`, with the count it returns.
fn time(runs: usize, bytes: &[u8], mut f: impl FnMut(&[u8]) -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut n = 0;
    for _ in 0..runs {
        let t = Instant::now();
        n = std::hint::black_box(f(std::hint::black_box(bytes)));
        best = best.min(t.elapsed());
    }
    (best, n)
}

fn decode_count(bytes: &[u8], read_events: bool) -> usize {
    let mut c = EslCodec::default();
    // As from a socket: 64 KiB reads into the codec's buffer.
    let mut buf = BytesMut::with_capacity(1 << 17);
    let mut n = 0;
    for chunk in bytes.chunks(64 * 1024) {
        buf.extend_from_slice(chunk);
        while let Some(f) = c.decode(&mut buf).unwrap() {
            if read_events
                && f.content_type().starts_with("text/event-")
                && FsEvent::from_frame(&f).is_err()
            {
                panic!("undecodable event");
            }
            n += 1;
        }
    }
    n
}

fn memchr_scan(bytes: &[u8]) -> usize {
    memchr::memmem::find_iter(bytes, b"\n\n").count()
}

fn report(label: &str, bytes: usize, (d, n): (Duration, usize)) {
    let s = d.as_secs_f64();
    println!(
        "  {label:<34} {:>9.0} frames/s  {:>8.0} MB/s  ({n} frames, {:.1} ms)",
        n as f64 / s,
        bytes as f64 / 1e6 / s,
        s * 1e3
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (size, runs) = if full { (64 << 20, 7) } else { (1 << 20, 1) };
    let plain = repeat_to(&capture(), size);
    let json = repeat_to(&as_json(&capture()), size);
    for (name, bytes) in [
        ("plain events (as captured)", &plain),
        ("json events", &json),
    ] {
        println!("{name}, {:.1} MB:", bytes.len() as f64 / 1e6);
        let framing = time(runs, bytes, |b| decode_count(b, false));
        let reading = time(runs, bytes, |b| decode_count(b, true));
        let scan = time(runs, bytes, memchr_scan);
        report("framing", bytes.len(), framing);
        report("framing + reading each event", bytes.len(), reading);
        report("memchr scan for blank lines", bytes.len(), scan);
        assert!(framing.1 > 0 && reading.1 == framing.1);
    }
}
