//! A client of the Asterisk testbed's AMI: actions, and the call events it hears, each with
//! its arrival time.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Notify};

use crate::{tb, wait_in};

pub type AmiMsg = HashMap<String, String>;

/// The instant AMI arrival times count from.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// When an AMI message arrived.
pub fn arrived(m: &AmiMsg) -> Instant {
    epoch() + Duration::from_micros(m["_t_us"].parse().unwrap())
}

/// A small AMI client: actions with their responses, and every event kept for inspection.
#[derive(Clone)]
pub struct Ami {
    write: Arc<Mutex<tokio::net::tcp::OwnedWriteHalf>>,
    msgs: Arc<std::sync::Mutex<Vec<AmiMsg>>>,
    news: Arc<Notify>,
    seq: Arc<std::sync::atomic::AtomicU64>,
}

impl Ami {
    /// An AMI client that hears call events (bridges, music on hold, parking) and keeps them
    /// for `wait_event`.
    pub async fn connect() -> Ami {
        Ami::connect_hearing("call").await
    }

    /// An AMI client for actions only (`Events: off`): it keeps nothing but replies. A client
    /// that keeps every call event of a soak's 100,000 calls grows by gigabytes.
    pub async fn connect_for_actions() -> Ami {
        Ami::connect_hearing("off").await
    }

    async fn connect_hearing(events: &str) -> Ami {
        let addr = format!("{}:{}", tb("AMI_HOST"), tb("AMI_PORT"));
        let s = TcpStream::connect(&addr)
            .await
            .unwrap_or_else(|e| panic!("AMI at {addr}: {e} (is the testbed up?)"));
        let (r, w) = s.into_split();
        epoch();
        let ami = Ami {
            write: Arc::new(Mutex::new(w)),
            msgs: Default::default(),
            news: Arc::new(Notify::new()),
            seq: Default::default(),
        };
        let (msgs, news) = (ami.msgs.clone(), ami.news.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(r).lines();
            let mut cur = AmiMsg::new();
            while let Ok(Some(line)) = lines.next_line().await {
                let line = line.trim_end();
                if line.is_empty() {
                    if !cur.is_empty() {
                        // When it arrived, for latency figures (µs since the first client).
                        let t = epoch().elapsed().as_micros().to_string();
                        cur.insert("_t_us".into(), t);
                        msgs.lock().unwrap().push(std::mem::take(&mut cur));
                        news.notify_waiters();
                    }
                } else if let Some((k, v)) = line.split_once(": ") {
                    cur.insert(k.to_string(), v.to_string());
                }
            }
        });
        let r = ami
            .action(
                "Login",
                &[
                    ("Username", &tb("AMI_USER")),
                    ("Secret", &tb("AMI_SECRET")),
                    // Call events only (bridges, music on hold, parking): the dialplan class
                    // (Newexten, VarSet) would flood the client with hundreds of calls up.
                    ("Events", events),
                ],
            )
            .await;
        assert_eq!(
            r.get("Response").map(String::as_str),
            Some("Success"),
            "{r:?}"
        );
        ami
    }

    pub async fn action(&self, action: &str, fields: &[(&str, &str)]) -> AmiMsg {
        let id = format!(
            "t{}",
            self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let mut text = format!("Action: {action}\r\nActionID: {id}\r\n");
        for (k, v) in fields {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text.push_str("\r\n");
        let mark = self.mark();
        self.write
            .lock()
            .await
            .write_all(text.as_bytes())
            .await
            .expect("AMI write");
        self.wait_msg(
            mark,
            &format!("AMI response to {action}"),
            Duration::from_secs(10),
            |m| m.get("ActionID") == Some(&id) && m.contains_key("Response"),
        )
        .await
    }

    /// How many messages have arrived: events after this mark are new.
    pub fn mark(&self) -> usize {
        self.msgs.lock().unwrap().len()
    }

    /// The first event named `name` after `mark` that `pred` accepts.
    pub async fn wait_event(
        &self,
        mark: usize,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&AmiMsg) -> bool,
    ) -> AmiMsg {
        self.wait_msg(mark, &format!("AMI event {name}"), timeout, |m| {
            m.get("Event").map(String::as_str) == Some(name) && pred(m)
        })
        .await
    }

    async fn wait_msg(
        &self,
        mark: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&AmiMsg) -> bool,
    ) -> AmiMsg {
        wait_in(&self.msgs, &self.news, mark, what, timeout, pred).await
    }

    /// Events seen so far with this name.
    pub fn events(&self, name: &str) -> Vec<AmiMsg> {
        self.msgs
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.get("Event").map(String::as_str) == Some(name))
            .cloned()
            .collect()
    }

    /// How a simulated `dev-NAME` phone behaves from now on (answer, noanswer, busy, ...).
    pub async fn set_phone(&self, name: &str, mode: &str) {
        let r = self
            .action(
                "DBPut",
                &[("Family", "phone"), ("Key", name), ("Val", mode)],
            )
            .await;
        assert_eq!(
            r.get("Response").map(String::as_str),
            Some("Success"),
            "{r:?}"
        );
    }

    pub async fn blind_transfer(&self, channel: &str, exten: &str, context: &str) {
        let r = self
            .action(
                "BlindTransfer",
                &[("Channel", channel), ("Exten", exten), ("Context", context)],
            )
            .await;
        assert_eq!(
            r.get("Response").map(String::as_str),
            Some("Success"),
            "BlindTransfer of {channel}: {r:?}"
        );
    }
}
