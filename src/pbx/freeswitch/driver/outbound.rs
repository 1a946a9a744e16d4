//! Outbound connections (`[[pbx]] outbound`): the include connects a dialled orbit's own
//! thread to callpark (its `socket` application) before it parks the call. callpark answers
//! `connect`, reads the channel from the reply as the translator reads a CHANNEL_PARK, and keeps
//! the connection open until the translator releases the channel ([`Tag::Release`]), which it
//! does behind the requests that act on it: closed after the bridge is set up, the connection
//! returns the thread to FreeSWITCH, which goes straight to the bridge. A channel never
//! released is let go after [`DOOR_MAX`], into `park`, where callpark finds it as before.
//!
//! [`Tag::Release`]: crate::pbx::freeswitch::translate::Tag::Release

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;
use tracing::{debug, warn};

use crate::pbx::Fence;
use crate::pbx::freeswitch::codec::EslCodec;
use crate::pbx::freeswitch::model::FsEvent;

/// The longest an outbound connection holds a channel that callpark did not release.
const DOOR_MAX: Duration = Duration::from_secs(2);

/// A channel read from an outbound connection, and the handle that closes it when dropped.
pub(super) type Door = (FsEvent, oneshot::Sender<()>);

/// Starts listening for outbound connections on `addr`: the channels come through the
/// receiver. None (and a warning) where the address cannot be had. Once `fence` is closed a
/// connection is closed unanswered: FreeSWITCH's `socket` fails and the include goes on into
/// `park`, where the pool's next holder finds the channel.
pub(super) async fn listen(addr: &str, fence: Fence) -> Option<mpsc::Receiver<Door>> {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!(
                "cannot listen for FreeSWITCH's outbound connections on {addr} ({e}): retrieves go through `park`, up to 20 ms slower; free the port or change [[pbx]] outbound"
            );
            return None;
        }
    };
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(accept_doors(listener, tx, fence));
    Some(rx)
}

/// Accepts the include's outbound connections; each is served by [`door`]. Stops, freeing the
/// port, when the driver is gone (a node whose lease ran out leaves it to the next holder).
async fn accept_doors(listener: TcpListener, tx: mpsc::Sender<Door>, fence: Fence) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, _)) => {
                    tokio::spawn(door(sock, tx.clone(), fence.clone()));
                }
                Err(e) => {
                    debug!("outbound accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = tx.closed() => return,
        }
    }
}

/// One outbound connection: `connect`, the channel from its reply, then held open until
/// released (or [`DOOR_MAX`], or FreeSWITCH closes it).
async fn door(sock: TcpStream, tx: mpsc::Sender<Door>, fence: Fence) {
    if !fence.valid() {
        return;
    }
    let _ = sock.set_nodelay(true);
    let (r, mut w) = sock.into_split();
    let mut reader = FramedRead::new(r, EslCodec::default());
    if w.write_all(b"connect\n\n").await.is_err() {
        return;
    }
    let frame = match tokio::time::timeout(DOOR_MAX, reader.next()).await {
        Ok(Some(Ok(f))) if f.content_type() == "command/reply" => f,
        _ => return,
    };
    let mut ev = match FsEvent::from_connect_reply(&frame) {
        Ok(ev) => ev,
        Err(e) => {
            warn!("an outbound connection's channel cannot be read ({e})");
            return;
        }
    };
    ev.name = "CHANNEL_PARK".into();
    ev.outbound = true;
    let (release, released) = oneshot::channel();
    if tx.send((ev, release)).await.is_err() {
        return;
    }
    tokio::select! {
        _ = released => {}
        _ = tokio::time::sleep(DOOR_MAX) => {}
        _ = async { while let Some(Ok(_)) = reader.next().await {} } => {}
    }
    // Dropping both halves closes the connection: the channel's thread goes on.
}
