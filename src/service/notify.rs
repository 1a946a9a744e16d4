//! systemd's notification protocol (sd_notify(3)), by hand: a few `KEY=VALUE` lines in one
//! datagram to the socket named by `NOTIFY_SOCKET`. The protocol is small enough that a crate
//! would add more than it saves, and a [`Sink`] of our own lets tests watch the messages under
//! a paused clock.
//!
//! [`Notifier::run`] sends `READY=1` once every pool is connected and restored, `WATCHDOG=1`
//! every half watchdog interval while no pool loop is stuck (see `Notifier::stuck_after`),
//! and `STOPPING=1` when the service stops. Without `NOTIFY_SOCKET` there is no notifier.

use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::os::unix::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::{error, info, warn};

use super::health::{Health, TURN_EVERY};

/// How often readiness is looked at until it is reached: `READY=1` is at most this late.
const READY_POLL: Duration = Duration::from_millis(20);

/// A datagram to a local socket does not wait unless the receiver's queue is full; this
/// bounds the wait when systemd is too busy to read.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET={0:?}: neither an absolute path nor an abstract socket (@name)")]
    BadSocket(String),
    #[error("NOTIFY_SOCKET={0:?}: {1}")]
    Address(String, #[source] io::Error),
    #[error("WATCHDOG_USEC={0:?}: not a positive number of microseconds")]
    BadWatchdog(String),
    #[error("WATCHDOG_PID={0:?}: not a process id")]
    BadWatchdogPid(String),
    #[error("{0} is not valid UTF-8")]
    NotUnicode(&'static str),
}

/// Where notifications go. [`NotifySocket`] is systemd's socket; tests record instead.
pub trait Sink: Send + Sync {
    /// Sends one notification (`KEY=VALUE` lines).
    fn send(&self, msg: &str) -> impl Future<Output = io::Result<()>> + Send;
}

/// The socket named by `NOTIFY_SOCKET`: a filesystem path, or with a leading `@` a Linux
/// abstract socket.
#[derive(Debug, Clone)]
pub struct NotifySocket {
    addr: SocketAddr,
}

impl NotifySocket {
    pub fn new(name: &str) -> Result<NotifySocket, NotifyError> {
        let addr = if let Some(abstract_name) = name.strip_prefix('@') {
            abstract_addr(abstract_name.as_bytes())
        } else if name.starts_with('/') {
            SocketAddr::from_pathname(name)
        } else {
            return Err(NotifyError::BadSocket(name.to_string()));
        };
        addr.map(|addr| NotifySocket { addr })
            .map_err(|e| NotifyError::Address(name.to_string(), e))
    }
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist on Linux only",
    ))
}

impl Sink for NotifySocket {
    async fn send(&self, msg: &str) -> io::Result<()> {
        // A fresh socket per message, as sd_notify(3) does: nothing stays open, and nothing
        // goes stale when systemd re-executes itself. A message every few seconds costs
        // nothing.
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        sock.connect_addr(&self.addr)?;
        sock.set_nonblocking(true)?;
        let sock = tokio::net::UnixDatagram::from_std(sock)?;
        let sent = tokio::time::timeout(SEND_TIMEOUT, sock.send(msg.as_bytes()))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the receiver does not read"))??;
        if sent != msg.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the notification was cut short",
            ));
        }
        Ok(())
    }
}

/// Tells systemd how the service is doing.
#[derive(Debug)]
pub struct Notifier<S = NotifySocket> {
    sink: S,
    watchdog: Option<Duration>,
}

impl Notifier<NotifySocket> {
    /// The notifier this process's environment asks for; `None` without `NOTIFY_SOCKET`.
    pub(crate) fn from_env() -> Result<Option<Notifier>, NotifyError> {
        Notifier::from_vars(
            |name| match std::env::var(name) {
                Ok(v) => Ok(Some(v)),
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => Err(NotifyError::NotUnicode(name)),
            },
            std::process::id(),
        )
    }

    /// The notifier for these environment variables, in a process whose id is `pid`.
    /// `NOTIFY_SOCKET` unset or empty: none. `WATCHDOG_USEC` counts only when `WATCHDOG_PID`
    /// is unset or `pid` (systemd's rule: the variables may have been inherited from a parent
    /// that systemd watches, and then they are not ours).
    pub(crate) fn from_vars(
        var: impl Fn(&'static str) -> Result<Option<String>, NotifyError>,
        pid: u32,
    ) -> Result<Option<Notifier>, NotifyError> {
        let Some(socket) = var("NOTIFY_SOCKET")?.filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let sink = NotifySocket::new(&socket)?;
        let ours = match var("WATCHDOG_PID")? {
            None => true,
            Some(p) => {
                p.trim()
                    .parse::<u32>()
                    .map_err(|_| NotifyError::BadWatchdogPid(p.clone()))?
                    == pid
            }
        };
        let watchdog = match var("WATCHDOG_USEC")? {
            Some(us) if ours => match us.trim().parse::<u64>() {
                Ok(n) if n > 0 => Some(Duration::from_micros(n)),
                _ => return Err(NotifyError::BadWatchdog(us)),
            },
            _ => None,
        };
        Ok(Some(Notifier::new(sink, watchdog)))
    }
}

impl<S: Sink> Notifier<S> {
    pub fn new(sink: S, watchdog: Option<Duration>) -> Notifier<S> {
        Notifier { sink, watchdog }
    }

    /// The watchdog interval systemd enforces, if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// How often `WATCHDOG=1` goes out: half the interval, as sd_watchdog_enabled(3) advises,
    /// so one late ping does not get us killed.
    pub(crate) fn ping_every(&self) -> Option<Duration> {
        self.watchdog.map(|w| (w / 2).max(Duration::from_millis(1)))
    }

    /// A pool counts as stuck when its loop has not turned for half the watchdog interval.
    /// Every ping first checks, so after a loop stalls at `t` the last ping leaves no later
    /// than `t + W/2`, and systemd kills and restarts us before `t + 3W/2`. The full interval
    /// as the bound would only stretch that to `2W`; a much shorter one would take a slow but
    /// healthy step (an SQLite write behind a checkpoint) for a hang.
    pub(crate) fn stuck_after(&self) -> Option<Duration> {
        self.ping_every()
    }

    /// The period pool loops should turn at when idle: at most a second, and at most a
    /// quarter of `Notifier::stuck_after`, so that an idle pool whose turns are delayed
    /// (a busy machine) is still far from looking stuck.
    pub fn turn_every(&self) -> Duration {
        self.stuck_after()
            .map_or(TURN_EVERY, |s| (s / 4).min(TURN_EVERY))
    }

    /// Sends `READY=1` once every pool of `health` is ready and `WATCHDOG=1` while none is
    /// stuck, until `stop` turns true (or its sender is gone); then `STOPPING=1`.
    pub async fn run(&self, health: &Health, mut stop: watch::Receiver<bool>) {
        let mut ready_check = interval(READY_POLL);
        let mut ping = self.ping_every().map(interval);
        let mut out = Outbox::default();
        let mut ready = false;
        // What STATUS says while nothing is wrong; sent again when a stall ends.
        let mut status = String::new();
        // The pools known to be stuck: each stall is logged once, not on every ping.
        let mut stuck_known: BTreeSet<String> = BTreeSet::new();
        while !*stop.borrow_and_update() {
            tokio::select! {
                _ = ready_check.tick(), if !ready => {
                    if health.all_ready() {
                        ready = true;
                        status = "every pool connected".into();
                        info!("every pool is connected: telling systemd callpark is ready");
                        out.send(&self.sink, &format!("READY=1\nSTATUS={status}")).await;
                    } else {
                        let waiting =
                            format!("waiting for {} to connect", health.not_ready().join(", "));
                        if waiting != status {
                            status = waiting;
                            out.send(&self.sink, &format!("STATUS={status}")).await;
                        }
                    }
                }
                _ = tick(&mut ping) => {
                    let bound = self.stuck_after().unwrap_or(Duration::MAX);
                    let stuck: BTreeSet<String> =
                        health.stuck(Instant::now(), bound).into_iter().collect();
                    for pool in stuck_known.difference(&stuck) {
                        info!(pool = %pool, "the pool's loop turns again");
                    }
                    let was_stuck = !stuck_known.is_empty();
                    stuck_known.retain(|p| stuck.contains(p));
                    for pool in &stuck {
                        if stuck_known.insert(pool.clone()) {
                            error!(pool = %pool, "the pool's loop has not turned for {bound:?}: \
                                   no more watchdog pings, systemd will restart callpark");
                            let msg = format!("STATUS=pool {pool} stuck for {bound:?}");
                            out.send(&self.sink, &msg).await;
                        }
                    }
                    if stuck.is_empty() {
                        let msg = if was_stuck {
                            info!("every pool loop turns: watchdog pings resume");
                            format!("WATCHDOG=1\nSTATUS={status}")
                        } else {
                            "WATCHDOG=1".to_string()
                        };
                        out.send(&self.sink, &msg).await;
                    }
                }
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        out.send(&self.sink, "STOPPING=1\nSTATUS=stopping").await;
    }
}

/// Sends and logs failures once per streak: a socket that fails every ping would otherwise
/// fill the log.
#[derive(Default)]
struct Outbox {
    failing: bool,
}

impl Outbox {
    async fn send<S: Sink>(&mut self, sink: &S, msg: &str) {
        match sink.send(msg).await {
            Ok(()) => {
                if self.failing {
                    info!("systemd notifications go through again");
                }
                self.failing = false;
            }
            Err(e) => {
                if !self.failing {
                    warn!("systemd notification {msg:?} not sent: {e}");
                }
                self.failing = true;
            }
        }
    }
}

fn interval(period: Duration) -> Interval {
    let mut i = tokio::time::interval(period);
    // After a delay one message is enough, not a burst of them.
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

/// The next tick of `i`; never without an interval.
async fn tick(i: &mut Option<Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment of these variables.
    fn vars(list: &[(&str, &str)]) -> impl Fn(&'static str) -> Result<Option<String>, NotifyError> {
        let list: Vec<(String, String)> = list
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| Ok(list.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn no_notify_socket_no_notifier() {
        assert!(Notifier::from_vars(vars(&[]), 7).unwrap().is_none());
        assert!(
            Notifier::from_vars(vars(&[("NOTIFY_SOCKET", ""), ("WATCHDOG_USEC", "1")]), 7)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn paths_and_abstract_names_are_accepted_relative_paths_are_not() {
        let n = Notifier::from_vars(vars(&[("NOTIFY_SOCKET", "/run/systemd/notify")]), 7);
        assert_eq!(n.unwrap().unwrap().watchdog(), None);
        let n = Notifier::from_vars(vars(&[("NOTIFY_SOCKET", "@/org/freedesktop/notify")]), 7);
        assert!(n.unwrap().is_some());
        let n = Notifier::from_vars(vars(&[("NOTIFY_SOCKET", "run/notify")]), 7);
        assert!(matches!(n, Err(NotifyError::BadSocket(_))), "{n:?}");
        // sun_path holds 108 bytes.
        let long = format!("/{}", "x".repeat(200));
        let n = Notifier::from_vars(vars(&[("NOTIFY_SOCKET", &long)]), 7);
        assert!(matches!(n, Err(NotifyError::Address(..))), "{n:?}");
    }

    #[test]
    fn the_watchdog_counts_only_for_our_pid() {
        let with = |list: &[(&str, &str)]| Notifier::from_vars(vars(list), 42).unwrap().unwrap();
        let s = ("NOTIFY_SOCKET", "/run/n");
        let w = ("WATCHDOG_USEC", "30000000");
        let thirty = Some(Duration::from_secs(30));
        assert_eq!(with(&[s, w]).watchdog(), thirty);
        assert_eq!(with(&[s, w, ("WATCHDOG_PID", "42")]).watchdog(), thirty);
        assert_eq!(with(&[s, w, ("WATCHDOG_PID", "41")]).watchdog(), None);
    }

    #[test]
    fn a_bad_watchdog_is_an_error() {
        for usec in ["0", "30s", "-1", ""] {
            let list = [("NOTIFY_SOCKET", "/run/n"), ("WATCHDOG_USEC", usec)];
            let n = Notifier::from_vars(vars(&list), 1);
            assert!(
                matches!(n, Err(NotifyError::BadWatchdog(_))),
                "{usec}: {n:?}"
            );
        }
        let list = [
            ("NOTIFY_SOCKET", "/run/n"),
            ("WATCHDOG_USEC", "1000000"),
            ("WATCHDOG_PID", "me"),
        ];
        let n = Notifier::from_vars(vars(&list), 1);
        assert!(matches!(n, Err(NotifyError::BadWatchdogPid(_))), "{n:?}");
    }

    #[test]
    fn periods_follow_the_watchdog() {
        let n = |w| Notifier::new(NotifySocket::new("/run/n").unwrap(), w);
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let thirty = n(Some(s(30)));
        assert_eq!(thirty.ping_every(), Some(s(15)));
        assert_eq!(thirty.stuck_after(), Some(s(15)));
        assert_eq!(thirty.turn_every(), s(1));
        let two = n(Some(s(2)));
        assert_eq!(two.stuck_after(), Some(s(1)));
        assert_eq!(two.turn_every(), ms(250));
        let none = n(None);
        assert_eq!(none.ping_every(), None);
        assert_eq!(none.turn_every(), TURN_EVERY);
        assert_eq!(n(Some(Duration::from_micros(1))).ping_every(), Some(ms(1)));
    }

    #[tokio::test]
    async fn a_notification_reaches_a_socket_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = tokio::net::UnixDatagram::bind(&path).unwrap();
        let sock = NotifySocket::new(path.to_str().unwrap()).unwrap();
        sock.send("READY=1\nSTATUS=x").await.unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=x");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_notification_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("callpark-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
        rx.set_nonblocking(true).unwrap();
        let rx = tokio::net::UnixDatagram::from_std(rx).unwrap();
        NotifySocket::new(&format!("@{name}"))
            .unwrap()
            .send("WATCHDOG=1")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[tokio::test]
    async fn no_receiver_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nobody");
        let sock = NotifySocket::new(path.to_str().unwrap()).unwrap();
        assert!(sock.send("WATCHDOG=1").await.is_err());
    }
}
