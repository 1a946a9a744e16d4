//! A client of the Asterisk testbed's ARI (REST), to act as phones and look at channels,
//! bridges and lamps.

use std::time::Duration;

use serde_json::Value;

use crate::{fs, tb, wait_for};

#[derive(Clone)]
pub struct Ari {
    http: reqwest::Client,
    base: String,
    user: String,
    pass: String,
}

impl Ari {
    pub fn testbed() -> Ari {
        Ari {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                // Asterisk drops idle sessions after 15 s: never reuse one that old.
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            base: format!("{}/ari", tb("ARI_URL")),
            user: tb("ARI_USER"),
            pass: tb("ARI_PASSWORD"),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<(u16, Value), String> {
        let attempt = || {
            self.http
                .request(method.clone(), format!("{}{path}", self.base))
                .basic_auth(&self.user, Some(&self.pass))
                .query(query)
                .send()
        };
        // Once more when a kept-alive connection was closed under the request.
        let r = match attempt().await {
            Err(e) if !e.is_timeout() && (e.is_connect() || e.is_request()) => attempt().await,
            r => r,
        }
        .map_err(|e| {
            let mut m = format!("{method} {path}: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(c) = src {
                m.push_str(&format!(": {c}"));
                src = c.source();
            }
            m
        })?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    pub async fn get(&self, path: &str) -> Value {
        let (s, v) = self
            .call(reqwest::Method::GET, path, &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(s < 300, "GET {path}: {s} {v}");
        v
    }

    pub async fn post(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let (s, v) = self
            .call(reqwest::Method::POST, path, query)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(s < 300, "POST {path} {query:?}: {s} {v}");
        v
    }

    pub async fn delete(&self, path: &str) -> u16 {
        self.call(reqwest::Method::DELETE, path, &[])
            .await
            .map(|(s, _)| s)
            .unwrap_or(0)
    }

    pub async fn answers(&self) -> bool {
        matches!(
            self.call(reqwest::Method::GET, "/asterisk/info", &[]).await,
            Ok((200, _))
        )
    }

    pub async fn channels(&self) -> Vec<Value> {
        self.get("/channels")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The channel whose name starts with `prefix` and ends with `suffix`.
    pub async fn channel_named(&self, prefix: &str, suffix: &str) -> Option<Value> {
        self.channels().await.into_iter().find(|c| {
            let n = c["name"].as_str().unwrap_or("");
            n.starts_with(prefix) && n.ends_with(suffix)
        })
    }

    pub async fn channel_exists(&self, id: &str) -> bool {
        self.channel(id).await.is_some()
    }

    pub async fn bridges(&self) -> Vec<Value> {
        self.get("/bridges")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The bridge holding both channels, if any.
    pub async fn bridge_with(&self, a: &str, b: &str) -> Option<Value> {
        self.bridges().await.into_iter().find(|br| {
            let chs: Vec<&str> = br["channels"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            chs.contains(&a) && chs.contains(&b)
        })
    }

    /// A Local channel into `exten@context` whose other half runs `then_exten@then_context`
    /// (the "phone" that placed the call). Returns the originated (;1) channel.
    pub async fn originate_local(
        &self,
        exten: &str,
        context: &str,
        then: (&str, &str),
        caller_id: &str,
    ) -> Value {
        let ep = format!("Local/{exten}@{context}");
        self.post(
            "/channels",
            &[
                ("endpoint", ep.as_str()),
                ("extension", then.0),
                ("context", then.1),
                ("priority", "1"),
                ("callerId", caller_id),
                ("timeout", "30"),
            ],
        )
        .await
    }

    /// [`Ari::originate_local`] with ids of the test's choosing for both halves: returns
    /// (the originated ;1, the ;2 that runs `exten`). A name does not tell two calls apart:
    /// at volume an earlier call to the same orbit can still be up under the same prefix.
    pub async fn originate_local_ids(
        &self,
        exten: &str,
        context: &str,
        then: (&str, &str),
        caller_id: &str,
    ) -> (String, String) {
        let ep = format!("Local/{exten}@{context}");
        let (one, two) = (fs::uuid(), fs::uuid());
        self.post(
            "/channels",
            &[
                ("endpoint", ep.as_str()),
                ("extension", then.0),
                ("context", then.1),
                ("priority", "1"),
                ("callerId", caller_id),
                ("timeout", "30"),
                ("channelId", one.as_str()),
                ("otherChannelId", two.as_str()),
            ],
        )
        .await;
        (one, two)
    }

    pub async fn channel(&self, id: &str) -> Option<Value> {
        match self
            .call(reqwest::Method::GET, &format!("/channels/{id}"), &[])
            .await
        {
            Ok((200, v)) => Some(v),
            _ => None,
        }
    }

    pub async fn device_state(&self, device: &str) -> String {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/deviceStates/{}", device.replace('#', "%23")),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .1;
        v["state"].as_str().unwrap_or("").to_string()
    }

    /// Hangs up every channel, removes every bridge and turns every callpark lamp off (a lamp
    /// left on by a killed run would hide the next park's lamp change): each test starts clean.
    pub async fn reset(&self) {
        for c in self.channels().await {
            if let Some(id) = c["id"].as_str() {
                self.delete(&format!("/channels/{id}")).await;
            }
        }
        wait_for("every channel gone", Duration::from_secs(60), || async {
            self.channels().await.is_empty().then_some(())
        })
        .await;
        for b in self.bridges().await {
            if let Some(id) = b["id"].as_str() {
                self.delete(&format!("/bridges/{id}")).await;
            }
        }
        let states = self.get("/deviceStates").await;
        for d in states.as_array().into_iter().flatten() {
            let (Some(name), Some(state)) = (d["name"].as_str(), d["state"].as_str()) else {
                continue;
            };
            if name.starts_with("Stasis:callpark-") && state != "NOT_INUSE" {
                let path = format!("/deviceStates/{}", name.replace('#', "%23"));
                let (status, body) = self
                    .call(reqwest::Method::PUT, &path, &[("deviceState", "NOT_INUSE")])
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(status < 300, "PUT {path}: {status} {body}");
            }
        }
    }
}
