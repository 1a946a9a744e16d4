//! The reload after `callpark setup freeswitch`, over the event socket: one connection, a few
//! `api`/`bgapi` commands, each answered before the next is sent.

use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::codec::Encoder;

use super::freeswitch::Socket;
use crate::pbx::freeswitch::codec::{EslCodec, Outgoing};
use crate::pbx::freeswitch::{Reader, open_event_socket};

const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the event socket may take to listen again after `reload mod_event_socket`.
const BACK_WITHIN: Duration = Duration::from_secs(15);

struct Conn {
    reader: Reader,
    writer: OwnedWriteHalf,
}

impl Conn {
    /// Sends one command; the text of its reply.
    async fn send(&mut self, line: &str) -> Result<String, String> {
        let mut buf = BytesMut::new();
        EslCodec::default()
            .encode(&Outgoing::new(line.to_string()), &mut buf)
            .map_err(|e| e.to_string())?;
        self.writer
            .write_all(&buf)
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let f = tokio::time::timeout(REPLY_TIMEOUT, self.reader.next())
                .await
                .map_err(|_| format!("no reply to `{line}` within {REPLY_TIMEOUT:?}"))?
                .ok_or_else(|| format!("the event socket closed before replying to `{line}`"))?
                .map_err(|e| e.to_string())?;
            match f.content_type() {
                "api/response" => return Ok(f.body_text().into_owned()),
                "command/reply" => return Ok(f.reply_text().into_owned()),
                // A log line or an event: not the reply.
                _ => continue,
            }
        }
    }
}

/// Loads the changed files: `reloadxml` (the dialplan and the include), then, when its file
/// changed, `reload mod_event_socket` as a background job (the module's reload closes this
/// very connection, so an `api` would never be answered). Connects to the socket as it was
/// before the change, with the password it had; with the new one when that is refused (a
/// socket already reloaded by hand). Returns what FreeSWITCH answered, one line per command.
pub async fn reload(
    before: &Socket,
    after: &Socket,
    event_socket_changed: bool,
) -> Result<Vec<String>, String> {
    let mut conn = None;
    let mut why = Vec::new();
    let mut tried: Vec<&Socket> = Vec::new();
    for s in [before, after] {
        if tried.contains(&s) {
            continue;
        }
        tried.push(s);
        match open_event_socket(&s.address, &s.password).await {
            Ok((reader, writer)) => {
                conn = Some(Conn { reader, writer });
                break;
            }
            Err(e) => {
                let e = e.to_string();
                why.push(if e.contains(&s.address) {
                    e
                } else {
                    format!("{}: {e}", s.address)
                });
            }
        }
    }
    let Some(mut c) = conn else {
        return Err(format!(
            "cannot reach FreeSWITCH's event socket ({}): start FreeSWITCH, or load the changes by hand with `fs_cli -x reloadxml` and `fs_cli -x 'reload mod_event_socket'`",
            why.join("; ")
        ));
    };
    let mut said = Vec::new();
    let r = c.send("api reloadxml").await?;
    if !r.trim_start().starts_with("+OK") {
        return Err(format!(
            "reloadxml failed: {} (FreeSWITCH's log says which file it could not read)",
            r.trim()
        ));
    }
    said.push(format!("reloadxml: {}", r.trim()));
    if event_socket_changed {
        let r = c.send("bgapi reload mod_event_socket").await?;
        said.push(format!("reload mod_event_socket: {}", r.trim()));
        // The module's unload closes every connection, this one too: the surest sign that
        // the old socket is gone and the one the file now describes is coming up.
        let closed = tokio::time::timeout(BACK_WITHIN, async {
            while let Some(Ok(_)) = c.reader.next().await {}
        })
        .await;
        if closed.is_err() {
            said.push(format!(
                "reload mod_event_socket: the old connection was still open after {BACK_WITHIN:?}"
            ));
        }
    } else {
        let _ = c.send("exit").await;
    }
    Ok(said)
}

/// Waits until the event socket answers at `s` with its password (after its module's
/// reload); whether it did within [`BACK_WITHIN`].
pub async fn wait_for(s: &Socket) -> bool {
    let until = tokio::time::Instant::now() + BACK_WITHIN;
    loop {
        if let Ok((_reader, mut writer)) = open_event_socket(&s.address, &s.password).await {
            let _ = writer.shutdown().await;
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
