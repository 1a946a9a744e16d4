//! The event stream in gzip (`Content-Encoding: gzip`), compressed once for all subscribers.
//!
//! Writing the same frames to a thousand subscribers costs callpark, and the kernel's
//! loopback or network path, in proportion to the bytes; the frames are JSON that repeats its
//! keys, and shrink several times in gzip. Compressing per subscriber would cost a thousand
//! compressions; instead each batch is compressed once into a *segment*: raw deflate blocks
//! that refer to nothing before them, end with a sync flush (byte-aligned, no final block),
//! and so may follow any other segment. A subscriber's stream is [`HEADER`] and then
//! segments, which is one valid gzip member whatever segments it got. It has no trailer: the
//! stream ends only when its connection does, and gzip readers (browsers, reqwest) hand
//! over what they decoded as it comes.

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};

/// A gzip member's header: deflate, no name, no time, unknown OS.
pub const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// `data` as a self-contained segment (see the module's comment).
pub fn segment(data: &[u8]) -> Bytes {
    // A fresh compressor per segment: no back-reference can reach into an earlier segment,
    // which the subscriber may not have got.
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    loop {
        let done = c.total_in() as usize;
        c.compress_vec(&data[done..], &mut out, FlushCompress::Sync)
            .expect("deflate of a complete buffer cannot fail");
        // Finished when all input is in and the flush left room unused: zlib fills the
        // buffer to the brim while it has more to write.
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            return out.into();
        }
        out.reserve(out.capacity().max(256));
    }
}

/// Whether a request's `Accept-Encoding` takes gzip (every browser's does): a `gzip` or
/// `x-gzip` entry whose q-value is not zero.
pub fn accepted(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|v| {
        v.split(',').any(|entry| {
            let mut parts = entry.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            (coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip"))
                && parts.all(|p| {
                    let Some(q) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) else {
                        return true;
                    };
                    q.trim().parse::<f32>().is_ok_and(|q| q > 0.0)
                })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Reads what a gzip stream without a trailer decodes to, as a streaming reader sees it.
    fn decode(stream: &[u8]) -> Vec<u8> {
        let mut d = flate2::read::GzDecoder::new(stream);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match d.read(&mut buf) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                // The missing trailer, once everything before it is out.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return out,
                Err(e) => panic!("not gzip: {e}"),
            }
        }
    }

    fn frames(n: usize, from: usize) -> Vec<u8> {
        (from..from + n)
            .map(|i| {
                format!(
                    "id: {i}\nevent: parked\ndata: {{\"id\":{i},\"orbit\":\"{}\",\"caller\":\"P{i}\"}}\n\n",
                    700 + i % 100
                )
            })
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn segments_in_any_selection_make_one_stream() {
        let parts: Vec<Vec<u8>> = (0..6).map(|k| frames(k * 37 + 1, k * 1000)).collect();
        let segs: Vec<Bytes> = parts.iter().map(|p| segment(p)).collect();
        // A subscriber that joined late, or skipped a part (it resumed from the store), still
        // decodes exactly the parts it got, in order.
        for pick in [
            vec![0, 1, 2, 3, 4, 5],
            vec![3, 4],
            vec![5],
            vec![0, 2, 5],
            vec![],
        ] {
            let mut stream = HEADER.to_vec();
            let mut want = Vec::new();
            for &k in &pick {
                stream.extend_from_slice(&segs[k]);
                want.extend_from_slice(&parts[k]);
            }
            assert_eq!(decode(&stream), want, "parts {pick:?}");
        }
    }

    #[test]
    fn every_segment_is_decodable_as_soon_as_it_arrives() {
        // A reader must see each batch when its bytes are in, not when the next one comes:
        // after every segment, all frames so far decode.
        let mut stream = HEADER.to_vec();
        let mut want = Vec::new();
        for k in 0..5 {
            let part = frames(50, k * 50);
            stream.extend_from_slice(&segment(&part));
            want.extend_from_slice(&part);
            assert_eq!(decode(&stream), want);
        }
    }

    #[test]
    fn frames_shrink_several_times() {
        let part = frames(200, 0);
        let seg = segment(&part);
        assert!(
            seg.len() * 4 < part.len(),
            "{} of {}",
            seg.len(),
            part.len()
        );
        // Large inputs and empty ones both come out whole.
        let big = frames(20_000, 0);
        assert_eq!(decode(&[&HEADER[..], &segment(&big)].concat()), big);
        assert_eq!(decode(&[&HEADER[..], &segment(b"")].concat()), b"");
    }

    #[test]
    fn accept_encoding() {
        for yes in [
            "gzip",
            "gzip, deflate, br, zstd",
            "br;q=1.0, gzip;q=0.8, *;q=0.1",
            "X-GZIP",
            "deflate, gzip ; q=0.5",
        ] {
            assert!(accepted(Some(yes)), "{yes}");
        }
        for no in [
            "",
            "identity",
            "br, deflate",
            "gzip;q=0",
            "gzip; q=0.0",
            "gzipx",
        ] {
            assert!(!accepted(Some(no)), "{no}");
        }
        assert!(!accepted(None));
    }
}
