//! The event socket's framing, as `mod_event_socket.c` writes it: a block of `Name: value`
//! header lines ended by an empty line, then `Content-Length` bytes of body when that header
//! is present. Every reply, event and notice is one such frame; what it is depends on
//! `Content-Type` (`auth/request`, `command/reply`, `api/response`, `text/event-json`,
//! `text/event-plain`, `text/disconnect-notice`).
//!
//! The decoder only finds frame boundaries and checks them; headers are read on demand from
//! the kept bytes, so a frame costs one scan for the blank line and no copy. Limits keep a
//! broken or hostile peer from making us buffer without end.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem;
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder};

/// The largest header block accepted (FreeSWITCH's own are a few lines).
pub const MAX_HEAD: usize = 16 * 1024;
/// The largest body accepted (`show channels as json` with thousands of calls stays far below).
pub const MAX_BODY: usize = 32 * 1024 * 1024;

/// A frame that breaks the protocol; the connection is closed with this as the reason.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("header block longer than {MAX_HEAD} bytes without an empty line")]
    HeadTooLong,
    #[error("body of {0} bytes is larger than the {MAX_BODY}-byte limit")]
    BodyTooLong(u64),
    #[error("header line {0:?} is not `Name: value`")]
    BadHeader(String),
    #[error("header block is not UTF-8")]
    NotUtf8,
    #[error("Content-Length {0:?} is not a number")]
    BadLength(String),
    #[error("the connection closed in the middle of a frame ({0} bytes pending)")]
    Truncated(usize),
    #[error("a command may not contain a line break: {0:?}")]
    CommandLineBreak(String),
    #[error("i/o: {0}")]
    Io(String),
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        FrameError::Io(e.to_string())
    }
}

/// One frame: its header block (checked UTF-8, without the blank line) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    head: Bytes,
    pub body: Bytes,
}

impl Frame {
    /// The header block's text.
    pub fn head(&self) -> &str {
        // Checked when the frame was decoded.
        std::str::from_utf8(&self.head).unwrap_or_default()
    }

    /// The value of a header (first occurrence; names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head().split('\n').find_map(|l| {
            let (k, v) = l.split_once(": ")?;
            k.eq_ignore_ascii_case(name).then_some(v)
        })
    }

    pub fn content_type(&self) -> &str {
        self.header("Content-Type").unwrap_or("")
    }

    /// The body as text (lossy: bodies are text in this protocol).
    pub fn body_text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// `Reply-Text` of a `command/reply`, or the body of an `api/response`.
    pub fn reply_text(&self) -> std::borrow::Cow<'_, str> {
        match self.header("Reply-Text") {
            Some(t) => t.into(),
            None => self.body_text(),
        }
    }
}

/// Frames in, commands out.
#[derive(Debug, Default)]
pub struct EslCodec {
    /// The header block of a frame whose body has not arrived in full.
    pending: Option<(Bytes, usize)>,
}

impl Decoder for EslCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if self.pending.is_none() {
            // FreeSWITCH separates frames cleanly, but a stray blank line between them is
            // harmless: skip it rather than read it as an empty header block.
            let skip = src.iter().take_while(|&&b| b == b'\n').count();
            src.advance(skip);
            let Some(end) = memmem::find(src, b"\n\n") else {
                if src.len() > MAX_HEAD {
                    return Err(FrameError::HeadTooLong);
                }
                return Ok(None);
            };
            if end > MAX_HEAD {
                return Err(FrameError::HeadTooLong);
            }
            let head = src.split_to(end).freeze();
            src.advance(2);
            let len = check_head(&head)?;
            self.pending = Some((head, len));
        }
        let (_, len) = self.pending.as_ref().expect("set above");
        if src.len() < *len {
            src.reserve(*len - src.len());
            return Ok(None);
        }
        let (head, len) = self.pending.take().expect("set above");
        let body = src.split_to(len).freeze();
        Ok(Some(Frame { head, body }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(src)? {
            Some(f) => Ok(Some(f)),
            None => {
                let left = src.iter().filter(|&&b| b != b'\n').count();
                if self.pending.is_some() || left > 0 {
                    Err(FrameError::Truncated(src.len()))
                } else {
                    Ok(None)
                }
            }
        }
    }
}

/// Checks a header block and returns its body length.
fn check_head(head: &[u8]) -> Result<usize, FrameError> {
    let text = std::str::from_utf8(head).map_err(|_| FrameError::NotUtf8)?;
    let mut len = 0usize;
    for line in text.split('\n') {
        let Some((name, value)) = line.split_once(": ").or_else(|| {
            // `Name:` with an empty value is written without the space.
            line.strip_suffix(':').map(|n| (n, ""))
        }) else {
            return Err(FrameError::BadHeader(line.chars().take(80).collect()));
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace() || b == b':') {
            return Err(FrameError::BadHeader(line.chars().take(80).collect()));
        }
        if name.eq_ignore_ascii_case("Content-Length") {
            let n: u64 = value
                .parse()
                .map_err(|_| FrameError::BadLength(value.chars().take(40).collect()))?;
            if n > MAX_BODY as u64 {
                return Err(FrameError::BodyTooLong(n));
            }
            len = n as usize;
        }
    }
    Ok(len)
}

/// A command to the event socket: its first line (`api status`, `auth …`) and extra header
/// lines (`Job-UUID` of a `bgapi`, the headers of a `sendevent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub line: String,
    pub headers: Vec<(String, String)>,
}

impl Outgoing {
    pub fn new(line: impl Into<String>) -> Outgoing {
        Outgoing {
            line: line.into(),
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, k: &str, v: impl Into<String>) -> Outgoing {
        self.headers.push((k.into(), v.into()));
        self
    }
}

impl Encoder<&Outgoing> for EslCodec {
    type Error = FrameError;

    fn encode(&mut self, cmd: &Outgoing, dst: &mut BytesMut) -> Result<(), FrameError> {
        // A line break would end the command early and smuggle in another one.
        let bad = |s: &str| s.contains(['\n', '\r']);
        if bad(&cmd.line) || cmd.headers.iter().any(|(k, v)| bad(k) || bad(v)) {
            return Err(FrameError::CommandLineBreak(cmd.line.clone()));
        }
        dst.extend_from_slice(cmd.line.as_bytes());
        dst.extend_from_slice(b"\n");
        for (k, v) in &cmd.headers {
            dst.extend_from_slice(k.as_bytes());
            dst.extend_from_slice(b": ");
            dst.extend_from_slice(v.as_bytes());
            dst.extend_from_slice(b"\n");
        }
        dst.extend_from_slice(b"\n");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
        let mut c = EslCodec::default();
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(f) = c.decode(&mut buf)? {
            out.push(f);
        }
        if let Some(f) = c.decode_eof(&mut buf)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn frames_with_and_without_bodies() {
        let f = decode_all(
            b"Content-Type: auth/request\n\nContent-Type: api/response\nContent-Length: 4\n\n+OK\n",
        )
        .unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].content_type(), "auth/request");
        assert_eq!(f[1].reply_text(), "+OK\n");
    }

    #[test]
    fn bad_frames_are_errors() {
        assert_eq!(
            decode_all(b"Content-Type: x\nContent-Length: 10\n\nabc"),
            Err(FrameError::Truncated(3))
        );
        assert!(matches!(
            decode_all(b"garbage line\n\n"),
            Err(FrameError::BadHeader(_))
        ));
        assert!(matches!(
            decode_all(b"Content-Length: 99999999999\n\n"),
            Err(FrameError::BodyTooLong(_))
        ));
        assert!(matches!(
            decode_all(b"Content-Length: -1\n\n"),
            Err(FrameError::BadLength(_))
        ));
        assert_eq!(
            decode_all(&vec![b'a'; MAX_HEAD + 1]),
            Err(FrameError::HeadTooLong)
        );
    }

    #[test]
    fn commands_cannot_smuggle_lines() {
        let mut c = EslCodec::default();
        let mut dst = BytesMut::new();
        assert!(
            c.encode(&Outgoing::new("api status\n\napi hupall"), &mut dst)
                .is_err()
        );
        c.encode(
            &Outgoing::new("bgapi originate x").header("Job-UUID", "j1"),
            &mut dst,
        )
        .unwrap();
        assert_eq!(&dst[..], b"bgapi originate x\nJob-UUID: j1\n\n");
    }
}
