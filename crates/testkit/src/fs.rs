//! The real FreeSWITCH testbed, seen from a test: its connection facts (testbed.env), and an
//! event-socket client that plays the phones (originates loopback calls, transfers them, sets
//! a simulated phone's behaviour) and keeps every event for inspection. Nothing here stands in
//! for FreeSWITCH: a test that cannot reach it fails.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use callpark::pbx::freeswitch::codec::{EslCodec, Frame, Outgoing};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio_util::codec::{Encoder, FramedRead};

use super::REPO;

/// testbed.env of the FreeSWITCH testbed; `CALLPARK_FS_TESTBED_ROOT` from the environment wins.
pub fn fs_env() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        super::read_testbed_env(
            "contrib/testbed/freeswitch/testbed.env",
            "CALLPARK_FS_TESTBED_",
        )
    })
}

pub fn fb(key: &str) -> String {
    fs_env()
        .get(&format!("CALLPARK_FS_TESTBED_{key}"))
        .unwrap_or_else(|| panic!("testbed.env has no CALLPARK_FS_TESTBED_{key}"))
        .clone()
}

pub fn esl_addr() -> String {
    format!("{}:{}", fb("ESL_HOST"), fb("ESL_PORT"))
}

/// FreeSWITCH's log, to see what a channel did.
pub fn fs_log() -> String {
    let p = Path::new(&fb("ROOT")).join("run/log/freeswitch.log");
    std::fs::read_to_string(&p).unwrap_or_default()
}

/// One event as the test saw it: FreeSWITCH's headers, and when it arrived.
#[derive(Debug, Clone)]
pub struct Ev {
    pub h: HashMap<String, String>,
    pub at: Instant,
}

impl Ev {
    pub fn get(&self, k: &str) -> &str {
        self.h.get(k).map(String::as_str).unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.get("Event-Name")
    }
    pub fn uuid(&self) -> &str {
        self.get("Unique-ID")
    }
    pub fn channel(&self) -> &str {
        self.get("Channel-Name")
    }
    /// When FreeSWITCH fired the event (`Event-Date-Timestamp`, microseconds of its clock).
    pub fn stamp_us(&self) -> i64 {
        self.get("Event-Date-Timestamp")
            .parse()
            .unwrap_or_else(|_| panic!("{} without Event-Date-Timestamp", self.name()))
    }
}

type Waiter = oneshot::Sender<Frame>;

/// An event-socket client for tests: `api` commands with their replies, all events kept.
#[derive(Clone)]
pub struct Esl {
    tx: mpsc::UnboundedSender<(Outgoing, Waiter)>,
    events: Arc<std::sync::Mutex<Vec<Ev>>>,
    news: Arc<Notify>,
}

impl Esl {
    /// A client that keeps every event.
    pub async fn connect() -> Esl {
        Esl::connect_for("ALL").await
    }

    /// A client that keeps only these events (`event json <events>`): a long benchmark would
    /// otherwise hold every event of every call.
    pub async fn connect_for(subscribe: &str) -> Esl {
        let addr = esl_addr();
        let s = TcpStream::connect(&addr)
            .await
            .unwrap_or_else(|e| panic!("event socket at {addr}: {e} (is the testbed up?)"));
        s.set_nodelay(true).unwrap();
        let (r, mut w) = s.into_split();
        let mut reader = FramedRead::new(r, EslCodec::default());
        let greet = reader.next().await.unwrap().unwrap();
        assert_eq!(greet.content_type(), "auth/request");
        let mut codec = EslCodec::default();
        let mut buf = BytesMut::new();
        codec
            .encode(
                &Outgoing::new(format!("auth {}", fb("ESL_PASSWORD"))),
                &mut buf,
            )
            .unwrap();
        w.write_all(&buf).await.unwrap();
        let ok = reader.next().await.unwrap().unwrap();
        assert!(ok.reply_text().starts_with("+OK"), "{ok:?}");
        let (tx, mut rx) = mpsc::unbounded_channel::<(Outgoing, Waiter)>();
        let events: Arc<std::sync::Mutex<Vec<Ev>>> = Default::default();
        let news = Arc::new(Notify::new());
        let waiters: Arc<Mutex<std::collections::VecDeque<Waiter>>> = Default::default();
        let w_waiters = waiters.clone();
        tokio::spawn(async move {
            let mut codec = EslCodec::default();
            while let Some((cmd, waiter)) = rx.recv().await {
                let mut buf = BytesMut::new();
                codec.encode(&cmd, &mut buf).unwrap();
                w_waiters.lock().await.push_back(waiter);
                if w.write_all(&buf).await.is_err() {
                    return;
                }
            }
        });
        let (ev2, news2) = (events.clone(), news.clone());
        tokio::spawn(async move {
            while let Some(Ok(f)) = reader.next().await {
                match f.content_type() {
                    "text/event-json" => {
                        let at = Instant::now();
                        let v: Value = serde_json::from_slice(&f.body).unwrap_or(Value::Null);
                        let h = v
                            .as_object()
                            .map(|o| {
                                o.iter()
                                    .map(|(k, v)| {
                                        (k.clone(), v.as_str().unwrap_or_default().to_string())
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        ev2.lock().unwrap().push(Ev { h, at });
                        news2.notify_waiters();
                    }
                    "command/reply" | "api/response" => {
                        if let Some(w) = waiters.lock().await.pop_front() {
                            let _ = w.send(f);
                        }
                    }
                    _ => {}
                }
            }
        });
        let esl = Esl { tx, events, news };
        let r = esl.cmd(&format!("event json {subscribe}")).await;
        assert!(r.starts_with("+OK"), "{r}");
        esl
    }

    async fn send(&self, cmd: Outgoing) -> Frame {
        let (tx, rx) = oneshot::channel();
        self.tx.send((cmd, tx)).expect("event socket client alive");
        tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .expect("event socket reply within 30 s")
            .expect("event socket reply")
    }

    /// A command (not `api`): its Reply-Text.
    pub async fn cmd(&self, line: &str) -> String {
        self.send(Outgoing::new(line))
            .await
            .reply_text()
            .into_owned()
    }

    /// `sendevent <name>` with `headers`: what FreeSWITCH answers (`+OK <uuid>`).
    pub async fn sendevent(&self, name: &str, headers: &[(&str, &str)]) -> String {
        let mut out = Outgoing::new(format!("sendevent {name}"));
        for (k, v) in headers {
            out = out.header(k, *v);
        }
        self.send(out).await.reply_text().into_owned()
    }

    /// `api <line>`: its answer.
    pub async fn api(&self, line: &str) -> String {
        self.send(Outgoing::new(format!("api {line}")))
            .await
            .reply_text()
            .into_owned()
    }

    /// `bgapi <line>`: does not wait for the command to finish.
    pub async fn bgapi(&self, line: &str) -> String {
        self.send(Outgoing::new(format!("bgapi {line}")))
            .await
            .reply_text()
            .into_owned()
    }

    /// How many events have arrived: events after this mark are new.
    pub fn mark(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    pub fn events(&self) -> Vec<Ev> {
        self.events.lock().unwrap().clone()
    }

    /// The events after `mark`.
    pub fn events_since(&self, mark: usize) -> Vec<Ev> {
        self.events.lock().unwrap()[mark..].to_vec()
    }

    /// The first event after `mark` that `pred` accepts.
    pub async fn wait_event(
        &self,
        mark: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Ev) -> bool,
    ) -> Ev {
        super::wait_in(&self.events, &self.news, mark, what, timeout, pred).await
    }

    /// Every channel now: uuid -> row.
    pub async fn channels(&self) -> Vec<Value> {
        let body = self.api("show channels as json").await;
        let v: Value = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
        v["rows"].as_array().cloned().unwrap_or_default()
    }

    pub async fn channel_named(&self, name: &str) -> Option<Value> {
        self.channels()
            .await
            .into_iter()
            .find(|c| c["name"] == name)
    }

    pub async fn exists(&self, uuid: &str) -> bool {
        self.api(&format!("uuid_exists {uuid}")).await.trim() == "true"
    }

    pub async fn getvar(&self, uuid: &str, var: &str) -> String {
        self.api(&format!("uuid_getvar {uuid} {var}"))
            .await
            .trim()
            .to_string()
    }

    /// How a simulated `dev-NAME` phone behaves from now on (answer, noanswer, busy, ...).
    pub async fn set_phone(&self, name: &str, mode: &str) {
        self.api(&format!("hash delete/phone/{name}")).await;
        let r = self.api(&format!("hash insert/phone/{name}/{mode}")).await;
        assert!(r.starts_with("+OK"), "hash insert: {r}");
    }

    /// Hangs up every channel: each test starts clean.
    pub async fn reset(&self) {
        self.api("hupall NORMAL_CLEARING").await;
        super::wait_for(
            "every FreeSWITCH channel gone",
            Duration::from_secs(30),
            || async { self.channels().await.is_empty().then_some(()) },
        )
        .await;
    }

    /// Starts a loopback call into `exten` of the test context and returns at once with the
    /// uuid of its originating half (`<exten>-a`), which parks.
    pub async fn start_call(&self, exten: &str, name: &str, number: &str) -> String {
        let ctx = fb("CONTEXT");
        let a = uuid();
        let r = self
            .bgapi(&format!(
                "originate {{origination_uuid={a},origination_caller_id_name='{name}',origination_caller_id_number={number}}}loopback/{exten}/{ctx} &park()"
            ))
            .await;
        assert!(r.starts_with("+OK"), "originate: {r}");
        a
    }

    /// A loopback call into `exten` of the test context, started in the background; the
    /// originating half parks. Returns the uuid of the half that runs `exten` (`<exten>-b`).
    pub async fn call(&self, exten: &str, name: &str, number: &str) -> String {
        let a = self.start_call(exten, name, number).await;
        // Loopback names each half's peer in `other_loopback_leg_uuid`.
        super::wait_for(
            &format!("the other half of loopback/{exten} ({a})"),
            Duration::from_secs(10),
            || async {
                let b = self.getvar(&a, "other_loopback_leg_uuid").await;
                (b.len() == 36).then_some(b)
            },
        )
        .await
    }
}

/// A call between `dev-<phone>` (the parker's phone) and a caller, which the phone then blind
/// transfers to the park code. Returns the parked channel (the caller's uuid).
pub async fn park_by_transfer(esl: &Esl, phone: &str, name: &str, number: &str) -> String {
    park_by_transfer_to(esl, phone, name, number, "park").await
}

/// [`park_by_transfer`] to any extension: a lot's park code, or an orbit (a directed park).
pub async fn park_by_transfer_to(
    esl: &Esl,
    phone: &str,
    name: &str,
    number: &str,
    exten: &str,
) -> String {
    esl.set_phone(phone, "answer").await;
    let caller = esl.call(&format!("to-dev-{phone}"), name, number).await;
    super::wait_for(
        "the pair to be bridged",
        Duration::from_secs(10),
        || async { (esl.getvar(&caller, "bridge_uuid").await.len() == 36).then_some(()) },
    )
    .await;
    let r = esl
        .api(&format!(
            "uuid_transfer {caller} {exten} XML {}",
            fb("CONTEXT")
        ))
        .await;
    assert!(r.starts_with("+OK"), "transfer: {r}");
    caller
}

/// Another phone dials an orbit; returns the retrieving channel.
pub async fn dial_orbit(esl: &Esl, orbit: &str, name: &str, number: &str) -> String {
    esl.call(orbit, name, number).await
}

/// A fresh uuid for channels the tests create.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    for x in b.iter_mut() {
        *x = rand_byte();
    }
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn rand_byte() -> u8 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ seed;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x & 0xff) as u8
}

/// The testbed must answer; when it does not, `testbed.sh up` is tried once (the test command
/// in README does it before the tests). A testbed that cannot be started fails the test.
pub async fn fs_testbed() -> Esl {
    fs_testbed_for("ALL").await
}

/// [`fs_testbed`] with a client that keeps only the events `subscribe` names
/// ([`Esl::connect_for`]).
pub async fn fs_testbed_for(subscribe: &str) -> Esl {
    let answers = || async {
        tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(esl_addr()))
            .await
            .is_ok_and(|r| r.is_ok())
    };
    if !answers().await {
        static UP: OnceLock<Result<(), String>> = OnceLock::new();
        let r = UP.get_or_init(|| {
            let script = Path::new(REPO).join("contrib/testbed/freeswitch/testbed.sh");
            match Command::new("bash").arg(&script).arg("up").output() {
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
                "the FreeSWITCH testbed is not reachable at {}: {e}",
                esl_addr()
            );
        }
    }
    let esl = Esl::connect_for(subscribe).await;
    esl.reset().await;
    esl
}

/// Puts `text` in place as the testbed's callpark include and reloads the dialplan, when it is
/// not already the one in place.
pub async fn install_include(esl: &Esl, text: &str) {
    let path = Path::new(&fb("ROOT")).join("run/conf/dialplan/callpark/callpark.xml");
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text) {
        return;
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r = esl.api("reloadxml").await;
    assert!(r.contains("+OK"), "reloadxml: {r}");
}

/// The shipped include (for contrib/callpark.example.toml), which `testbed.sh up` installs.
pub fn shipped_include() -> String {
    let p = Path::new(REPO).join("dialplan/freeswitch/callpark.xml");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `callpark dialplan freeswitch` for a configuration file (pool pbx-b).
pub fn generated_include(config: &Path) -> String {
    super::generated_include(config, "freeswitch", "pbx-b")
}
