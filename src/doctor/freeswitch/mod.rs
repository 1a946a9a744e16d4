//! The doctor for a FreeSWITCH `[[pbx]]`: everything is asked of FreeSWITCH itself over the
//! event socket, as callpark will ask it: the live dial plan (`xml_locate dialplan`, after the
//! preprocessor, so it is what calls hunt), the directory (the contexts phones dial from), the
//! sofia profiles (presence for busy lamps), the music streams.

mod checks;

use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::codec::Encoder;

use super::{Check, Options};
use crate::config::{Config, PbxConfig};
use crate::pbx::freeswitch::codec::{EslCodec, Outgoing};
use crate::pbx::freeswitch::{ConnectError, Reader, open_event_socket};

pub use checks::checks;

#[cfg(test)]
mod tests;

/// What FreeSWITCH said, each `None` when it could not be asked.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Why the event socket could not be opened; `None` when it was.
    pub connect: Option<Connect>,
    /// The reply to subscribing to callpark's events.
    pub events: Option<String>,
    /// `xml_locate dialplan`.
    pub dialplan: Option<String>,
    /// `xml_locate directory`.
    pub directory: Option<String>,
    /// `xml_locate configuration configuration name sofia.conf`.
    pub sofia: Option<String>,
    /// `global_getvar hold_music`.
    pub hold_music: Option<String>,
    /// `local_stream show`: `name,directory` lines.
    pub streams: Option<String>,
}

/// Why the event socket could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connect {
    /// Nothing answered at the address (refused, timed out, not an event socket).
    Unreachable(String),
    /// The event socket refused the password.
    Refused(String),
}

const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection for the doctor's questions.
struct Ask {
    reader: Reader,
    writer: OwnedWriteHalf,
}

impl Ask {
    /// Sends one command and returns the text of its reply (an `api` command's body).
    async fn send(&mut self, line: &str) -> Option<String> {
        let mut buf = BytesMut::new();
        EslCodec::default()
            .encode(&Outgoing::new(line.to_string()), &mut buf)
            .ok()?;
        self.writer.write_all(&buf).await.ok()?;
        loop {
            let f = tokio::time::timeout(REPLY_TIMEOUT, self.reader.next())
                .await
                .ok()??
                .ok()?;
            match f.content_type() {
                "api/response" => return Some(f.body_text().into_owned()),
                "command/reply" => return Some(f.reply_text().into_owned()),
                // Events of the subscription, or a log line: not the reply.
                _ => continue,
            }
        }
    }

    async fn api(&mut self, cmd: &str) -> Option<String> {
        self.send(&format!("api {cmd}")).await
    }
}

/// Asks FreeSWITCH everything the checks need.
pub async fn gather(pbx: &PbxConfig, password: &str) -> Facts {
    let (reader, writer) = match open_event_socket(pbx.address.trim(), password).await {
        Ok(c) => c,
        Err(ConnectError::Refused(r)) => {
            return Facts {
                connect: Some(Connect::Refused(r)),
                ..Facts::default()
            };
        }
        Err(e) => {
            return Facts {
                connect: Some(Connect::Unreachable(e.to_string())),
                ..Facts::default()
            };
        }
    };
    let mut ask = Ask { reader, writer };
    let mut f = Facts {
        events: ask
            .send("event plain CHANNEL_PARK CHANNEL_BRIDGE CHANNEL_HANGUP_COMPLETE CUSTOM callpark::clock")
            .await,
        ..Facts::default()
    };
    // Not a subscription of this connection any more: the replies below are what is read.
    let _ = ask.send("noevents").await;
    f.dialplan = ask.api("xml_locate dialplan").await;
    f.directory = ask.api("xml_locate directory").await;
    f.sofia = ask
        .api("xml_locate configuration configuration name sofia.conf")
        .await;
    f.hold_music = ask.api("global_getvar hold_music").await;
    f.streams = ask.api("local_stream show").await;
    let _ = ask.send("exit").await;
    f
}

/// Runs the checks of one FreeSWITCH pool.
pub async fn examine(cfg: &Config, pbx: &PbxConfig, opts: &Options) -> Vec<Check> {
    let password = match super::secret_of(pbx) {
        Ok(p) => p,
        Err(c) => return vec![c],
    };
    let facts = gather(pbx, &password).await;
    checks(cfg, pbx, opts, &facts)
}
