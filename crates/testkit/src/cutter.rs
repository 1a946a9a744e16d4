//! A cuttable TCP path in front of a PBX, for outages.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a test takes callpark's PBX connection away through a [`Cutter`].
pub enum Outage {
    /// Every connection closed, new ones refused ([`Cutter::cut`]).
    Cut,
    /// Connections open, nothing passes ([`Cutter::freeze`]).
    Silence,
}

/// What a tapped [`Cutter`] has written to its target: when, and how many bytes.
pub type Tap = Arc<Mutex<Vec<(SystemTime, usize)>>>;

/// A TCP forwarder on 127.0.0.1 in front of a PBX's port (ARI's HTTP, the event socket): the test can cut every
/// connection through it and refuse new ones for a while, as a network outage would.
pub struct Cutter {
    pub port: u16,
    cut: tokio::sync::watch::Sender<u64>,
    freeze: tokio::sync::watch::Sender<u64>,
    open: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
    tap: Option<Tap>,
}

impl Cutter {
    pub async fn start(target: String) -> Cutter {
        Cutter::begin(target, None).await
    }

    /// A cutter that also records every write it makes to the target (what the client sent,
    /// as the target received it): [`Cutter::written`] hands the records over.
    pub async fn start_tapped(target: String) -> Cutter {
        Cutter::begin(target, Some(Tap::default())).await
    }

    async fn begin(target: String, tap: Option<Tap>) -> Cutter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, cut_rx) = tokio::sync::watch::channel(0u64);
        let (freeze, freeze_rx) = tokio::sync::watch::channel(0u64);
        let open = Arc::new(AtomicBool::new(true));
        let frozen = Arc::new(AtomicBool::new(false));
        let (is_open, is_frozen) = (open.clone(), frozen.clone());
        let records = tap.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !is_open.load(SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let target = target.clone();
                let mut cut_rx = cut_rx.clone();
                let mut freeze_rx = freeze_rx.clone();
                cut_rx.mark_unchanged(); // only cuts from now on end this connection
                freeze_rx.mark_unchanged();
                let frozen_now = is_frozen.load(SeqCst);
                let records = records.clone();
                tokio::spawn(async move {
                    if frozen_now {
                        // Accepted and never answered, like a hung peer.
                        let _ = cut_rx.changed().await;
                        return;
                    }
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let froze = tokio::select! {
                        _ = pipe(&mut inbound, &mut outbound, records.as_ref()) => false,
                        _ = cut_rx.changed() => false,
                        _ = freeze_rx.changed() => true,
                    };
                    if froze {
                        // Both ends stay open and nothing passes: silence, not a close.
                        let _ = cut_rx.changed().await;
                        drop((inbound, outbound));
                    }
                });
            }
        });
        Cutter {
            port,
            cut,
            freeze,
            open,
            frozen,
            tap,
        }
    }

    /// Cuts every connection and refuses new ones until [`Cutter::restore`].
    pub fn cut(&self) {
        self.open.store(false, SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Silence without a close: every connection stays open and carries nothing, new ones
    /// are accepted and never answered (a hung PBX, a path that drops everything), until
    /// [`Cutter::restore`].
    pub fn freeze(&self) {
        self.frozen.store(true, SeqCst);
        self.freeze.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.open.store(true, SeqCst);
        self.frozen.store(false, SeqCst);
    }

    /// The writes to the target recorded since the last call (a tapped cutter's; none for
    /// another).
    pub fn written(&self) -> Vec<(SystemTime, usize)> {
        self.tap
            .as_ref()
            .map(|t| std::mem::take(&mut *t.lock().unwrap()))
            .unwrap_or_default()
    }
}

/// Both directions copied until both ends close (or one fails); each write towards the
/// target recorded in `tap`, after it was made.
async fn pipe(inbound: &mut TcpStream, outbound: &mut TcpStream, tap: Option<&Tap>) {
    let Some(tap) = tap else {
        let _ = tokio::io::copy_bidirectional(inbound, outbound).await;
        return;
    };
    let (mut from_client, mut to_client) = inbound.split();
    let (mut from_target, mut to_target) = outbound.split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = from_client.read(&mut buf).await?;
            if n == 0 {
                return to_target.shutdown().await;
            }
            to_target.write_all(&buf[..n]).await?;
            tap.lock().unwrap().push((SystemTime::now(), n));
        }
    };
    let down = async {
        tokio::io::copy(&mut from_target, &mut to_client).await?;
        to_client.shutdown().await
    };
    let _ = tokio::try_join!(up, down);
}
