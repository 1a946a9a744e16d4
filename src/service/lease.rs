//! Several nodes on one PostgreSQL store: each pool is driven by the node that holds its
//! lease (`store::Lease`), and the others stand by.
//!
//! A node's pool goes through terms. It stands by until it takes the lease (nobody holds it,
//! or the holder stopped renewing it), then restores the pool from the store, connects to the
//! PBX and adopts what it finds, exactly as a restarted single node does. While it drives the
//! pool a keeper renews the lease every [`RENEW_EVERY`]. The term ends when:
//! - the lease is lost (a renewal finds another epoch, or no renewal succeeded in time): the
//!   fence closes, so the adapter drops its PBX connection and sends nothing more, and the
//!   store refuses the loop's writes (they carry the epoch);
//! - the pool's preferred node is alive again: the loop stops in order and the lease is given
//!   back at once;
//! - the service stops: the same, and the lease is given back so a standby takes over now.
//!
//! The fence runs out by this node's monotonic clock, [`TRUSTED`] after a renewal was *sent*,
//! while the database lets the lease run [`TTL`] after it *ran*: a node always stops acting
//! before anyone else may start, even when frozen (SIGSTOP) between renewals.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use super::health::Beat;
use super::{Clock, Control, CoreSettings, Links, ServiceError, lamps, restore_core};
use crate::config::Config;
use crate::orbit::Orbit;
use crate::park::{Destination, OperatorError, Target};
use crate::pbx::{Fence, Pbx, PbxError};
use crate::store::{Lease, REQUEST_TTL_MS, Store, StoreError};

/// How long a lease lasts after its last renewal, by the database's clock. A dead node's
/// pools are taken over within this plus [`STANDBY_POLL`].
pub(crate) const TTL: Duration = Duration::from_secs(3);
/// How often the holder renews.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How long after sending a renewal the holder trusts it: less than [`TTL`] by a margin for
/// the renewal's own trip and the clocks' rates.
pub(crate) const TRUSTED: Duration = Duration::from_millis(2500);
/// How often a standing-by node tries to take the lease.
pub(crate) const STANDBY_POLL: Duration = Duration::from_millis(500);
/// A node not seen for this long is not alive, for `prefer`.
const ALIVE_WITHIN_MS: i64 = 3000;

/// What a node needs to drive one pool under a lease.
pub(crate) struct LeasedPool {
    pub store: Store,
    pub cfg: Arc<Config>,
    pub pool: String,
    /// This node.
    pub node: String,
    /// The node this pool goes home to.
    pub prefer: Option<String>,
    pub settings: CoreSettings,
    pub beat: Beat,
    pub clock: Clock,
    pub control: Option<mpsc::Receiver<Control>>,
    /// A sender into `control`: the holder's inbox hands it requests other nodes forwarded.
    pub control_tx: Option<mpsc::Sender<Control>>,
    pub lamps: Option<lamps::LampBoard>,
}

/// How a term ended.
enum TermEnd {
    /// The lease is gone; why.
    Lost(String),
    /// The pool went home to its preferred node.
    Home,
    /// The service stops.
    Stop,
}

/// Keeps `node` alive in the store (for the other nodes' `prefer`), every [`RENEW_EVERY`].
pub(crate) async fn keep_node_alive(store: Store, node: String) {
    let mut every = tokio::time::interval(RENEW_EVERY);
    loop {
        every.tick().await;
        if let Err(e) = store.node_seen(&node).await {
            warn!(node, "cannot record this node alive in the store: {e}");
        }
    }
}

/// Drives the pool whenever this node holds its lease, until `shutdown`. `adapter` builds the
/// PBX adapter of each term, acting only while the term's fence is open.
pub(crate) async fn run_leased<P: Pbx>(
    mut p: LeasedPool,
    mut adapter: impl FnMut(Fence) -> Result<P, PbxError> + Send,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ServiceError> {
    let ttl_ms = TTL.as_millis() as i64;
    loop {
        // Stand by until the lease is ours.
        let (lease, sent) = loop {
            // A node standing by turns as a pool's loop does: the watchdog sees it alive.
            p.beat.turned(Instant::now());
            if *shutdown.borrow() {
                return Ok(());
            }
            if home_elsewhere(&p).await {
                p.beat.ready();
            } else {
                let sent = Instant::now();
                match p.store.take_lease(&p.pool, &p.node, ttl_ms).await {
                    Ok(Some(l)) => break (l, sent),
                    // Another node drives the pool: standing by is this node's healthy
                    // state, so it is ready (a pool it takes is ready once connected and
                    // reconciled, as a single node's).
                    Ok(None) => p.beat.ready(),
                    Err(e) => warn!(pool = p.pool, "cannot take the pool's lease: {e}"),
                }
            }
            let poll = tokio::time::sleep(STANDBY_POLL);
            tokio::pin!(poll);
            loop {
                tokio::select! {
                    _ = &mut poll => break,
                    changed = shutdown.changed() => {
                        if changed.is_err() { return Ok(()); }
                        break;
                    }
                    // An operator's request on a node that does not hold the pool goes to
                    // the holder through the store.
                    Some(c) = async {
                        match p.control.as_mut() {
                            Some(rx) => rx.recv().await,
                            None => std::future::pending().await,
                        }
                    } => {
                        tokio::spawn(forward(p.store.clone(), p.pool.clone(), c));
                    }
                }
            }
        };
        info!(
            pool = p.pool,
            node = p.node,
            epoch = lease.epoch,
            "lease taken: this node drives the pool"
        );
        let fence = Fence::closed();
        fence.extend_until(sent + TRUSTED);
        let end = term(&mut p, &lease, &fence, &mut adapter, &mut shutdown).await;
        fence.revoke();
        match end {
            Ok(TermEnd::Stop) => {
                give_back(&p.store, &lease).await;
                return Ok(());
            }
            Ok(TermEnd::Home) => {
                give_back(&p.store, &lease).await;
                info!(
                    pool = p.pool,
                    epoch = lease.epoch,
                    "pool handed to its preferred node"
                );
            }
            Ok(TermEnd::Lost(why)) => {
                p.beat.disconnected();
                warn!(
                    pool = p.pool,
                    epoch = lease.epoch,
                    "lease lost ({why}); standing by"
                );
            }
            Err(e) => {
                // Whatever stopped the loop (the store unreachable, most likely), another
                // node may do better: give the pool back and stand by.
                p.beat.disconnected();
                give_back(&p.store, &lease).await;
                warn!(
                    pool = p.pool,
                    epoch = lease.epoch,
                    "pool stopped ({e}); lease given back, standing by"
                );
                tokio::time::sleep(RENEW_EVERY).await;
            }
        }
    }
}

/// One term: restore, drive, renew, until the lease is lost, the pool goes home or the
/// service stops.
async fn term<P: Pbx>(
    p: &mut LeasedPool,
    lease: &Lease,
    fence: &Fence,
    adapter: &mut impl FnMut(Fence) -> Result<P, PbxError>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<TermEnd, ServiceError> {
    let store = p.store.fenced(lease.clone());
    let core = restore_core(&store, &p.cfg, &p.pool, p.settings.clone(), &p.clock).await?;
    let pbx = adapter(fence.clone())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    // The keeper renews on its own task: a slow renewal never holds up the pool's loop.
    let (home_tx, mut home_rx) = watch::channel(false);
    let mut keeper = tokio::spawn(keep(
        p.store.clone(),
        lease.clone(),
        fence.clone(),
        p.prefer.clone().filter(|n| *n != p.node),
        home_tx,
    ));
    let inbox = p
        .control_tx
        .clone()
        .map(|tx| tokio::spawn(inbox(p.store.clone(), p.pool.clone(), tx)));
    let run = super::run_pool_controlled(
        core,
        store,
        pbx,
        stop_rx,
        p.beat.clone(),
        p.clock.clone(),
        Links {
            control: p.control.as_mut(),
            lamps: p.lamps.clone(),
        },
    );
    tokio::pin!(run);
    let end = tokio::select! {
        r = &mut run => match r {
            Err(ServiceError::Store(StoreError::Fenced { .. }))
            | Err(ServiceError::Pbx(PbxError::Fenced { .. })) => {
                TermEnd::Lost("a newer epoch holds it".into())
            }
            Err(e) => {
                keeper.abort();
                if let Some(i) = &inbox {
                    i.abort();
                }
                return Err(e);
            }
            Ok(_) => TermEnd::Stop,
        },
        why = &mut keeper => TermEnd::Lost(why.unwrap_or_else(|e| format!("its keeper failed: {e}"))),
        _ = fence.closed_now() => TermEnd::Lost("not renewed in time".into()),
        true = async { home_rx.wait_for(|home| *home).await.is_ok() } => {
            let _ = stop_tx.send(true);
            let _ = (&mut run).await;
            TermEnd::Home
        }
        true = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => {
            let _ = stop_tx.send(true);
            let _ = (&mut run).await;
            TermEnd::Stop
        }
    };
    keeper.abort();
    if let Some(i) = inbox {
        i.abort();
    }
    Ok(end)
}

/// Renews `lease` every [`RENEW_EVERY`], extending `fence` after each success; returns why the
/// lease is lost. Tells `home` when the pool's preferred node is alive.
async fn keep(
    store: Store,
    lease: Lease,
    fence: Fence,
    prefer: Option<String>,
    home: watch::Sender<bool>,
) -> String {
    let ttl_ms = TTL.as_millis() as i64;
    let mut every = tokio::time::interval(RENEW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let sent = Instant::now();
        match tokio::time::timeout(TRUSTED, store.renew_lease(&lease, ttl_ms)).await {
            Ok(Ok(true)) => fence.extend_until(sent + TRUSTED),
            Ok(Ok(false)) => {
                fence.revoke();
                return "a renewal found it ran out or taken".into();
            }
            Ok(Err(e)) => warn!(pool = lease.pool, "lease renewal failed: {e}"),
            Err(_) => warn!(pool = lease.pool, "lease renewal took over {TRUSTED:?}"),
        }
        if let Some(n) = &prefer
            && store.node_alive(n, ALIVE_WITHIN_MS).await.unwrap_or(false)
        {
            let _ = home.send(true);
        }
    }
}

/// Whether the pool's preferred node is another one, alive: then it takes the pool.
async fn home_elsewhere(p: &LeasedPool) -> bool {
    match &p.prefer {
        Some(n) if *n != p.node => p
            .store
            .node_alive(n, ALIVE_WITHIN_MS)
            .await
            .unwrap_or(false),
        _ => false,
    }
}

async fn give_back(store: &Store, lease: &Lease) {
    if let Err(e) = store.release_lease(lease).await {
        warn!(
            pool = lease.pool,
            "cannot give the lease back ({e}); it runs out by itself"
        );
    }
}

/// An operator's request as filed in the store for the pool's holder.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Filed {
    Deliver {
        orbit: String,
        to: String,
        /// `to` is a parker's endpoint, not a destination.
        endpoint: bool,
        label: String,
    },
    HangUp {
        orbit: String,
    },
}

type Reply = tokio::sync::oneshot::Sender<Result<(), OperatorError>>;

impl Filed {
    fn of(c: Control) -> (Filed, Orbit, Reply) {
        match c {
            Control::Deliver {
                orbit,
                to,
                label,
                reply,
            } => {
                let (to, endpoint) = match to {
                    Target::Endpoint(e) => (e, true),
                    Target::Destination(d) => (d.to_string(), false),
                };
                let f = Filed::Deliver {
                    orbit: orbit.to_string(),
                    to,
                    endpoint,
                    label,
                };
                (f, orbit, reply)
            }
            Control::HangUp { orbit, reply } => (
                Filed::HangUp {
                    orbit: orbit.to_string(),
                },
                orbit,
                reply,
            ),
        }
    }

    /// The request again, answered through `reply`; why not when it cannot be read.
    fn control(self, reply: Reply) -> Result<Control, String> {
        let orbit = |o: &str| o.parse::<Orbit>().map_err(|e| format!("orbit {o}: {e}"));
        Ok(match self {
            Filed::Deliver {
                orbit: o,
                to,
                endpoint,
                label,
            } => Control::Deliver {
                orbit: orbit(&o)?,
                to: if endpoint {
                    Target::Endpoint(to)
                } else {
                    Target::Destination(Destination::parse(&to).map_err(|e| e.to_string())?)
                },
                label,
                reply,
            },
            Filed::HangUp { orbit: o } => Control::HangUp {
                orbit: orbit(&o)?,
                reply,
            },
        })
    }
}

/// How often a forwarded request's answer is looked for, and the holder looks for requests.
const ASK_POLL: Duration = Duration::from_millis(50);
const INBOX_POLL: Duration = Duration::from_millis(100);

/// Carries `c` to the pool's holder through the store, and its answer back. No answer in
/// [`REQUEST_TTL_MS`] (no holder, or it went away) drops the reply: the API says the pool is
/// not available.
async fn forward(store: Store, pool: String, c: Control) {
    let (filed, orbit, reply) = Filed::of(c);
    let text = serde_json::to_string(&filed).expect("a request serializes");
    let id = match store.file_request(&pool, &text).await {
        Ok(id) => id,
        Err(e) => {
            warn!(
                pool,
                "cannot forward an operator's request to the pool's holder: {e}"
            );
            return;
        }
    };
    let until = Instant::now() + Duration::from_millis(REQUEST_TTL_MS as u64);
    while Instant::now() < until {
        match store.request_answer(id).await {
            Ok(Some(a)) => {
                let _ = reply.send(match a.as_str() {
                    "ok" => Ok(()),
                    "no_call" => Err(OperatorError::NoCall(orbit)),
                    "busy" => Err(OperatorError::Busy(orbit)),
                    other => {
                        warn!(pool, "the holder could not carry out the request: {other}");
                        return;
                    }
                });
                return;
            }
            Ok(None) => {}
            Err(e) => warn!(pool, "waiting for the holder's answer: {e}"),
        }
        tokio::time::sleep(ASK_POLL).await;
    }
    warn!(
        pool,
        "no node holding the pool answered an operator's request"
    );
}

/// The holder's side: requests other nodes filed for `pool` are handed to its loop through
/// `tx`, and their answers written back.
async fn inbox(store: Store, pool: String, tx: mpsc::Sender<Control>) {
    let mut under_way = std::collections::HashSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<i64>();
    loop {
        while let Ok(id) = done_rx.try_recv() {
            under_way.remove(&id);
        }
        match store.open_requests(&pool).await {
            Ok(open) => {
                for (id, text) in open {
                    if !under_way.insert(id) {
                        continue;
                    }
                    let (reply, answer) = tokio::sync::oneshot::channel();
                    let control = serde_json::from_str::<Filed>(&text)
                        .map_err(|e| e.to_string())
                        .and_then(|f| f.control(reply));
                    let (store, done) = (store.clone(), done_tx.clone());
                    match control {
                        Ok(c) => {
                            if tx.send(c).await.is_err() {
                                return;
                            }
                            tokio::spawn(async move {
                                let a = match answer.await {
                                    Ok(Ok(())) => "ok",
                                    Ok(Err(OperatorError::NoCall(_))) => "no_call",
                                    Ok(Err(OperatorError::Busy(_))) => "busy",
                                    // The loop stopped first: the asker's wait runs out.
                                    Err(_) => return,
                                };
                                if let Err(e) = store.answer_request(id, a).await {
                                    warn!("cannot answer a forwarded request: {e}");
                                }
                                let _ = done.send(id);
                            });
                        }
                        Err(why) => {
                            let _ = store
                                .answer_request(id, &format!("unreadable: {why}"))
                                .await;
                            let _ = done.send(id);
                        }
                    }
                }
            }
            Err(e) => warn!(pool, "cannot read forwarded operator requests: {e}"),
        }
        tokio::time::sleep(INBOX_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request filed by one node is the same request when the holder reads it back.
    #[test]
    fn a_filed_request_reads_back_as_it_was_asked() {
        let orbit: Orbit = "701".parse().unwrap();
        let dest = Destination::parse("exten:201@phones").unwrap();
        let cases = [
            Control::Deliver {
                orbit,
                to: Target::Destination(dest.clone()),
                label: "exten:201@phones".into(),
                reply: tokio::sync::oneshot::channel().0,
            },
            Control::Deliver {
                orbit,
                to: Target::Endpoint("PJSIP/alice".into()),
                label: "alice".into(),
                reply: tokio::sync::oneshot::channel().0,
            },
            Control::HangUp {
                orbit,
                reply: tokio::sync::oneshot::channel().0,
            },
        ];
        for c in cases {
            let shown = format!("{c:?}");
            let (filed, o, _reply) = Filed::of(c);
            assert_eq!(o, orbit);
            let text = serde_json::to_string(&filed).unwrap();
            let back: Filed = serde_json::from_str(&text).unwrap();
            let again = back.control(tokio::sync::oneshot::channel().0).unwrap();
            // The reply senders differ; everything else is the same.
            let strip = |s: &str| s.split("reply").next().unwrap().to_string();
            assert_eq!(strip(&format!("{again:?}")), strip(&shown), "{text}");
        }
        let bad: Filed =
            serde_json::from_str(r#"{"kind":"hang_up","orbit":"not an orbit"}"#).unwrap();
        let why = bad.control(tokio::sync::oneshot::channel().0).unwrap_err();
        assert!(why.contains("not an orbit"), "{why}");
    }
}
