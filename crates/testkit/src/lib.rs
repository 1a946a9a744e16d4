//! The real Asterisk testbed, seen from a test: its connection facts (testbed.env), an ARI and
//! an AMI client to act as phones, and a `callpark run` process with a configuration of the
//! test's own. Nothing here stands in for Asterisk: a test that cannot reach it fails.
//!
//! The crate `callpark-testkit`, shared by the end-to-end tests (`tests/`) and the benchmarks
//! (`benches/`): compiled once, not into each test binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use callpark::park::ParkedCall;
use callpark::store::{LogRow, Store};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, MutexGuard, Notify};

pub mod faults;
pub mod fs;
pub mod gesture;
pub mod phone;
pub mod sip;
pub mod testbed;
pub mod wire;

/// The repository's root (this crate lives in `crates/testkit`).
pub const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The `callpark` binary cargo built for the test or benchmark running. Cargo names it to
/// integration tests only at compile time (`CARGO_BIN_EXE_callpark`), not to a library they
/// use; it is built beside them: a test runs from `target/<profile>/deps/`, the binary is
/// `target/<profile>/callpark`. `CALLPARK_BIN` overrides.
pub fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CALLPARK_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("the running test's path");
    let p = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("callpark"))
        .expect("the test runs from target/<profile>/deps");
    assert!(
        p.exists(),
        "{} does not exist: run the tests with cargo (it builds the binary), or set CALLPARK_BIN",
        p.display()
    );
    p
}

/// A testbed's testbed.env (`KEY=VALUE` lines, `#` comments), with `<prefix>ROOT` set from the
/// environment when there, else from `<prefix>DEFAULT_ROOT`.
pub fn read_testbed_env(file: &str, prefix: &str) -> HashMap<String, String> {
    let path = Path::new(REPO).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut m: HashMap<String, String> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let root_key = format!("{prefix}ROOT");
    let root =
        std::env::var(&root_key).unwrap_or_else(|_| m[&format!("{prefix}DEFAULT_ROOT")].clone());
    m.insert(root_key, root);
    m
}

/// The Asterisk testbed's testbed.env; `CALLPARK_TESTBED_ROOT` from the environment wins.
pub fn testbed_env() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        read_testbed_env("contrib/testbed/asterisk/testbed.env", "CALLPARK_TESTBED_")
    })
}

pub fn tb(key: &str) -> String {
    testbed_env()
        .get(&format!("CALLPARK_TESTBED_{key}"))
        .unwrap_or_else(|| panic!("testbed.env has no CALLPARK_TESTBED_{key}"))
        .clone()
}

/// The testbeds' turn, held by one test at a time.
pub struct Turn {
    _in_process: MutexGuard<'static, ()>,
    /// Locked (flock) while held: test binaries and benchmarks run as separate processes.
    _across_processes: Vec<std::fs::File>,
}

/// One Asterisk and one FreeSWITCH serve every test, benchmark and fault run on the machine;
/// they take turns, within this process and across processes (a second `cargo test` or a
/// benchmark started meanwhile waits instead of resetting a PBX under a running test).
pub async fn exclusive() -> Turn {
    turn(&["asterisk", "freeswitch"]).await
}

/// The turn of one testbed only (`asterisk` or `freeswitch`), for a run that drives one PBX:
/// the long fault runs of both PBXes can then go side by side.
pub async fn exclusive_of(testbed: &'static str) -> Turn {
    turn(&[testbed]).await
}

async fn turn(testbeds: &[&'static str]) -> Turn {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    let in_process = LOCK.get_or_init(|| Mutex::new(())).lock().await;
    let mut files = Vec::new();
    // Always in this order, so two turns never wait on each other crosswise.
    for t in testbeds {
        let path = std::env::temp_dir().join(format!("callpark-testbed-{t}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = tokio::task::spawn_blocking(move || {
            use std::os::fd::AsRawFd;
            // flock(2): released by the kernel when the file closes, even if the test is
            // killed.
            // SAFETY: the descriptor belongs to `file`, which outlives the call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                panic!(
                    "lock {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
            }
            file
        })
        .await
        .unwrap();
        files.push(file);
    }
    Turn {
        _in_process: in_process,
        _across_processes: files,
    }
}

/// Waits until `f` gives `Some`, polling every 100 ms; panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let t0 = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if t0.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ----- ARI ---------------------------------------------------------------------------------

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

/// The first item after `mark` of a list a reader task appends to (and notifies `news` of)
/// that `pred` accepts; only what arrived since the last look is scanned again. Panics with
/// `what` after `timeout`.
pub async fn wait_in<T: Clone>(
    list: &std::sync::Mutex<Vec<T>>,
    news: &Notify,
    mark: usize,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&T) -> bool,
) -> T {
    let end = Instant::now() + timeout;
    let mut from = mark;
    loop {
        let notified = news.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let items = list.lock().unwrap();
            if let Some(m) = items[from..].iter().find(|m| pred(m)) {
                return m.clone();
            }
            from = items.len();
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
    }
}

// ----- AMI ---------------------------------------------------------------------------------

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

// ----- phones on the Asterisk testbed ----------------------------------------------------------

/// A call between `dev-<phone>` (the parker's phone) and a caller, which the phone then blind
/// transfers to the park code. Returns the parked channel (the caller) and the transferer.
pub async fn park_by_transfer(
    ari: &Ari,
    ami: &Ami,
    phone: &str,
    caller_id: &str,
) -> (Value, Value) {
    park_by_transfer_to(ari, ami, phone, caller_id, "park").await
}

/// [`park_by_transfer`] to any extension of `park-in`: a lot's park code, or an orbit (a
/// directed park, as a busy-lamp key pressed during a call does it).
pub async fn park_by_transfer_to(
    ari: &Ari,
    ami: &Ami,
    phone: &str,
    caller_id: &str,
    exten: &str,
) -> (Value, Value) {
    ami.set_phone(phone, "answer").await;
    let to = format!("to-dev-{phone}");
    let (_, transferer_id) = ari
        .originate_local_ids(&to, "calls", ("answer", "phones"), caller_id)
        .await;
    let caller_prefix = format!("Local/dev-{phone}@phones-");
    // The caller is the phone's channel in Dial's bridge with the transferer (a transfer
    // needs that bridge to find its peer): found by the bridge, not by name alone, which an
    // earlier call of the same phone may still carry.
    let (transferer, caller) = wait_for(
        "the phone's call to be up and bridged",
        Duration::from_secs(10),
        || async {
            let t = ari.channel(&transferer_id).await?;
            let bridge = ari.bridges().await.into_iter().find(|b| {
                b["channels"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|x| x == transferer_id.as_str()))
            })?;
            let chans = ari.channels().await;
            let c = bridge["channels"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .filter(|id| *id != transferer_id)
                .find_map(|id| {
                    chans.iter().find(|c| {
                        c["id"] == id
                            && c["name"]
                                .as_str()
                                .is_some_and(|n| n.starts_with(&caller_prefix) && n.ends_with(";1"))
                    })
                })?
                .clone();
            (t["state"] == "Up" && c["state"] == "Up").then_some((t, c))
        },
    )
    .await;
    ami.blind_transfer(transferer["name"].as_str().unwrap(), exten, "park-in")
        .await;
    (caller, transferer)
}

/// Another phone dials an orbit; returns the retrieving channel (the half in Stasis).
pub async fn dial_orbit(ari: &Ari, orbit: &str, caller_id: &str) -> Value {
    let (_, two) = ari
        .originate_local_ids(orbit, "park-in", ("answer", "phones"), caller_id)
        .await;
    wait_for(
        "the retriever's channel",
        Duration::from_secs(5),
        || async { ari.channel(&two).await },
    )
    .await
}

// ----- callpark ----------------------------------------------------------------------------

/// `callpark run` against the testbed, with a configuration of the test's own.
pub struct Callpark {
    log_filter: &'static str,
    /// Setup::env, for every start of the process.
    env: Vec<(String, String)>,
    /// What the log says once per pool when it is connected.
    markers: Vec<&'static str>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

/// The `[park]` and `[[policy]]` part of a test's configuration; the rest is the testbed's.
pub struct Setup {
    pub park: String,
    pub policy: String,
    /// Orbit ranges of pool pbx-a (must lie in the testbed dialplan's 701-799 / *7000-*7099).
    pub ranges: Vec<(&'static str, &'static str)>,
    /// ARI base URL when not the testbed's own (a [`Cutter`] in front of it).
    pub ari_url: Option<String>,
    /// CALLPARK_LOG of the process: tests read its debug lines; benchmarks run it as shipped.
    pub log: &'static str,
    /// More keys for the `[[pbx]]` entry (`sip_endpoint = "alice"`).
    pub pbx_extra: &'static str,
    /// Whether pool pbx-a (the Asterisk testbed) is configured.
    pub asterisk: bool,
    /// Orbit ranges of pool pbx-b, the FreeSWITCH testbed; no pbx-b when empty. They must lie
    /// in 601-699, which the testbed's include (the shipped dialplan/freeswitch/callpark.xml)
    /// routes to callpark.
    pub fs_ranges: Vec<(&'static str, &'static str)>,
    /// More keys for pbx-b.
    pub fs_extra: &'static str,
    /// The event socket's address when not the testbed's own (a [`Cutter`] in front of it).
    pub esl_addr: Option<String>,
    /// FreeSWITCH's include generated from this configuration (its music settings) instead of
    /// the shipped one; its orbits are then only this configuration's.
    pub fs_include_from_config: bool,
    /// The same for Asterisk's include.
    pub ast_include_from_config: bool,
    /// More environment variables for the `callpark run` process (`NOTIFY_SOCKET`, ...).
    pub env: Vec<(String, String)>,
    /// More TOML at the end of the file: `[[lot]]` tables, ranges naming a lot.
    pub extra: String,
    /// More keys for `[service]` (`keep_log = "1h"`).
    pub service: String,
}

impl Setup {
    /// Pool pbx-b on the FreeSWITCH testbed alone, orbits 601-699.
    pub fn freeswitch() -> Setup {
        Setup {
            asterisk: false,
            ranges: vec![],
            fs_ranges: vec![("601", "699")],
            ..Setup::default()
        }
    }
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            park:
                "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"5s\"\n"
                    .into(),
            policy:
                "[[policy]]\nname = \"everyone\"\nenable_call_park = true\npatterns = [\".*\"]\n"
                    .into(),
            ranges: vec![("701", "799")],
            ari_url: None,
            log: "callpark=debug",
            pbx_extra: "",
            asterisk: true,
            fs_ranges: vec![],
            fs_extra: "",
            esl_addr: None,
            fs_include_from_config: false,
            ast_include_from_config: false,
            env: vec![],
            extra: String::new(),
            service: String::new(),
        }
    }
}

impl Callpark {
    /// Writes the configuration into a data directory under the chroot (so the chrooted
    /// Asterisk can read files callpark keeps there) and starts the service.
    pub async fn start(setup: &Setup) -> Callpark {
        let root = PathBuf::from(tb("ROOT"));
        let base = root.join("var/lib/callpark-tests");
        std::fs::create_dir_all(&base).unwrap();
        let mut dir = tempfile::Builder::new()
            .prefix("t")
            .tempdir_in(&base)
            .unwrap();
        // CALLPARK_KEEP_DIRS=1 keeps each run's configuration, log and store for a look
        // after a benchmark that only counts what went wrong.
        if std::env::var_os("CALLPARK_KEEP_DIRS").is_some() {
            dir.disable_cleanup(true);
            eprintln!("callpark data: {}", dir.path().display());
        }
        let mut text = format!(
            "[service]\ndata_dir = \"{}\"\n{}\n\n[park]\n{}\n{}\n",
            dir.path().join("data").display(),
            setup.service,
            setup.park,
            setup.policy
        );
        let mut markers = Vec::new();
        if setup.asterisk {
            text.push_str(&format!(
                "[[pbx]]\nname = \"pbx-a\"\nkind = \"asterisk\"\naddress = \"{}\"\nusername = \"{}\"\npassword = \"{}\"\napp = \"{}\"\n",
                setup.ari_url.clone().unwrap_or_else(|| tb("ARI_URL")),
                tb("ARI_USER"),
                tb("ARI_PASSWORD"),
                tb("ARI_APP")
            ));
            text.push_str(setup.pbx_extra);
            text.push('\n');
            markers.push("connected to ARI");
        }
        if !setup.fs_ranges.is_empty() {
            text.push_str(&format!(
                "[[pbx]]\nname = \"pbx-b\"\nkind = \"freeswitch\"\naddress = \"{}\"\npassword = \"{}\"\n",
                setup.esl_addr.clone().unwrap_or_else(fs::esl_addr),
                fs::fb("ESL_PASSWORD"),
            ));
            // The shipped include's outbound address (the example configuration's).
            if !setup.fs_extra.contains("outbound") {
                text.push_str("outbound = \"127.0.0.1:8041\"\n");
            }
            text.push_str(setup.fs_extra);
            text.push('\n');
            markers.push("connected to FreeSWITCH");
        }
        let pools = [("pbx-a", &setup.ranges), ("pbx-b", &setup.fs_ranges)];
        for (pool, ranges) in pools {
            for (i, (first, last)) in ranges.iter().enumerate() {
                text.push_str(&format!(
                    "\n[[orbit_range]]\nname = \"{pool}-r{i}\"\nfirst = \"{first}\"\nlast = \"{last}\"\npool = \"{pool}\"\n"
                ));
            }
        }
        text.push('\n');
        text.push_str(&setup.extra);
        let config = dir.path().join("callpark.toml");
        std::fs::write(&config, text).unwrap();
        if setup.asterisk {
            let include = if setup.ast_include_from_config {
                generated_include(&config, "asterisk", "pbx-a")
            } else {
                let p = Path::new(REPO).join("dialplan/asterisk/callpark.conf");
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            };
            install_asterisk_include(&include);
        }
        if !setup.fs_ranges.is_empty() {
            let include = if setup.fs_include_from_config {
                fs::generated_include(&config)
            } else {
                fs::shipped_include()
            };
            fs::install_include(&fs::Esl::connect().await, &include).await;
        }
        let log = dir.path().join("callpark.log");
        let mut cp = Callpark {
            log_filter: setup.log,
            env: setup.env.clone(),
            markers,
            dir,
            config,
            log,
            child: None,
        };
        cp.spawn().await;
        cp
    }

    /// Starts (again) the process and waits until every pool is connected.
    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let count = |text: &str| -> Vec<usize> {
            self.markers
                .iter()
                .map(|m| text.matches(m).count())
                .collect()
        };
        let before = count(&std::fs::read_to_string(&self.log).unwrap_or_default());
        let child = self.command(log).spawn().expect("start callpark");
        self.child = Some(child);
        let path = self.log.clone();
        wait_for(
            "callpark to connect to every PBX",
            Duration::from_secs(20),
            || async {
                let t = std::fs::read_to_string(&path).unwrap_or_default();
                let now = count(&t);
                now.iter().zip(&before).all(|(n, b)| n > b).then_some(())
            },
        )
        .await;
    }

    /// `callpark run` as the tests start it, its output appended to `log`.
    fn command(&self, log: std::fs::File) -> Command {
        let mut c = Command::new(bin());
        c.arg("--config")
            .arg(&self.config)
            .arg("run")
            .env("CALLPARK_LOG", self.log_filter)
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        c
    }

    /// Starts the process the way systemd does (`NOTIFY_SOCKET`), and waits for its
    /// `READY=1`: the time from exec to ready, every pool connected and reconciled.
    pub async fn spawn_until_ready(&mut self, timeout: Duration) -> Duration {
        let sock = self.dir.path().join("notify.sock");
        let _ = std::fs::remove_file(&sock);
        let listener = tokio::net::UnixDatagram::bind(&sock).expect("bind a notify socket");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = self.command(log);
        cmd.env("NOTIFY_SOCKET", &sock);
        // CALLPARK_RESTART_LOG also logs the restarts in full (the steps' times).
        if std::env::var_os("CALLPARK_RESTART_LOG").is_some() {
            cmd.env("CALLPARK_LOG", "callpark=debug");
        }
        let t0 = std::time::Instant::now();
        self.child = Some(cmd.spawn().expect("start callpark"));
        let mut buf = vec![0u8; 4096];
        let ready = tokio::time::timeout(timeout, async {
            loop {
                let n = listener
                    .recv(&mut buf)
                    .await
                    .expect("read the notify socket");
                if String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "READY=1")
                {
                    return t0.elapsed();
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no READY=1 within {timeout:?}:\n{}", self.log_text()));
        let _ = std::fs::remove_file(&sock);
        ready
    }

    /// Stops the process as systemd does (SIGTERM), starts it again under `NOTIFY_SOCKET`
    /// and checks that every one of `parked` calls is restored from the store and, by
    /// `alive`, still parked on the PBX, with no warning logged: the benchmarks' restart
    /// phase. Prints and returns the time from exec to READY=1.
    pub async fn restart_with_calls<F, Fut>(
        &mut self,
        run: usize,
        of: usize,
        parked: usize,
        pbx: &str,
        alive: F,
    ) -> Duration
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(30)).await;
        if let Ok(prefix) = std::env::var("CALLPARK_RESTART_LOG") {
            // The store as the restart finds it, for a look at what reading it costs.
            std::fs::copy(self.db(), format!("{prefix}.{run}.db")).expect("copy the store");
        }
        let mark = self.log_text().len();
        let ready = self.spawn_until_ready(Duration::from_secs(30)).await;
        let calls = self.parked().await;
        let mut up = 0;
        for c in &calls {
            if alive(c.channel.as_str().to_string()).await {
                up += 1;
            }
        }
        let log = self.log_text();
        // CALLPARK_RESTART_LOG=PREFIX keeps each restart's part of callpark's log for a look.
        if let Ok(prefix) = std::env::var("CALLPARK_RESTART_LOG") {
            std::fs::write(format!("{prefix}.{run}"), &log[mark..]).expect("write the log");
        }
        let problems = log[mark..]
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .count();
        println!(
            "restart {run}/{of} with {parked} calls parked: exec to READY=1 in {}; {} in the store, {up} alive in {pbx}, {problems} warnings/errors",
            ms(ready),
            calls.len()
        );
        assert_eq!(calls.len(), parked, "every call restored");
        assert_eq!(up, parked, "every call still parked after the restart");
        assert_eq!(problems, 0, "callpark logged warnings:\n{}", &log[mark..]);
        ready
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The process ended by itself (a zombie not yet reaped, or gone): a fault run that finds
    /// it so reports it, rather than every invariant that breaks after.
    pub fn exited(&self) -> bool {
        let Some(pid) = self.pid() else {
            return false;
        };
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the command name, which is in parentheses.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            Err(_) => true,
        }
    }

    /// SIGSTOP: the process holds its sockets open but handles nothing (a hung callpark).
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`Callpark::freeze`].
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    /// Sends `signal` (`TERM`, `STOP`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("callpark is running").to_string();
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -{signal} {pid}");
    }

    /// Waits for the process to exit by itself; panics after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("callpark is running");
        let status = wait_for("callpark to exit", timeout, || {
            let s = child.try_wait().expect("wait for callpark");
            async move { s }
        })
        .await;
        self.child = None;
        status
    }

    /// SIGKILL: nothing in memory survives, nothing is flushed.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("data/callpark.db")
    }

    async fn store(&self) -> Store {
        Store::open(&self.db()).await.expect("open the store")
    }

    pub async fn parked(&self) -> Vec<ParkedCall> {
        let s = self.store().await;
        let v = s.parked(None).await.unwrap();
        s.close().await;
        v.into_iter().map(|(_, c)| c).collect()
    }

    pub async fn log_rows(&self) -> Vec<LogRow> {
        let s = self.store().await;
        let v = s.log(10_000).await.unwrap();
        s.close().await;
        v
    }

    /// The first log entry of `kind` for `channel`; panics naming both when there is none.
    pub async fn log_row(&self, channel: &str, kind: &str) -> LogRow {
        self.log_rows()
            .await
            .into_iter()
            .find(|r| r.kind == kind && r.channel == channel)
            .unwrap_or_else(|| panic!("no `{kind}` entry in the log for {channel}"))
    }

    /// Log kinds of one channel, oldest first.
    pub async fn kinds_of(&self, channel: &str) -> Vec<String> {
        let mut rows: Vec<LogRow> = self
            .log_rows()
            .await
            .into_iter()
            .filter(|r| r.channel == channel)
            .collect();
        rows.sort_by_key(|r| r.id);
        rows.into_iter().map(|r| r.kind).collect()
    }

    /// Waits for the call parked on `orbit`.
    pub async fn wait_parked_on(&self, orbit: &str) -> ParkedCall {
        wait_for(
            &format!("a call parked on {orbit}"),
            Duration::from_secs(10),
            || async {
                self.parked()
                    .await
                    .into_iter()
                    .find(|c| c.orbit.map(|o| o.to_string()).as_deref() == Some(orbit))
            },
        )
        .await
    }

    /// Waits until the event log has `kind` for `channel`.
    pub async fn wait_log(&self, channel: &str, kind: &str, timeout: Duration) {
        wait_for(
            &format!("log entry {kind} for {channel}"),
            timeout,
            || async {
                self.kinds_of(channel)
                    .await
                    .iter()
                    .any(|k| k == kind)
                    .then_some(())
            },
        )
        .await;
    }
}

impl Drop for Callpark {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- callpark log ({}) ----\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// `callpark dialplan <kind> --pool <pool>` for a configuration file.
pub fn generated_include(config: &Path, kind: &str, pool: &str) -> String {
    let out = Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(["dialplan", kind, "--pool", pool])
        .output()
        .expect("run callpark dialplan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Puts `text` in place as the Asterisk testbed's callpark.conf and reloads the dialplan, when
/// it is not already the one in place.
pub fn install_asterisk_include(text: &str) {
    let path = Path::new(&tb("ROOT")).join("etc/asterisk/callpark.conf");
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text) {
        return;
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let script = Path::new(REPO).join("contrib/testbed/asterisk/testbed.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["cli", "dialplan reload"])
        .output()
        .expect("run testbed.sh cli");
    assert!(out.status.success(), "dialplan reload: {out:?}");
}

/// Asterisk's verbose log (the testbed's `full`), to see what a channel heard.
pub fn asterisk_log() -> String {
    let p = Path::new(&tb("ROOT")).join("var/log/asterisk/full");
    std::fs::read_to_string(&p).unwrap_or_default()
}

/// The testbed must answer; when it does not, `testbed.sh up` is tried once (the test command
/// in README does it before the tests). A testbed that cannot be started fails the test.
pub async fn testbed() -> (Ari, Ami) {
    let ari = Ari::testbed();
    if !ari.answers().await {
        static UP: OnceLock<Result<(), String>> = OnceLock::new();
        let r = UP.get_or_init(|| {
            let script = Path::new(REPO).join("contrib/testbed/asterisk/testbed.sh");
            let out = Command::new("bash").arg(&script).arg("up").output();
            match out {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(format!(
                    "{} up failed:\n{}{}",
                    script.display(),
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )),
                Err(e) => Err(format!("cannot run {}: {e}", script.display())),
            }
        });
        if let Err(e) = r {
            panic!(
                "the Asterisk testbed is not reachable at {}: {e}",
                tb("ARI_URL")
            );
        }
        assert!(
            ari.answers().await,
            "testbed started but ARI does not answer"
        );
    }
    ari.reset().await;
    let ami = Ami::connect().await;
    (ari, ami)
}

// ----- a cuttable TCP path -------------------------------------------------------------------

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

// ----- figures for the benchmarks ---------------------------------------------------------------

/// The `p` quantile (0..=1) of `v`.
pub fn pct(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// utime + stime of a process, in seconds, and its resident and peak memory in KiB.
pub fn proc_usage(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state is [0], utime [11], stime [12] (clock ticks).
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|x| x.parse().ok())
            .unwrap_or(0)
    };
    (cpu, kib("VmRSS:"), kib("VmHWM:"))
}

/// An `[api]` table on a free loopback port with bearer `token` (kept in a file of the
/// returned directory, which must outlive the service): its TOML for [`Setup::extra`], to
/// which more `[api]` keys may be appended, and the port.
pub fn api_table(token: &str) -> (String, u16, tempfile::TempDir) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let toml = format!(
        "[api]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{}\"\n",
        token_file.display()
    );
    (toml, port, dir)
}

/// Alice-style attended transfer on Asterisk: the transferer presses its transfer key and
/// dials `exten`; returns the consultation channel. AMI's digits are now and then lost by
/// Asterisk ("Unable to acquire target extension"): then it is tried again, as a person would.
pub async fn atxfer(ari: &Ari, ami: &Ami, transferer: &Value, exten: &str) -> Value {
    // Consultation channels to this extension that exist already are not this one's.
    let prefix = format!("Local/{exten}@park-in-");
    let before: Vec<String> = ari
        .channels()
        .await
        .iter()
        .filter_map(|c| c["name"].as_str())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    let fresh = || async {
        ari.channels().await.into_iter().find(|c| {
            let n = c["name"].as_str().unwrap_or("");
            n.starts_with(&prefix) && n.ends_with(";2") && !before.iter().any(|b| b == n)
        })
    };
    for _ in 0..2 {
        let mark = asterisk_log().len();
        let r = ami
            .action(
                "Atxfer",
                &[
                    ("Channel", transferer["name"].as_str().unwrap()),
                    ("Exten", exten),
                    ("Context", "park-in"),
                ],
            )
            .await;
        assert_eq!(
            r.get("Response").map(String::as_str),
            Some("Success"),
            "{r:?}"
        );
        let consult = wait_for(
            "the consultation call, or the transfer given up",
            Duration::from_secs(15),
            || async {
                if let Some(c) = fresh().await {
                    return Some(Some(c));
                }
                let log = asterisk_log();
                log[mark.min(log.len())..]
                    .contains("Unable to acquire target extension for attended transfer")
                    .then_some(None)
            },
        )
        .await;
        if let Some(c) = consult {
            return c;
        }
    }
    panic!("Asterisk lost the attended transfer's digits twice");
}

/// A webhook that takes every connection and never answers: its URL.
pub async fn dead_webhook() -> String {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", dead.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = dead.accept().await {
            held.push(s);
        }
    });
    url
}
