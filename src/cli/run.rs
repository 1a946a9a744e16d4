//! `callpark run`: open the store, restore every pool's parked calls, start the adapters.

use std::process::ExitCode;

use tokio::sync::watch;
use tracing::{error, info};

use crate::config::Config;
use crate::service;
use crate::store::Store;

pub async fn run(cfg: Config) -> anyhow::Result<ExitCode> {
    let store = Store::open(&cfg.database_path()).await?;
    store.save_orbit_table(&cfg.orbits).await?;
    let problems = service::media::verify_media(&store).await?;
    for p in &problems {
        error!("music on hold: {p}");
    }
    let settings = super::core_settings(&cfg, &store).await?;
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
    for pbx in &cfg.pbx {
        let core = service::restore_core(&store, &cfg, &pbx.name, settings.clone()).await?;
        let adapter = crate::pbx::Adapter::new(pbx)?;
        tasks.spawn(service::run_pool(
            core,
            store.clone(),
            adapter,
            stop_rx.clone(),
        ));
        info!(pool = %pbx.name, kind = ?pbx.kind, address = %pbx.address, "pool started");
    }
    // systemd stops a service with SIGTERM: the same orderly stop as Ctrl-C.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let code = tokio::select! {
        _ = tokio::signal::ctrl_c() => { info!("stopping (interrupt)"); ExitCode::SUCCESS }
        _ = term.recv() => { info!("stopping (SIGTERM)"); ExitCode::SUCCESS }
        Some(res) = tasks.join_next() => {
            match res {
                Ok(Ok(_)) => ExitCode::SUCCESS,
                Ok(Err(e)) => { error!("{e}"); ExitCode::FAILURE }
                Err(e) => { error!("pool task failed: {e}"); ExitCode::FAILURE }
            }
        }
    };
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    checkpoints.abort();
    store.close().await;
    Ok(code)
}
