//! The event stream's feed: the log entries that came since the last tick, read from the
//! store by one reader for every subscriber and webhook, each entry's Server-Sent-Events
//! frame rendered once, and compressed once (src/api/gzip.rs) for the subscribers that take
//! gzip.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tracing::warn;

use super::{ApiState, gzip};
use crate::store::LogRow;

/// One tick of the feed: the log entries that came since the last tick, with their
/// Server-Sent-Events frames rendered once and laid end to end. A thousand subscribers share
/// one serialization, and each gets one write a tick rather than one per entry.
#[derive(Debug)]
pub(super) struct Batch {
    /// The entries, in log order.
    pub(super) rows: Vec<LogRow>,
    /// Their frames, end to end.
    frames: bytes::Bytes,
    /// Where each entry's frame starts in `frames`.
    starts: Vec<usize>,
    /// All the frames as one gzip segment, made once for every subscriber that takes gzip.
    gz: std::sync::OnceLock<bytes::Bytes>,
}

impl Batch {
    pub(super) fn new(rows: Vec<LogRow>) -> Batch {
        let mut frames = Vec::new();
        let mut starts = Vec::with_capacity(rows.len());
        for r in &rows {
            starts.push(frames.len());
            frames.extend_from_slice(&frame(r));
        }
        Batch {
            rows,
            frames: frames.into(),
            starts,
            gz: std::sync::OnceLock::new(),
        }
    }

    /// The frames of the entries after entry `last`, if there are any.
    pub(super) fn after(&self, last: i64) -> Option<bytes::Bytes> {
        let i = self.rows.partition_point(|r| r.id <= last);
        (i < self.rows.len()).then(|| self.frames.slice(self.starts[i]..))
    }

    /// [`Batch::after`] as a gzip segment: the whole batch (what nearly every subscriber
    /// wants) is compressed once and shared; a part of it, for a subscriber that joined in
    /// the middle of it, is compressed for that one.
    pub(super) fn after_gz(&self, last: i64) -> Option<bytes::Bytes> {
        let i = self.rows.partition_point(|r| r.id <= last);
        match i {
            0 if !self.rows.is_empty() => {
                Some(self.gz.get_or_init(|| gzip::segment(&self.frames)).clone())
            }
            _ => self.after(last).map(|b| gzip::segment(&b)),
        }
    }

    /// The id of the batch's last entry.
    pub(super) fn last_id(&self) -> Option<i64> {
        self.rows.last().map(|r| r.id)
    }
}

/// The SSE frame of a log entry.
fn frame(r: &LogRow) -> Vec<u8> {
    format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        r.id,
        r.kind,
        event_json(r)
    )
    .into_bytes()
}

/// How often the event feed looks for new log entries while the log is quiet: a lone park
/// reaches the console and the webhooks within this.
const FEED_EVERY: Duration = Duration::from_millis(200);
/// The least time between two batches: while entries keep coming they go out once a second,
/// so a thousand subscribers cost a thousand writes a second however fast calls are parked.
const FEED_GAP: Duration = Duration::from_secs(1);

impl ApiState {
    /// Reads the log as it grows, from after entry `last`, and hands each tick's new entries
    /// to every subscriber of the stream. One reader for all of them, so a thousand
    /// subscribers cost the store one query a tick.
    pub(super) async fn run_feed(self, mut last: i64) {
        loop {
            let pause = match self.store.log_after(last, 1000).await {
                Ok(rows) if rows.is_empty() => FEED_EVERY,
                Ok(rows) => {
                    let batch = Batch::new(rows);
                    last = batch.last_id().unwrap_or(last);
                    // No subscriber is fine: the entries are in the store for a resume.
                    let _ = self.feed.send(Arc::new(batch));
                    FEED_GAP
                }
                Err(e) => {
                    warn!("API event feed: {e}");
                    FEED_GAP
                }
            };
            tokio::time::sleep(pause).await;
        }
    }
}

/// A log entry as the event stream and the webhooks give it: the entry, and whether its
/// orbit was freed by it (the call's park ended).
pub(super) fn event_json(r: &LogRow) -> Value {
    let mut v = serde_json::to_value(r).expect("a log row serializes");
    let ended = crate::park::LogKind::ALL
        .iter()
        .any(|k| k.is_final() && k.as_str() == r.kind);
    v["orbit_freed"] = Value::Bool(ended && r.orbit.is_some());
    v
}

/// Stored entries as stream chunks of up to a thousand frames, each with its last entry's id;
/// gzip segments if `gz`.
pub(super) fn chunks(
    rows: Vec<LogRow>,
    gz: bool,
) -> std::collections::VecDeque<(i64, bytes::Bytes)> {
    let mut out = std::collections::VecDeque::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch = Batch::new(rows.by_ref().take(1000).collect());
        let b = match gz {
            true => batch.after_gz(i64::MIN),
            false => batch.after(i64::MIN),
        };
        if let (Some(id), Some(b)) = (batch.last_id(), b) {
            out.push_back((id, b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> LogRow {
        LogRow {
            id,
            at: 1_700_000_000_000 + id,
            pool: "pbx".into(),
            kind: "parked".into(),
            channel: format!("ch{id}"),
            orbit: Some("701".into()),
            lot: None,
            detail: format!("call {id}"),
        }
    }

    fn ids(b: &[u8]) -> Vec<i64> {
        String::from_utf8_lossy(b)
            .lines()
            .filter_map(|l| l.strip_prefix("id: ")?.parse().ok())
            .collect()
    }

    #[test]
    fn a_batch_gives_each_subscriber_what_it_has_not_seen() {
        let b = Batch::new((10..15).map(row).collect());
        assert_eq!(ids(&b.after(0).unwrap()), vec![10, 11, 12, 13, 14]);
        assert_eq!(ids(&b.after(12).unwrap()), vec![13, 14]);
        assert_eq!(b.after(14), None);
        assert_eq!(b.last_id(), Some(14));
        // Every frame ends with its blank line, so a slice is whole frames.
        let tail = b.after(11).unwrap();
        assert!(tail.starts_with(b"id: 12\n") && tail.ends_with(b"\n\n"));
        assert_eq!(Batch::new(vec![]).after(0), None);
    }

    #[test]
    fn a_backlog_goes_out_in_chunks_of_a_thousand() {
        let c = chunks((1..=2500).map(row).collect(), false);
        let lasts: Vec<i64> = c.iter().map(|(id, _)| *id).collect();
        assert_eq!(lasts, vec![1000, 2000, 2500]);
        let all: Vec<i64> = c.iter().flat_map(|(_, b)| ids(b)).collect();
        assert_eq!(all, (1..=2500).collect::<Vec<_>>());
        assert!(chunks(vec![], false).is_empty());
        // In gzip, the same chunks decode to the same frames.
        let gz = chunks((1..=2500).map(row).collect(), true);
        assert_eq!(gz.iter().map(|(id, _)| *id).collect::<Vec<_>>(), lasts);
        let mut stream = gzip::HEADER.to_vec();
        gz.iter().for_each(|(_, b)| stream.extend_from_slice(b));
        let plain: Vec<u8> = c.iter().flat_map(|(_, b)| b.to_vec()).collect();
        assert_eq!(gunzip(&stream), plain);
    }

    /// What a reader of a gzip event stream (no trailer) has decoded.
    fn gunzip(stream: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        match flate2::read::GzDecoder::new(stream).read_to_end(&mut out) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}"),
        }
        out
    }

    #[test]
    fn a_whole_batch_is_compressed_once_and_a_part_for_its_subscriber() {
        let b = Batch::new((10..15).map(row).collect());
        let whole = b.after_gz(9).unwrap();
        // The same bytes for every subscriber that wants it all: shared, not recompressed.
        assert_eq!(whole.as_ptr(), b.after_gz(0).unwrap().as_ptr());
        let part = b.after_gz(11).unwrap();
        let decoded = gunzip(&[&gzip::HEADER[..], &whole, &part].concat());
        let want = [b.after(9).unwrap(), b.after(11).unwrap()].concat();
        assert_eq!(decoded, want);
        assert_eq!(b.after_gz(14), None);
        assert_eq!(Batch::new(vec![]).after_gz(0), None);
    }
}
