//! The commands that act through the running service's admin API (`[api]`): the service owns
//! the calls, so a retrieve must go through it, not around it to the store.

use std::process::ExitCode;

use anyhow::{Context, bail};
use futures_util::StreamExt;

use crate::config::Config;

/// The API's base URL and token, from the configuration the service runs with.
fn endpoint(cfg: &Config) -> anyhow::Result<(String, String)> {
    let Some(api) = &cfg.api else {
        bail!(
            "no [api] in the configuration: add one (listen, token_env or token_file) to reach the running service"
        );
    };
    let token = api.token().map_err(|m| anyhow::anyhow!("[api]: {m}"))?;
    let addr = api.listen;
    // A service listening on every address is reached on loopback.
    let host = if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    Ok((format!("http://{host}/api/v1"), token))
}

pub async fn retrieve(cfg: &Config, orbit: &str, to: &str) -> anyhow::Result<ExitCode> {
    let (base, token) = endpoint(cfg)?;
    let r = reqwest::Client::new()
        .post(format!("{base}/parked/{orbit}/retrieve"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "to": to }))
        .send()
        .await
        .with_context(|| format!("{base}: is `callpark run` running with this [api]?"))?;
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    if status.is_success() {
        println!("{orbit}: ringing {to}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {}",
            body["error"].as_str().unwrap_or(status.as_str())
        );
        Ok(ExitCode::from(if status.is_client_error() { 2 } else { 1 }))
    }
}

pub async fn watch(cfg: &Config) -> anyhow::Result<ExitCode> {
    let (base, token) = endpoint(cfg)?;
    let r = reqwest::Client::new()
        .get(format!("{base}/events"))
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("{base}: is `callpark run` running with this [api]?"))?;
    if !r.status().is_success() {
        bail!("{base}/events: {}", r.status());
    }
    let mut stream = r.bytes_stream();
    let mut buf = String::new();
    while let Some(chunk) = stream.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue;
            };
            let Ok(e) = serde_json::from_str::<serde_json::Value>(data.trim()) else {
                continue;
            };
            println!(
                "{}  {:<8} {:<18} {:<10} {:<10} {:<24} {}",
                super::fmt_ms(e["at"].as_i64().unwrap_or(0)),
                e["pool"].as_str().unwrap_or(""),
                e["kind"].as_str().unwrap_or(""),
                e["orbit"].as_str().unwrap_or(""),
                e["lot"].as_str().unwrap_or(crate::park::GENERAL_LOT),
                e["channel"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
