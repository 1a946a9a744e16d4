//! A cuttable TCP path in front of a PBX, for outages.

use std::sync::Arc;

use tokio::net::TcpStream;

/// How a test takes callpark's PBX connection away through a [`Cutter`].
pub enum Outage {
    /// Every connection closed, new ones refused ([`Cutter::cut`]).
    Cut,
    /// Connections open, nothing passes ([`Cutter::freeze`]).
    Silence,
}

/// A TCP forwarder on 127.0.0.1 in front of a PBX's port (ARI's HTTP, the event socket): the test can cut every
/// connection through it and refuse new ones for a while, as a network outage would.
pub struct Cutter {
    pub port: u16,
    cut: tokio::sync::watch::Sender<u64>,
    freeze: tokio::sync::watch::Sender<u64>,
    open: Arc<std::sync::atomic::AtomicBool>,
    frozen: Arc<std::sync::atomic::AtomicBool>,
}

impl Cutter {
    pub async fn start(target: String) -> Cutter {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, cut_rx) = tokio::sync::watch::channel(0u64);
        let (freeze, freeze_rx) = tokio::sync::watch::channel(0u64);
        let open = Arc::new(AtomicBool::new(true));
        let frozen = Arc::new(AtomicBool::new(false));
        let (is_open, is_frozen) = (open.clone(), frozen.clone());
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
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
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
        }
    }

    /// Cuts every connection and refuses new ones until [`Cutter::restore`].
    pub fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Silence without a close: every connection stays open and carries nothing, new ones
    /// are accepted and never answered (a hung PBX, a path that drops everything), until
    /// [`Cutter::restore`].
    pub fn freeze(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
        self.freeze.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
        self.frozen
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}
