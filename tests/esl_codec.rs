//! The event-socket codec and event reader on real bytes captured from FreeSWITCH 1.11.3
//! (`tests/data/freeswitch/captured`): every frame is found, whatever the reads look like (split at every
//! byte), and a truncated or corrupted stream is an error, never a panic.

use std::path::PathBuf;

use bytes::BytesMut;
use callpark::pbx::freeswitch::codec::{EslCodec, Frame, FrameError};
use callpark::pbx::freeswitch::model::{ChannelList, FsEvent};
use proptest::prelude::*;
use serde_json::Value;
use tokio_util::codec::Decoder;

fn capture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/freeswitch/captured")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Decodes `bytes` fed in the given chunk sizes (cycled), then the end of the stream.
fn decode_chunked(bytes: &[u8], chunks: &[usize]) -> Result<Vec<Frame>, FrameError> {
    let mut codec = EslCodec::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < bytes.len() {
        let n = chunks[i % chunks.len()].max(1).min(bytes.len() - pos);
        buf.extend_from_slice(&bytes[pos..pos + n]);
        pos += n;
        i += 1;
        while let Some(f) = codec.decode(&mut buf)? {
            out.push(f);
        }
    }
    while let Some(f) = codec.decode_eof(&mut buf)? {
        out.push(f);
    }
    Ok(out)
}

fn decode(bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
    decode_chunked(bytes, &[usize::MAX])
}

/// The frames of 03-main.raw as the capture's own splitter saw them (frames.jsonl).
fn expected_frames() -> Vec<(Value, String)> {
    let text = String::from_utf8(capture("03-main.frames.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["headers"].clone(),
                v["body"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_frame_of_the_main_capture_is_found_with_its_headers_and_body() {
    let frames = decode(&capture("03-main.raw")).unwrap();
    let want = expected_frames();
    assert_eq!(frames.len(), want.len());
    assert_eq!(frames.len(), 106);
    for (f, (headers, body)) in frames.iter().zip(&want) {
        for (k, v) in headers.as_object().unwrap() {
            assert_eq!(f.header(k), v.as_str(), "header {k} of {}", f.head());
        }
        assert_eq!(f.body_text(), *body);
    }
}

#[test]
fn byte_by_byte_and_odd_reads_give_the_same_frames() {
    for name in ["01-bad-auth.raw", "02-before-auth.raw", "03-main.raw"] {
        let bytes = capture(name);
        let whole = decode(&bytes).unwrap();
        for chunks in [&[1][..], &[2], &[3, 7], &[13, 1, 4096], &[1000]] {
            assert_eq!(
                decode_chunked(&bytes, chunks).unwrap(),
                whole,
                "{name} read in chunks of {chunks:?}"
            );
        }
    }
}

/// Two reads, split at every byte of each of the small captures and of each of the first
/// frames of the main one.
#[test]
fn split_at_every_byte_boundary() {
    let main = capture("03-main.raw");
    let mut pieces = vec![capture("01-bad-auth.raw"), capture("02-before-auth.raw")];
    // The first 24 frames of the main capture cover every kind of reply and event.
    let mut codec = EslCodec::default();
    let mut buf = BytesMut::from(&main[..]);
    let mut start = 0;
    for _ in 0..24 {
        let before = buf.len();
        codec.decode(&mut buf).unwrap().unwrap();
        let used = before - buf.len();
        pieces.push(main[start..start + used].to_vec());
        start += used;
    }
    for p in &pieces {
        let whole = decode(p).unwrap();
        assert!(!whole.is_empty());
        for cut in 0..=p.len() {
            let mut codec = EslCodec::default();
            let mut buf = BytesMut::from(&p[..cut]);
            let mut got = Vec::new();
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            buf.extend_from_slice(&p[cut..]);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            assert_eq!(got, whole, "split at byte {cut} of {} bytes", p.len());
        }
    }
}

#[test]
fn every_event_of_the_captures_is_read() {
    let frames = decode(&capture("03-main.raw")).unwrap();
    let mut plain = 0;
    let mut json = 0;
    for f in &frames {
        match f.content_type() {
            "text/event-plain" => plain += 1,
            "text/event-json" => json += 1,
            _ => continue,
        }
        let e = FsEvent::from_frame(f).unwrap_or_else(|e| panic!("{e}: {}", f.body_text()));
        assert!(!e.name.is_empty(), "{}", f.body_text());
    }
    assert_eq!((plain, json), (69, 8));
    // The parked call of the capture, in both encodings.
    let parks: Vec<FsEvent> = frames
        .iter()
        .filter_map(|f| FsEvent::from_frame(f).ok())
        .filter(|e| e.name == "CHANNEL_PARK" && e.callpark_action.is_some())
        .collect();
    assert!(
        parks
            .iter()
            .any(|e| e.callpark_action.as_deref() == Some("park"))
    );
    let retrieve = parks
        .iter()
        .find(|e| e.callpark_action.as_deref() == Some("retrieve"))
        .expect("the retrieve of the capture");
    assert_eq!(retrieve.callpark_orbit.as_deref(), Some("701"));
    // `Outbound%20Call` in the plain event.
    assert_eq!(
        retrieve.caller_name.as_deref(),
        Some("Outbound Call"),
        "URL-decoded"
    );
    let job = frames
        .iter()
        .filter_map(|f| FsEvent::from_frame(f).ok())
        .find(|e| e.name == "BACKGROUND_JOB")
        .unwrap();
    assert_eq!(job.body.as_deref(), Some("-ERR NO_ANSWER\n"));
    assert_eq!(
        job.job_uuid.as_deref(),
        Some("f470cf1a-f331-4045-9ddb-74dfc20e05dc")
    );
    // `show channels as json`.
    let list = frames
        .iter()
        .find(|f| f.body_text().starts_with("{\"row_count\""))
        .unwrap();
    let rows = ChannelList::parse(&list.body_text()).unwrap().rows;
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r.uuid.len() == 36));
}

#[test]
fn refusals_and_notices_of_the_captures() {
    let bad = decode(&capture("01-bad-auth.raw")).unwrap();
    let kinds: Vec<&str> = bad.iter().map(Frame::content_type).collect();
    assert_eq!(
        kinds,
        ["auth/request", "command/reply", "text/disconnect-notice"]
    );
    assert_eq!(bad[1].reply_text(), "-ERR invalid");
    let before = decode(&capture("02-before-auth.raw")).unwrap();
    assert_eq!(before[1].reply_text(), "-ERR command not found");
}

#[test]
fn every_truncation_inside_a_frame_is_an_error() {
    let bytes = capture("03-main.raw");
    // Frame ends: a cut anywhere else leaves a partial frame.
    let mut ends = std::collections::HashSet::new();
    let mut codec = EslCodec::default();
    let mut buf = BytesMut::from(&bytes[..]);
    while codec.decode(&mut buf).unwrap().is_some() {
        ends.insert(bytes.len() - buf.len());
    }
    for cut in (0..bytes.len()).step_by(7).chain([1, 2, 27, 28]) {
        let r = decode(&bytes[..cut]);
        if ends.contains(&cut) || cut == 0 {
            assert!(r.is_ok(), "a cut between frames at {cut} is clean");
        } else {
            assert!(
                matches!(r, Err(FrameError::Truncated(_))),
                "cut at {cut}: {r:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random bytes overwritten, inserted or removed anywhere in the first frames: the codec
    /// returns frames or an error, and an event body that is not an event is an error too.
    #[test]
    fn corrupted_streams_never_panic(
        edits in prop::collection::vec((0usize..8192, any::<u8>(), 0u8..3), 1..12),
        chunk in 1usize..64,
    ) {
        let mut bytes = capture("03-main.raw")[..8192].to_vec();
        for (pos, b, op) in edits {
            let pos = pos.min(bytes.len().saturating_sub(1));
            match op {
                0 => bytes[pos] = b,
                1 => bytes.insert(pos, b),
                _ => { bytes.remove(pos); }
            }
        }
        if let Ok(frames) = decode_chunked(&bytes, &[chunk]) {
            for f in frames {
                let _ = FsEvent::from_frame(&f);
                let _ = ChannelList::parse(&f.body_text());
            }
        }
    }

    /// Any bytes at all.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(frames) = decode(&bytes) {
            for f in frames {
                let _ = FsEvent::from_frame(&f);
            }
        }
    }
}
