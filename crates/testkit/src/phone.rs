//! A real SIP phone for the tests: `tests/phone/phone.py`, a user agent on PJSIP's pjsua2 (a SIP
//! stack nobody here wrote), run with the Python of `target/pjsua2-venv` (contrib/test-all.sh
//! installs it). It sends what phones send: REFER with Replaces (attended transfer), re-INVITE
//! holds, 302 deflections. One process per phone; commands go to its stdin, its events come
//! back as JSON lines and are all kept, in arrival order, for `wait`.
//!
//! ```ignore
//! let alice = Phone::start(PhoneOpts::new("127.0.0.1:5170", "sip:alice@127.0.0.1")).await;
//! let c = alice.call("sip:park@127.0.0.1:5160").await;
//! alice.wait_state(c, "CONFIRMED", S(5)).await;
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Mutex, Notify};

use super::REPO;

/// How to start a phone.
#[derive(Clone, Debug)]
pub struct PhoneOpts {
    /// UDP address it listens on (its contact): `127.0.0.1:5170`.
    pub bind: String,
    /// Its address of record, `sip:alice@127.0.0.1` (`"Alice" <sip:...>` for a display name).
    pub id: String,
    /// `sip:host:port` to REGISTER at; `None`: a static contact (Asterisk's `alice`).
    pub registrar: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// pjsua's log (every SIP message at level 4 and up); `None`: a file in the temp dir.
    pub log: Option<PathBuf>,
}

impl PhoneOpts {
    pub fn new(bind: &str, id: &str) -> PhoneOpts {
        PhoneOpts {
            bind: bind.into(),
            id: id.into(),
            registrar: None,
            user: None,
            password: None,
            log: None,
        }
    }

    /// Registers at `registrar` as `user` with `password`.
    pub fn registering(mut self, registrar: &str, user: &str, password: &str) -> PhoneOpts {
        self.registrar = Some(registrar.into());
        self.user = Some(user.into());
        self.password = Some(password.into());
        self
    }
}

/// The venv's Python; panics, naming the install step, when it is missing or lacks pjsua2:
/// a test that needs the phone fails without it, it is never skipped.
pub fn python() -> PathBuf {
    let py = Path::new(REPO).join("target/pjsua2-venv/bin/python");
    let ok = std::process::Command::new(&py)
        .args(["-c", "import pjsua2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import pjsua2: the SIP phone (tests/phone/phone.py) needs it. Install it with \
         `python3 -m venv target/pjsua2-venv && target/pjsua2-venv/bin/pip install \
         pjsua2-python==2.15.1.post1` (contrib/test-all.sh does it)",
        py.display()
    );
    py
}

pub struct Phone {
    pub opts: PhoneOpts,
    /// pjsua's log file: the SIP messages the phone sent and got.
    pub log: PathBuf,
    stdin: Mutex<ChildStdin>,
    events: Arc<std::sync::Mutex<Vec<Value>>>,
    news: Arc<Notify>,
    child: Child,
    /// Keeps the default log's directory alive.
    _dir: Option<tempfile::TempDir>,
}

impl Phone {
    /// Starts the phone and waits until it is up (and, with a registrar, registered).
    pub async fn start(opts: PhoneOpts) -> Phone {
        let py = python();
        let (log, dir) = match &opts.log {
            Some(l) => (l.clone(), None),
            None => {
                let d = tempfile::tempdir().unwrap();
                (d.path().join("pjsua.log"), Some(d))
            }
        };
        let mut cmd = Command::new(py);
        cmd.arg(Path::new(REPO).join("tests/phone/phone.py"))
            .args(["--bind", &opts.bind, "--id", &opts.id])
            .arg("--log")
            .arg(&log);
        if let Some(r) = &opts.registrar {
            cmd.args(["--registrar", r]);
        }
        if let Some(u) = &opts.user {
            cmd.args(["--user", u]);
        }
        if let Some(p) = &opts.password {
            cmd.args(["--password", p]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start tests/phone/phone.py: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let events: Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
        let news = Arc::new(Notify::new());
        let (ev, nw) = (events.clone(), news.clone());
        let bind = opts.bind.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => ev.lock().unwrap().push(v),
                    Err(_) => eprintln!("phone {bind}: not JSON: {line}"),
                }
                nw.notify_waiters();
            }
            // The phone's end: anything waiting on it gives up at once, not at its timeout.
            ev.lock()
                .unwrap()
                .push(serde_json::json!({"event": "exited"}));
            nw.notify_waiters();
        });
        let phone = Phone {
            opts,
            log,
            stdin: Mutex::new(stdin),
            events,
            news,
            child,
            _dir: dir,
        };
        let ready = phone
            .wait(0, "the phone to start", Duration::from_secs(10), |e| {
                matches!(ev_name(e), "ready" | "exited")
            })
            .await;
        assert_eq!(
            ev_name(&ready),
            "ready",
            "phone on {} exited at start (port taken?): {:?}",
            phone.opts.bind,
            phone.events()
        );
        if phone.opts.registrar.is_some() {
            let r = phone
                .wait(
                    0,
                    "the phone's REGISTER answered",
                    Duration::from_secs(10),
                    |e| ev_name(e) == "reg_state" && e["code"].as_u64() != Some(0),
                )
                .await;
            assert_eq!(r["code"], 200, "REGISTER of {}: {r}", phone.opts.id);
        }
        phone
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// How many events have arrived: events after this mark are new.
    pub fn mark(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// The first event after `mark` that `pred` accepts; panics with `what` after `timeout`
    /// or when the phone has exited.
    pub async fn wait(
        &self,
        mark: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let v = super::wait_in(&self.events, &self.news, mark, what, timeout, |e| {
            pred(e) || ev_name(e) == "exited"
        })
        .await;
        assert!(
            ev_name(&v) != "exited" || pred(&v),
            "phone {} exited while waiting for {what}",
            self.opts.bind
        );
        v
    }

    /// Sends a command line; returns its outcome (`ok`, or the answer of `call`/`rtp`);
    /// panics on an `error`.
    pub async fn cmd(&self, line: &str) -> Value {
        let mark = self.mark();
        {
            let mut w = self.stdin.lock().await;
            w.write_all(format!("{line}\n").as_bytes())
                .await
                .unwrap_or_else(|e| panic!("phone {}: write {line:?}: {e}", self.opts.bind));
            w.flush().await.unwrap();
        }
        let word = line.split_whitespace().next().unwrap_or("").to_string();
        let answer = match word.as_str() {
            "call" => "calling",
            "rtp" => "rtp",
            _ => "ok",
        };
        let v = self
            .wait(
                mark,
                &format!("the phone's answer to `{line}`"),
                Duration::from_secs(10),
                |e| {
                    let n = ev_name(e);
                    n == answer && (answer != "ok" || e["cmd"] == word.as_str())
                        || n == "error" && e["cmd"].as_str() == Some(line.trim())
                },
            )
            .await;
        assert!(
            ev_name(&v) != "error",
            "phone {}: `{line}`: {v}",
            self.opts.bind
        );
        v
    }

    /// Places a call to `uri`; its call id.
    pub async fn call(&self, uri: &str) -> u64 {
        self.cmd(&format!("call {uri}")).await["call"]
            .as_u64()
            .unwrap()
    }

    pub async fn answer(&self, call: u64) {
        self.cmd(&format!("answer {call}")).await;
    }

    pub async fn hangup(&self, call: u64) {
        self.cmd(&format!("hangup {call}")).await;
    }

    /// Puts `call` on hold (re-INVITE sendonly) and waits until the offer is answered: a
    /// re-INVITE of the call (or DTMF) before that is refused by pjsua.
    pub async fn hold(&self, call: u64) {
        self.reinvite(call, "hold", "local_hold").await;
    }

    /// Takes `call` off hold (re-INVITE sendrecv) and waits until the offer is answered.
    pub async fn unhold(&self, call: u64) {
        self.reinvite(call, "unhold", "active").await;
    }

    async fn reinvite(&self, call: u64, cmd: &str, status: &str) {
        let mark = self.mark();
        self.cmd(&format!("{cmd} {call}")).await;
        self.wait(
            mark,
            &format!("call {call} media {status}"),
            Duration::from_secs(10),
            |e| ev_name(e) == "media_state" && e["call"] == call && e["status"] == status,
        )
        .await;
    }

    /// Blind transfer: REFER to `uri`.
    pub async fn xfer(&self, call: u64, uri: &str) {
        self.cmd(&format!("xfer {call} {uri}")).await;
    }

    /// Attended transfer: REFER on `call` to the peer of `dest`, with Replaces.
    pub async fn xfer_replaces(&self, call: u64, dest: u64) {
        self.cmd(&format!("xfer_replaces {call} {dest}")).await;
    }

    /// Deflects an incoming call: 302 with Contact `uri`.
    pub async fn redirect(&self, call: u64, uri: &str) {
        self.cmd(&format!("redirect {call} {uri}")).await;
    }

    /// What to do with incoming calls: `ring`, `answer` or `redirect <uri>`.
    pub async fn auto(&self, mode: &str) {
        self.cmd(&format!("auto {mode}")).await;
    }

    pub async fn dtmf(&self, call: u64, digits: &str) {
        self.cmd(&format!("dtmf {call} {digits}")).await;
    }

    /// RTP packets (received, sent) on the call's audio stream.
    pub async fn rtp(&self, call: u64) -> (u64, u64) {
        let v = self.cmd(&format!("rtp {call}")).await;
        (v["rx"].as_u64().unwrap(), v["tx"].as_u64().unwrap())
    }

    /// The next incoming call after `mark`: its `incoming` event (`call`, `caller_id`,
    /// `headers`...).
    pub async fn wait_incoming(&self, mark: usize, timeout: Duration) -> Value {
        self.wait(mark, "an incoming call", timeout, |e| {
            ev_name(e) == "incoming"
        })
        .await
    }

    /// The first state change of `call` to `state` (CALLING, EARLY, CONNECTING, CONFIRMED,
    /// DISCONNECTED: pjsua2's state texts) after `mark`.
    pub async fn wait_state_since(
        &self,
        mark: usize,
        call: u64,
        state: &str,
        timeout: Duration,
    ) -> Value {
        self.wait(mark, &format!("call {call} {state}"), timeout, |e| {
            ev_name(e) == "call_state" && e["call"] == call && e["state"] == state
        })
        .await
    }

    /// [`Phone::wait_state_since`] over every event so far (call ids are reused: prefer a mark).
    pub async fn wait_state(&self, call: u64, state: &str, timeout: Duration) -> Value {
        self.wait_state_since(0, call, state, timeout).await
    }

    /// Asks the phone to hang up everything and exit, and waits for it (2 s at most, then it
    /// is killed).
    pub async fn quit(mut self) {
        let _ = self.stdin.lock().await.write_all(b"quit\n").await;
        if tokio::time::timeout(Duration::from_secs(2), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The `event` field of a phone event.
pub fn ev_name(e: &Value) -> &str {
    e["event"].as_str().unwrap_or("")
}
