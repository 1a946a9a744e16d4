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

/// What one connection of `watch` ended with.
enum WatchEnd {
    /// The service closed the stream.
    Closed,
    /// A `reset`: entries were skipped (pruned, or the store could not be read).
    Reset(serde_json::Value),
}

pub async fn watch(cfg: &Config) -> anyhow::Result<ExitCode> {
    let (base, token) = endpoint(cfg)?;
    let http = reqwest::Client::new();
    loop {
        match watch_once(&http, &base, &token).await? {
            WatchEnd::Closed => return Ok(ExitCode::SUCCESS),
            WatchEnd::Reset(data) => {
                // What callpark holds now stands in for what was skipped; then the stream
                // again, from what happens next.
                println!(
                    "-- entries were skipped ({}, oldest kept: {}); the calls parked now:",
                    data["reason"].as_str().unwrap_or("reset"),
                    data["oldest"]
                );
                let parked: Vec<serde_json::Value> = http
                    .get(format!("{base}/parked"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .with_context(|| format!("{base}/parked: reading the calls parked now"))?
                    .json()
                    .await
                    .with_context(|| format!("{base}/parked: not the list of parked calls"))?;
                for c in &parked {
                    println!(
                        "   {:<10} {:<10} {:<8} {:<24} {} <{}> (parked by {})",
                        c["orbit"].as_str().unwrap_or(""),
                        c["lot"].as_str().unwrap_or(""),
                        c["pool"].as_str().unwrap_or(""),
                        c["channel"].as_str().unwrap_or(""),
                        c["caller"]["name"].as_str().unwrap_or(""),
                        c["caller"]["number"].as_str().unwrap_or(""),
                        c["parker"].as_str().unwrap_or("")
                    );
                }
                println!("-- {} parked; watching again", parked.len());
            }
        }
    }
}

/// One event of the stream.
#[derive(Debug, PartialEq)]
enum Block {
    /// A log entry.
    Entry(serde_json::Value),
    /// `event: reset`, with its data.
    Reset(serde_json::Value),
}

/// An event's block of lines (without its blank line); `None` for a comment (keep-alive) or
/// anything without JSON data.
fn read_block(block: &str) -> Option<Block> {
    let data = block.lines().find_map(|l| l.strip_prefix("data:"))?;
    let v = serde_json::from_str::<serde_json::Value>(data.trim()).ok()?;
    let event = block.lines().find_map(|l| l.strip_prefix("event:"));
    Some(match event.map(str::trim) {
        Some("reset") => Block::Reset(v),
        _ => Block::Entry(v),
    })
}

/// One connection to the event stream, printed line by line until it ends.
async fn watch_once(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<WatchEnd> {
    let r = http
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
            let e = match read_block(&block) {
                Some(Block::Entry(e)) => e,
                Some(Block::Reset(data)) => return Ok(WatchEnd::Reset(data)),
                None => continue,
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
    Ok(WatchEnd::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_is_told_from_an_entry_and_a_comment() {
        assert_eq!(
            read_block("event: reset\ndata: {\"oldest\":3,\"reason\":\"pruned\"}\n\n"),
            Some(Block::Reset(
                serde_json::json!({"oldest": 3, "reason": "pruned"})
            ))
        );
        assert_eq!(
            read_block("id: 4\nevent: parked\ndata: {\"id\":4}\n\n"),
            Some(Block::Entry(serde_json::json!({"id": 4})))
        );
        assert_eq!(read_block(": keep-alive\n\n"), None);
    }
}
