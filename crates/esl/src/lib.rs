//! FreeSWITCH's event socket (`mod_event_socket`), as callpark speaks it, usable alone.
//!
//! [`codec`] frames the protocol: [`codec::EslCodec`] is a tokio-util
//! [`Decoder`](tokio_util::codec::Decoder) of [`codec::Frame`]s (a header block, then
//! `Content-Length` bytes of body) and an [`Encoder`](tokio_util::codec::Encoder) of
//! [`codec::Outgoing`] commands, with limits on both halves of a frame. [`model`] reads what the
//! frames carry: events ([`model::FsEvent`], from `text/event-json` or `text/event-plain`) and
//! the channel listing ([`model::ChannelList`]).
//!
//! The crate has no socket of its own: wrap a connection in
//! `tokio_util::codec::Framed::new(stream, EslCodec::default())`, or feed the codec bytes.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use callpark_esl::codec::{EslCodec, Outgoing};
//! use callpark_esl::model::FsEvent;
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let mut codec = EslCodec::default();
//! let body = r#"{"Event-Name":"CHANNEL_PARK","Unique-ID":"abc","variable_callpark_action":"park"}"#;
//! let mut wire = BytesMut::from(
//!     format!("Content-Length: {}\nContent-Type: text/event-json\n\n{body}", body.len()).as_str(),
//! );
//! let frame = codec.decode(&mut wire)?.expect("one whole frame");
//! assert_eq!(frame.content_type(), "text/event-json");
//! let event = FsEvent::from_frame(&frame)?;
//! assert_eq!(event.name, "CHANNEL_PARK");
//! assert_eq!(event.uuid.as_deref(), Some("abc"));
//! assert_eq!(event.callpark_action.as_deref(), Some("park"));
//!
//! let mut out = BytesMut::new();
//! codec.encode(&Outgoing::new("api uptime"), &mut out)?;
//! assert_eq!(&out[..], b"api uptime\n\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod codec;
pub mod model;
