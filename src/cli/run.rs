//! `callpark run`: open the store, restore every pool's parked calls, start the adapters, and
//! keep systemd told (`Type=notify`: ready, watchdog, stopping) when it asks to be.

use std::process::ExitCode;

use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::config::{Config, PbxKind};
use crate::pbx;
use crate::service;
use crate::service::health::Health;
use crate::service::notify::Notifier;
use crate::store::Store;

/// The admin API's nice value: under load it gets a small share of the CPU next to the
/// pools (nice 10 weighs about a tenth of nice 0), and all of it when they are idle.
const API_NICE: i32 = 10;

pub async fn run(cfg: Config) -> anyhow::Result<ExitCode> {
    // First: a broken NOTIFY_SOCKET or WATCHDOG_USEC would leave systemd waiting for a READY
    // that never comes; better to fail at once, saying why.
    let notifier = Notifier::from_env()?;
    if let Some(n) = &notifier {
        info!(watchdog = ?n.watchdog(), "systemd notifications on");
    }
    // Pool loops turn often enough for the watchdog's stuck bound to be meaningful.
    let health = Health::new(
        notifier
            .as_ref()
            .map_or(service::health::TURN_EVERY, Notifier::turn_every),
    );
    let store = Store::open_at(&cfg.database()).await?;
    debug!("store opened");
    store.save_orbit_table(&cfg.orbits).await?;
    let problems = service::media::verify_media(&store).await?;
    for p in &problems {
        error!("music on hold: {p}");
    }
    let settings = super::core_settings(&cfg, &store).await?;
    debug!("orbit table, music files and settings read");
    if cfg.pbx.is_empty() {
        anyhow::bail!("no [[pbx]] is configured: add one so callpark has a PBX to drive");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let checkpoints = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
            loop {
                every.tick().await;
                if let Err(e) = store.checkpoint().await {
                    tracing::warn!("store checkpoint: {e}");
                }
            }
        })
    };
    // The event log's entries older than `[service] keep_log`, pruned in small batches.
    let pruning = tokio::spawn(service::run_pruning(
        store.clone(),
        cfg.keep_log,
        service::Clock::system(),
    ));
    // Each pool's operator requests (the admin API's retrieve and hang-up).
    let mut controls = std::collections::HashMap::new();
    let mut control_rx = std::collections::HashMap::new();
    for pbx in &cfg.pbx {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        controls.insert(pbx.name.clone(), tx);
        control_rx.insert(pbx.name.clone(), rx);
    }
    // The admin API, bound before any pool starts: a taken port stops `run` here. It runs on
    // its own thread and runtime, with its own store connections, in an idle cgroup where it
    // can make one (src/service/sched.rs) and at nice 10: a thousand event-stream subscribers or a
    // slow client never take the pools' runtime workers, and yield the CPU to them and to the
    // PBX when it is short (measured: benches/operator_side.rs).
    // Whatever ends the API's thread is a failure (it serves for ever otherwise): its
    // sender, dropped unsent when the thread panics, stops the service below.
    let (api_tx, mut api_rx) = tokio::sync::oneshot::channel::<String>();
    let api_on = cfg.api.is_some();
    // Senders into each pool's requests, kept for the lease keeper's inbox (requests other
    // nodes forward).
    let control_tx: std::collections::HashMap<_, _> = controls
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(a) = &cfg.api {
        let token = a.token().map_err(|m| anyhow::anyhow!("[api]: {m}"))?;
        let listener = crate::api::bind_std(a.listen)?;
        let (db, shared, health) = (
            cfg.database(),
            std::sync::Arc::new(cfg.clone()),
            health.clone(),
        );
        std::thread::Builder::new()
            .name("callpark-api".into())
            .spawn(move || {
                let api_tx = api_tx;
                // Before the runtime, so its workers and the store's threads inherit both.
                if let Err(e) = crate::service::sched::lower_priority(API_NICE) {
                    warn!("admin API: could not lower its CPU priority: {e}");
                }
                match crate::service::sched::idle_cgroup() {
                    Ok(dir) => info!("admin API: runs in idle cgroup {}", dir.display()),
                    Err(e) => warn!(
                        "admin API: not in an idle cgroup ({e}); its nice {API_NICE} orders \
                         it only against callpark's own threads, not the PBX's. For parking \
                         to come first under load, give the service its cpu cgroup \
                         (systemd: Delegate=cpu, as contrib/callpark.service has)"
                    ),
                }
                // One thread for the whole API: its work is small and comes in bursts, and
                // handing tasks between a worker and this thread cost more context switches
                // than the work itself.
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .thread_name("callpark-api")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = api_tx.send(format!("no runtime: {e}"));
                        return;
                    }
                };
                rt.block_on(async move {
                    let served = async {
                        let store = Store::open_at(&db).await?;
                        let listener =
                            tokio::net::TcpListener::from_std(listener).map_err(|source| {
                                crate::api::ApiError::Bind {
                                    addr: shared.api.as_ref().map_or(
                                        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                                        |a| a.listen,
                                    ),
                                    source,
                                }
                            })?;
                        let state = crate::api::ApiState::new(store, shared, token)
                            .with_pools(controls)
                            .with_health(health);
                        crate::api::serve(state, listener).await
                    };
                    let why = match served.await {
                        Err(e) => e.to_string(),
                        Ok(()) => "it stopped serving".into(),
                    };
                    let _ = api_tx.send(why);
                });
            })?;
    }
    // Each pool's busy lamps, shown on the other pools' PBXes too (their phones may have keys
    // for orbits another PBX owns).
    let lamps = service::lamps::LampBoard::default();
    // On PostgreSQL several nodes may share the store: each pool is driven under a lease, by
    // one node at a time. An SQLite store has this node alone.
    let leased = store.is_postgres();
    let node = cfg.node();
    let shared = std::sync::Arc::new(cfg.clone());
    let alive = leased.then(|| {
        info!(node, "pools are driven under leases (PostgreSQL store)");
        tokio::spawn(service::lease::keep_node_alive(store.clone(), node.clone()))
    });
    for pbx in &cfg.pbx {
        // One clock per pool, from its restore on.
        let clock = service::Clock::system();
        let (stop_rx, beat, lamps) = (stop_rx.clone(), health.pool(&pbx.name), lamps.clone());
        let mut control = control_rx.remove(&pbx.name);
        // Each kind of PBX has an adapter type of its own: the pool runs on that type. The
        // adapter is built (and may fail) before the pool's health and control are taken.
        macro_rules! spawn_pool {
            ($build:path) => {{
                let adapter = $build(pbx, &cfg.pbx)?;
                if leased {
                    let (one, all) = (pbx.clone(), cfg.pbx.clone());
                    let leased_pool = service::lease::LeasedPool {
                        store: store.clone(),
                        cfg: shared.clone(),
                        pool: pbx.name.clone(),
                        node: node.clone(),
                        prefer: pbx.prefer.clone(),
                        settings: settings.clone(),
                        beat,
                        clock,
                        control,
                        control_tx: control_tx.get(&pbx.name).cloned(),
                        lamps: Some(lamps),
                    };
                    // The first term's adapter is the one checked above; later terms build
                    // theirs the same way.
                    let mut first = Some(adapter);
                    tasks.spawn(service::lease::run_leased(
                        leased_pool,
                        move |fence| match first.take() {
                            Some(a) => Ok(a.fenced(fence)),
                            None => $build(&one, &all).map(|a| a.fenced(fence)),
                        },
                        stop_rx,
                    ));
                } else {
                    let core =
                        service::restore_core(&store, &cfg, &pbx.name, settings.clone(), &clock)
                            .await?;
                    let store = store.clone();
                    tasks.spawn(async move {
                        service::run_pool_controlled(
                            core,
                            store,
                            adapter,
                            stop_rx,
                            beat,
                            clock,
                            service::Links {
                                control: control.as_mut(),
                                lamps: Some(lamps),
                            },
                        )
                        .await
                        .map(drop)
                    });
                }
            }};
        }
        match pbx.kind {
            PbxKind::Asterisk => spawn_pool!(pbx::asterisk::adapter),
            PbxKind::Freeswitch => spawn_pool!(pbx::freeswitch::adapter),
        };
        info!(pool = %pbx.name, kind = ?pbx.kind, address = %pbx.address, "pool started");
    }
    // Started once every pool is registered, so that readiness means all of them.
    let notifying = notifier.map(|n| {
        let (health, stop_rx) = (health.clone(), stop_rx.clone());
        tokio::spawn(async move { n.run(&health, stop_rx).await })
    });
    // systemd stops a service with SIGTERM: the same orderly stop as Ctrl-C.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let code = tokio::select! {
        _ = tokio::signal::ctrl_c() => { info!("stopping (interrupt)"); ExitCode::SUCCESS }
        _ = term.recv() => { info!("stopping (SIGTERM)"); ExitCode::SUCCESS }
        failed = &mut api_rx, if api_on => {
            // systemd restarts a service that fails (Restart=on-failure): better than parking
            // on without the console, the webhooks and the metrics.
            match failed {
                Ok(why) => error!("admin API failed: {why}; stopping so the service is restarted"),
                Err(_) => error!("admin API thread ended (panicked); stopping so the service is restarted"),
            }
            ExitCode::FAILURE
        }
        Some(res) = tasks.join_next() => {
            match res {
                Ok(Ok(_)) => ExitCode::SUCCESS,
                Ok(Err(e)) => { error!("{e}"); ExitCode::FAILURE }
                Err(e) => { error!("pool task failed: {e}"); ExitCode::FAILURE }
            }
        }
    };
    let _ = stop_tx.send(true);
    // STOPPING=1 goes out now, as the pools begin to stop.
    if let Some(n) = notifying {
        let _ = n.await;
    }
    while tasks.join_next().await.is_some() {}
    checkpoints.abort();
    pruning.abort();
    if let Some(a) = alive {
        a.abort();
    }
    store.close().await;
    Ok(code)
}
