//! A small ARI REST client over reqwest.

use std::time::Duration;

use super::model::AriMessage;
use reqwest::{Method, StatusCode};

/// A failed ARI request.
#[derive(Debug, thiserror::Error)]
pub enum AriError {
    #[error("ARI {method} {path}: cannot reach Asterisk: {source}")]
    Transport {
        method: Method,
        path: String,
        source: reqwest::Error,
    },
    #[error("ARI {method} {path}: {status}: {message}")]
    Status {
        method: Method,
        path: String,
        status: StatusCode,
        message: String,
    },
    #[error("ARI {path}: unexpected answer: {message}")]
    Body { path: String, message: String },
    #[error("ARI {method} {path}: unexpected answer: {source}")]
    Decode {
        method: Method,
        path: String,
        source: reqwest::Error,
    },
    /// Not sent: this node's lease on the pool ran out before the request's turn came.
    #[error("ARI {method} {path}: not sent: this node's lease on the pool ran out")]
    Fenced { method: Method, path: String },
}

impl AriError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            AriError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// Asterisk took the request and never answered within the client's timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, AriError::Transport { source, .. } if source.is_timeout())
    }
}

#[derive(Debug, Clone)]
pub struct Ari {
    http: reqwest::Client,
    base: String,
    user: String,
    pass: String,
}

impl Ari {
    /// `base` is Asterisk's HTTP server, e.g. `http://127.0.0.1:8088`.
    pub fn new(base: &str, user: &str, pass: &str) -> Ari {
        Ari {
            http: Self::client(),
            base: base.trim_end_matches('/').to_string(),
            user: user.into(),
            pass: pass.into(),
        }
    }

    /// A fresh connection pool: after Asterisk stopped answering, the kept-alive connections
    /// may be dead ones that only a 10 s timeout each would reveal.
    pub(crate) fn renew(&mut self) {
        self.http = Self::client();
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .http1_only()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(8)
            // Asterisk closes idle HTTP sessions after http.conf's session_keep_alive (15 s by
            // default); reusing one it is closing fails the request, so drop ours sooner.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .expect("a plain HTTP client builds")
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The websocket URL for the events of `app`.
    pub(crate) fn events_url(&self, app: &str) -> String {
        let ws = self.base.replacen("http", "ws", 1);
        format!("{ws}/ari/events?app={app}&subscribeAll=false")
    }

    pub(crate) fn credentials(&self) -> (&str, &str) {
        (&self.user, &self.pass)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        variables: &[(String, String)],
    ) -> Result<reqwest::Response, AriError> {
        let url = format!("{}/ari{}", self.base, path);
        // ARI takes channel variables only in a JSON body.
        let body = (!variables.is_empty()).then(|| {
            let vars: serde_json::Map<String, serde_json::Value> = variables
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            serde_json::json!({ "variables": vars })
        });
        let attempt = || {
            let r = self
                .http
                .request(method.clone(), &url)
                .basic_auth(&self.user, Some(&self.pass))
                .query(query);
            match &body {
                Some(b) => r.json(b),
                None => r,
            }
            .send()
        };
        // One more try when the request died on the way (a kept-alive connection Asterisk
        // had just closed); not after a timeout, when Asterisk may have acted. Every request
        // callpark makes is safe to repeat: originates carry their own channel id.
        let resp = match attempt().await {
            Err(e) if !e.is_timeout() && (e.is_connect() || e.is_request()) => attempt().await,
            r => r,
        }
        .map_err(|source| AriError::Transport {
            method: method.clone(),
            path: path.into(),
            source,
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<AriMessage>(&body)
            .map(|m| m.message)
            .unwrap_or(body);
        Err(AriError::Status {
            method,
            path: path.into(),
            status,
            message,
        })
    }

    /// A request whose answer is read as text (JSON, or empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<String, AriError> {
        self.call_with(method, path, query, &[]).await
    }

    /// A request with channel variables (an originate's), its answer read as text.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        variables: &[(String, String)],
    ) -> Result<String, AriError> {
        let resp = self.send(method.clone(), path, query, variables).await?;
        resp.text().await.map_err(|source| AriError::Decode {
            method,
            path: path.into(),
            source,
        })
    }
}
