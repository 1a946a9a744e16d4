//! Wake-up connections: mod_event_socket hands a connection its queued events only when that
//! connection's thread wakes, and an idle thread sleeps in a 20 ms poll of its socket. Alone,
//! every event would reach callpark up to 20 ms late (10 ms on average), and a retrieve or a
//! park waits for one. A byte received wakes the thread at once, and a bare newline between
//! frames is ignored. So each connection has `WAKERS` more connections that listen only for
//! the events someone waits on, their 20 ms cycles spread evenly over the period; whichever
//! wakes first sends a newline on the main connection, whose thread then sends its queue at
//! once, in order. Events still come, in order, from the main connection alone.

use std::fmt::Display;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::Encoder;
use tracing::warn;

use super::open::open;
use crate::pbx::Fence;
use crate::pbx::freeswitch::codec::{EslCodec, Outgoing};
use crate::pbx::freeswitch::translate::{FILTERS, WAKE_EVENTS};

/// Wake-up connections per event-socket connection: an event waits at most 20 ms / WAKERS.
pub(super) const WAKERS: u32 = 4;
/// mod_event_socket's idle poll of a connection's socket.
const ESL_IDLE_POLL: Duration = Duration::from_millis(20);
/// How often the wake-up connections' cycles are spread out again (they drift by the time
/// FreeSWITCH spends on each wake).
const RESPREAD_EVERY: Duration = Duration::from_secs(10);

/// Starts the wake-up connections of a main connection whose writer is `main`; they end when
/// their handles are aborted, or write nothing more once `fence` is closed.
pub(super) fn start(
    addr: &str,
    password: &str,
    main: &mpsc::UnboundedSender<BytesMut>,
    fence: &Fence,
) -> Vec<JoinHandle<()>> {
    // Far enough ahead for the wake-up connections to be up by their first turn.
    let base = Instant::now() + Duration::from_millis(300);
    (0..WAKERS)
        .map(|i| {
            tokio::spawn(waker(
                addr.to_string(),
                password.to_string(),
                base + ESL_IDLE_POLL * i / WAKERS,
                main.clone(),
                fence.clone(),
            ))
        })
        .collect()
}

fn fail(e: impl Display) {
    warn!(
        "a wake-up connection to the event socket failed ({e}); until callpark reconnects, events may reach it up to 20 ms later"
    )
}

/// One wake-up connection: from `phase` on, its thread's 20 ms cycle starts at `phase` (a
/// newline received restarts it), and every event it hears sends a newline on the main
/// connection through `main`. It lives as long as the main connection.
async fn waker(
    addr: String,
    password: String,
    phase: Instant,
    main: mpsc::UnboundedSender<BytesMut>,
    fence: Fence,
) {
    let (mut reader, mut w) = match open(&addr, &password).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let mut setup = BytesMut::new();
    let mut codec = EslCodec::default();
    for line in std::iter::once(format!("event plain {WAKE_EVENTS}"))
        .chain(FILTERS.iter().map(|f| f.to_string()))
    {
        if let Err(e) = codec.encode(&Outgoing::new(line), &mut setup) {
            return fail(e);
        }
    }
    if let Err(e) = w.write_all(&setup).await {
        return fail(e);
    }
    let mut spread = tokio::time::interval_at(phase, RESPREAD_EVERY);
    spread.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            frame = reader.next() => match frame {
                Some(Ok(f)) => {
                    if f.content_type().starts_with("text/event")
                        && main.send(BytesMut::from(&b"\n"[..])).is_err()
                    {
                        return;
                    }
                    if f.content_type() == "command/reply" && !f.reply_text().starts_with("+OK") {
                        return fail(format_args!("FreeSWITCH answered {}", f.reply_text().trim()));
                    }
                }
                Some(Err(e)) => return fail(format_args!("malformed frame: {e}")),
                None => return fail("the event socket closed it"),
            },
            _ = spread.tick() => {
                // A node whose lease ran out writes no more, not even a newline.
                if !fence.valid() {
                    return;
                }
                if let Err(e) = w.write_all(b"\n").await {
                    return fail(e);
                }
            }
        }
    }
}
