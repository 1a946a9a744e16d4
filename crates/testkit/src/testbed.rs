//! Either testbed behind one interface, so that an end-to-end scenario is written once and run
//! on both PBXes: the phones of the testbed's dialplan (a caller and a parker, a retriever, the
//! park code dialled directly), what the PBX shows of its channels and bridges (gone, bridged,
//! on hold music, a prompt heard), the busy lamps, and the connection callpark keeps to it.
//!
//! Phones are Local channels into `phones` on Asterisk and loopback channels into the test
//! context on FreeSWITCH; a park "from a call" is the PBX's own blind transfer (AMI
//! BlindTransfer of a bridged pair, `uuid_transfer` of the caller as a REFER does it).

use std::future::Future;
use std::time::Duration;

use serde_json::Value;

use super::fs::{self, Esl, fb, fs_log, fs_testbed};
use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;

/// A channel of the PBX as a scenario holds it: its id, and its name on Asterisk (whose log
/// speaks of channels by name; FreeSWITCH's speaks of them by uuid, so there it is the id).
#[derive(Clone, Debug)]
pub struct Chan {
    pub id: String,
    pub name: String,
}

/// A leg callpark originated (a ringback, a fallback), as the PBX shows it.
#[derive(Clone, Debug)]
pub struct Leg {
    /// The channel name: the endpoint callpark dialled.
    pub name: String,
    pub caller_name: String,
    pub caller_number: String,
}

/// The hold music a scenario expects on a parked call.
#[derive(Clone, Copy)]
pub enum Music<'a> {
    /// The PBX's default class.
    Default,
    /// A class of the PBX (Asterisk's musiconhold.conf, a FreeSWITCH local_stream).
    Class(&'a str),
}

/// The PBX under a testbed, for the few checks that only mean something on one of them.
pub enum Side<'a> {
    Asterisk(&'a Ari, &'a Ami),
    Freeswitch(&'a Esl),
}

/// What a scenario does to and reads from a PBX testbed. Callpark itself (start, kill, freeze,
/// spawn, its store and log) is [`Callpark`]; [`Testbed::setup`] is its configuration here.
pub trait Testbed {
    /// `asterisk` or `freeswitch`.
    fn name(&self) -> &'static str;
    fn side(&self) -> Side<'_>;

    /// A configuration with this PBX's pool (every orbit of the testbed's dialplan) and `park`.
    fn setup(&self, park: &str) -> Setup;
    /// The pool's orbits limited to the `first`-th ..= `last`-th.
    fn limit_orbits(&self, setup: &mut Setup, first: u32, last: u32);
    /// The `n`-th orbit number: 701... on Asterisk, 601... on FreeSWITCH.
    fn orbit(&self, n: u32) -> String;
    /// The pattern a policy names the testbed's `dev-` phones (parkers) by.
    fn phones_pattern(&self) -> &'static str;
    /// The endpoint callpark records as the parker for phone `dev-<phone>`.
    fn parker(&self, phone: &str) -> String;
    /// An `exten:` destination for an extension of the phones' context (`answer`, `noanswer`).
    fn exten(&self, exten: &str) -> String;
    /// Whether `name`, a leg callpark originated, dials the testbed's extension `exten`
    /// (`to-dev-alice` for alice's phone, `answer`).
    fn dials(&self, name: &str, exten: &str) -> bool;
    /// The pool's `sip_endpoint`, through which SIP URIs are dialled: the testbed's endpoint
    /// `alice` on Asterisk, the sofia profile `internal` on FreeSWITCH.
    fn sip_endpoint(&self, setup: &mut Setup);
    /// The contact of the tests' own SIP phone `alice`.
    fn sip_alice_contact(&self) -> String;
    /// The address callpark connects to, and the configuration going through `addr` instead.
    fn pbx_addr(&self) -> String;
    fn connect_through(&self, setup: &mut Setup, port: u16);
    /// How callpark's log names this connection (`ARI`, `FreeSWITCH`).
    fn link(&self) -> &'static str;

    /// A position in what the PBX reported so far; checks after it look only at what follows.
    fn mark(&self) -> usize;

    /// Every channel hung up: a scenario's next step starts clean.
    fn reset(&self) -> impl Future<Output = ()>;
    /// A call between `dev-<phone>` and a caller (`name` <`number`>), which the phone then
    /// blind-transfers to the park code. Returns the caller, the channel parked.
    fn park_by_transfer(&self, phone: &str, name: &str, number: &str)
    -> impl Future<Output = Chan>;
    /// Another phone dials `orbit`; returns the retrieving channel.
    fn dial_orbit(&self, orbit: &str, name: &str, number: &str) -> impl Future<Output = Chan>;
    /// A phone dials the park code itself; returns its channel in callpark's hands.
    fn dial_park(&self, name: &str, number: &str) -> impl Future<Output = Chan>;
    /// How the simulated phone `dev-<phone>` behaves from now on: `answer`, `noanswer`,
    /// `busy`, `answerafter3`.
    fn set_phone(&self, phone: &str, mode: &str) -> impl Future<Output = ()>;
    fn hang_up(&self, id: &str) -> impl Future<Output = ()>;
    fn exists(&self, id: &str) -> impl Future<Output = bool>;
    /// Whether `a` and `b` are bridged to each other now.
    fn bridged(&self, a: &str, b: &str) -> impl Future<Output = bool>;
    /// Waits (15 s) for the leg `id` callpark originates, created after `mark`.
    fn wait_leg(&self, mark: usize, id: &str) -> impl Future<Output = Leg>;
    /// The leg `id` rings, not answered yet.
    fn ringing(&self, id: &str) -> impl Future<Output = bool>;
    /// The leg `id` is answered and waits in callpark's hands.
    fn answered_waiting(&self, id: &str) -> impl Future<Output = bool>;
    /// The busy lamp of `orbit` as the PBX holds it (Asterisk), or as callpark last set it
    /// since `mark` (FreeSWITCH keeps no presence of its own): `Some(lit)`.
    fn lamp(&self, mark: usize, orbit: &str) -> impl Future<Output = Option<bool>>;
    /// Whether hold music of that kind started on `ch` since `mark`.
    fn music_started(&self, mark: usize, ch: &Chan, music: Music<'_>)
    -> impl Future<Output = bool>;
    /// Whether any playback of hold music started on `ch` since `mark`.
    fn any_music(&self, mark: usize, ch: &Chan) -> impl Future<Output = bool>;
    /// Whether `ch` heard that the orbit it dialled is empty.
    fn heard_orbit_empty(&self, ch: &Chan) -> bool;
    /// Whether `ch` heard that parking failed.
    fn heard_parking_failed(&self, ch: &Chan) -> bool;

    /// Waits (10 s) until `a` and `b` are bridged.
    fn wait_bridged(&self, what: &str, a: &str, b: &str) -> impl Future<Output = ()> {
        async move {
            wait_for(what, S(10), || async {
                self.bridged(a, b).await.then_some(())
            })
            .await
        }
    }

    /// Waits until the channel `id` is gone.
    fn wait_gone(&self, what: &str, id: &str, timeout: Duration) -> impl Future<Output = ()> {
        async move {
            wait_for(what, timeout, || async {
                (!self.exists(id).await).then_some(())
            })
            .await
        }
    }

    /// Waits until the channel `id` is there.
    fn wait_there(&self, what: &str, id: &str, timeout: Duration) -> impl Future<Output = ()> {
        async move {
            wait_for(what, timeout, || async {
                self.exists(id).await.then_some(())
            })
            .await
        }
    }

    /// Waits (5 s) until the busy lamp of `orbit` is lit (or out), as set after `mark`.
    fn wait_lamp(&self, mark: usize, orbit: &str, lit: bool) -> impl Future<Output = ()> {
        async move {
            let what = format!(
                "busy lamp of {orbit} {}",
                if lit { "in use" } else { "off" }
            );
            wait_for(&what, S(5), || async {
                (self.lamp(mark, orbit).await == Some(lit)).then_some(())
            })
            .await
        }
    }

    /// Waits (5 s) until hold music of that kind is on `ch`, started after `mark`.
    fn wait_music(&self, mark: usize, ch: &Chan, music: Music<'_>) -> impl Future<Output = ()> {
        async move {
            let what = match music {
                Music::Default => format!("music on hold on {}", ch.name),
                Music::Class(c) => format!("music on hold of class {c} on {}", ch.name),
            };
            wait_for(&what, S(5), || async {
                self.music_started(mark, ch, music).await.then_some(())
            })
            .await
        }
    }
}

/// The id callpark gives a leg it originates for the parked channel `parked` (`rb1`, `fb`,
/// `ret`): the core's own derivation.
pub fn leg_id(parked: &str, tag: &str) -> String {
    callpark::park::ChannelId::new(parked).leg(tag).to_string()
}

/// The log kinds of a channel, waiting until the last one is `last`.
pub async fn kinds_until(
    cp: &Callpark,
    channel: &str,
    last: &str,
    timeout: Duration,
) -> Vec<String> {
    cp.wait_log(channel, last, timeout).await;
    cp.kinds_of(channel).await
}

// ----- Asterisk ----------------------------------------------------------------------------

/// The Asterisk testbed (contrib/testbed/asterisk), held for one test.
pub struct AsteriskTestbed {
    pub ari: Ari,
    pub ami: Ami,
    _turn: Turn,
}

impl AsteriskTestbed {
    /// Waits for the testbeds' turn, then brings the testbed up when it is not, and clean.
    pub async fn take() -> AsteriskTestbed {
        let turn = exclusive().await;
        let (ari, ami) = testbed().await;
        AsteriskTestbed {
            ari,
            ami,
            _turn: turn,
        }
    }

    async fn chan(&self, id: &str) -> Option<Value> {
        self.ari.channel(id).await
    }
}

fn chan_of(v: &Value) -> Chan {
    Chan {
        id: v["id"].as_str().expect("channel id").to_string(),
        name: v["name"].as_str().expect("channel name").to_string(),
    }
}

impl Testbed for AsteriskTestbed {
    fn name(&self) -> &'static str {
        "asterisk"
    }

    fn side(&self) -> Side<'_> {
        Side::Asterisk(&self.ari, &self.ami)
    }

    fn setup(&self, park: &str) -> Setup {
        Setup {
            park: park.into(),
            ..Setup::default()
        }
    }

    fn limit_orbits(&self, setup: &mut Setup, first: u32, last: u32) {
        setup.ranges = vec![(leak(self.orbit(first)), leak(self.orbit(last)))];
    }

    fn orbit(&self, n: u32) -> String {
        format!("{}", 700 + n)
    }

    fn phones_pattern(&self) -> &'static str {
        "Local/to-dev-.*"
    }

    fn parker(&self, phone: &str) -> String {
        format!("Local/to-dev-{phone}@calls")
    }

    fn exten(&self, exten: &str) -> String {
        format!("exten:{exten}@phones")
    }

    fn dials(&self, name: &str, exten: &str) -> bool {
        let context = if exten.starts_with("to-") {
            "calls"
        } else {
            "phones"
        };
        name.starts_with(&format!("Local/{exten}@{context}-"))
    }

    fn sip_endpoint(&self, setup: &mut Setup) {
        setup.pbx_extra = "sip_endpoint = \"alice\"";
    }

    fn sip_alice_contact(&self) -> String {
        tb("SIP_ALICE_CONTACT")
    }

    fn pbx_addr(&self) -> String {
        tb("ARI_URL").trim_start_matches("http://").to_string()
    }

    fn connect_through(&self, setup: &mut Setup, port: u16) {
        setup.ari_url = Some(format!("http://127.0.0.1:{port}"));
    }

    fn link(&self) -> &'static str {
        "ARI"
    }

    fn mark(&self) -> usize {
        0
    }

    async fn reset(&self) {
        self.ari.reset().await;
    }

    async fn park_by_transfer(&self, phone: &str, name: &str, number: &str) -> Chan {
        let cid = format!("\"{name}\" <{number}>");
        let (caller, _) = park_by_transfer(&self.ari, &self.ami, phone, &cid).await;
        chan_of(&caller)
    }

    async fn dial_orbit(&self, orbit: &str, name: &str, number: &str) -> Chan {
        let cid = format!("\"{name}\" <{number}>");
        chan_of(&dial_orbit(&self.ari, orbit, &cid).await)
    }

    async fn dial_park(&self, name: &str, number: &str) -> Chan {
        let cid = format!("\"{name}\" <{number}>");
        let (_, two) = self
            .ari
            .originate_local_ids("park", "park-in", ("answer", "phones"), &cid)
            .await;
        let v = wait_for("the caller of the park code", S(5), || async {
            self.chan(&two).await
        })
        .await;
        chan_of(&v)
    }

    async fn set_phone(&self, phone: &str, mode: &str) {
        self.ami.set_phone(phone, mode).await;
    }

    async fn hang_up(&self, id: &str) {
        self.ari.delete(&format!("/channels/{id}")).await;
    }

    async fn exists(&self, id: &str) -> bool {
        self.ari.channel_exists(id).await
    }

    /// In one bridge of their own: callpark's bridge holds the two sides and nothing else.
    async fn bridged(&self, a: &str, b: &str) -> bool {
        self.ari
            .bridge_with(a, b)
            .await
            .is_some_and(|br| br["channels"].as_array().map(Vec::len) == Some(2))
    }

    async fn wait_leg(&self, _mark: usize, id: &str) -> Leg {
        let c = wait_for(&format!("the leg {id}"), S(15), || async {
            self.chan(id).await
        })
        .await;
        Leg {
            name: c["name"].as_str().unwrap_or("").to_string(),
            caller_name: c["caller"]["name"].as_str().unwrap_or("").to_string(),
            caller_number: c["caller"]["number"].as_str().unwrap_or("").to_string(),
        }
    }

    async fn ringing(&self, id: &str) -> bool {
        self.chan(id).await.is_some_and(|c| c["state"] != "Up")
    }

    async fn answered_waiting(&self, id: &str) -> bool {
        self.chan(id)
            .await
            .is_some_and(|c| c["state"] == "Up" && c["dialplan"]["app_name"] == "Stasis")
    }

    async fn lamp(&self, _mark: usize, orbit: &str) -> Option<bool> {
        match self
            .ari
            .device_state(&format!("Stasis:callpark-{orbit}"))
            .await
            .as_str()
        {
            "INUSE" => Some(true),
            "NOT_INUSE" => Some(false),
            _ => None,
        }
    }

    async fn music_started(&self, _mark: usize, ch: &Chan, music: Music<'_>) -> bool {
        let class = match music {
            Music::Default => "default",
            Music::Class(c) => c,
        };
        asterisk_log().contains(&format!(
            "Started music on hold, class '{class}', on channel '{}'",
            ch.name
        ))
    }

    async fn any_music(&self, _mark: usize, ch: &Chan) -> bool {
        asterisk_log().contains(&format!("on channel '{}'", ch.name))
    }

    fn heard_orbit_empty(&self, ch: &Chan) -> bool {
        asterisk_log().contains(&format!("<{}> Playing 'pbx-invalidpark", ch.name))
    }

    fn heard_parking_failed(&self, ch: &Chan) -> bool {
        asterisk_log().contains(&format!("<{}> Playing 'pbx-parkingfailed", ch.name))
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

// ----- FreeSWITCH --------------------------------------------------------------------------

/// The FreeSWITCH testbed (contrib/testbed/freeswitch), held for one test.
pub struct FreeswitchTestbed {
    pub esl: Esl,
    _turn: Turn,
}

impl FreeswitchTestbed {
    /// Waits for the testbeds' turn, then brings the testbed up when it is not, and clean.
    pub async fn take() -> FreeswitchTestbed {
        let turn = exclusive().await;
        FreeswitchTestbed {
            esl: fs_testbed().await,
            _turn: turn,
        }
    }

    /// The channel's row in `show channels`.
    pub async fn row(&self, uuid: &str) -> Option<Value> {
        self.esl
            .channels()
            .await
            .into_iter()
            .find(|c| c["uuid"] == uuid)
    }

    fn playback_since(&self, mark: usize, uuid: &str, media: &str) -> bool {
        self.esl.events_since(mark).iter().any(|e| {
            e.name() == "PLAYBACK_START"
                && e.uuid() == uuid
                && e.get("Playback-File-Path").contains(media)
        })
    }

    fn heard(&self, uuid: &str, prompt: &str) -> bool {
        fs_log()
            .lines()
            .any(|l| l.starts_with(uuid) && l.contains(prompt))
    }
}

impl Testbed for FreeswitchTestbed {
    fn name(&self) -> &'static str {
        "freeswitch"
    }

    fn side(&self) -> Side<'_> {
        Side::Freeswitch(&self.esl)
    }

    fn setup(&self, park: &str) -> Setup {
        Setup {
            park: park.into(),
            ..Setup::freeswitch()
        }
    }

    fn limit_orbits(&self, setup: &mut Setup, first: u32, last: u32) {
        setup.fs_ranges = vec![(leak(self.orbit(first)), leak(self.orbit(last)))];
    }

    fn orbit(&self, n: u32) -> String {
        format!("{}", 600 + n)
    }

    fn phones_pattern(&self) -> &'static str {
        "loopback/dev-.*"
    }

    fn parker(&self, phone: &str) -> String {
        format!("loopback/dev-{phone}/{}", fb("CONTEXT"))
    }

    fn exten(&self, exten: &str) -> String {
        format!("exten:{exten}@{}", fb("CONTEXT"))
    }

    /// The originating half of the loopback call into `exten`.
    fn dials(&self, name: &str, exten: &str) -> bool {
        let exten = exten.strip_prefix("to-").unwrap_or(exten);
        name == format!("loopback/{exten}-a")
    }

    fn sip_endpoint(&self, setup: &mut Setup) {
        setup.fs_extra = "sip_endpoint = \"internal\"\n";
    }

    fn sip_alice_contact(&self) -> String {
        fb("SIP_ALICE_CONTACT")
    }

    fn pbx_addr(&self) -> String {
        fs::esl_addr()
    }

    fn connect_through(&self, setup: &mut Setup, port: u16) {
        setup.esl_addr = Some(format!("127.0.0.1:{port}"));
    }

    fn link(&self) -> &'static str {
        "FreeSWITCH"
    }

    fn mark(&self) -> usize {
        self.esl.mark()
    }

    async fn reset(&self) {
        self.esl.reset().await;
    }

    async fn park_by_transfer(&self, phone: &str, name: &str, number: &str) -> Chan {
        let id = fs::park_by_transfer(&self.esl, phone, name, number).await;
        Chan {
            name: id.clone(),
            id,
        }
    }

    async fn dial_orbit(&self, orbit: &str, name: &str, number: &str) -> Chan {
        let id = fs::dial_orbit(&self.esl, orbit, name, number).await;
        Chan {
            name: id.clone(),
            id,
        }
    }

    async fn dial_park(&self, name: &str, number: &str) -> Chan {
        let id = self.esl.call("park", name, number).await;
        Chan {
            name: id.clone(),
            id,
        }
    }

    async fn set_phone(&self, phone: &str, mode: &str) {
        self.esl.set_phone(phone, mode).await;
    }

    async fn hang_up(&self, id: &str) {
        self.esl.api(&format!("uuid_kill {id}")).await;
    }

    async fn exists(&self, id: &str) -> bool {
        self.esl.exists(id).await
    }

    async fn bridged(&self, a: &str, b: &str) -> bool {
        self.esl.getvar(a, "bridge_uuid").await == b || self.esl.getvar(b, "bridge_uuid").await == a
    }

    /// From its CHANNEL_CREATE: the caller id it was originated with.
    async fn wait_leg(&self, mark: usize, id: &str) -> Leg {
        let created = self
            .esl
            .wait_event(mark, &format!("the leg {id}"), S(15), |e| {
                e.name() == "CHANNEL_CREATE" && e.uuid() == id
            })
            .await;
        Leg {
            name: created.channel().to_string(),
            caller_name: created.get("Caller-Caller-ID-Name").to_string(),
            caller_number: created.get("Caller-Caller-ID-Number").to_string(),
        }
    }

    async fn ringing(&self, id: &str) -> bool {
        self.row(id).await.is_some()
    }

    /// Parked by its originate until callpark bridges it.
    async fn answered_waiting(&self, id: &str) -> bool {
        self.row(id)
            .await
            .is_some_and(|r| r["application"] == "park")
    }

    async fn lamp(&self, mark: usize, orbit: &str) -> Option<bool> {
        let from = format!("{orbit}@127.0.0.1");
        self.esl
            .events_since(mark)
            .iter()
            .rfind(|e| {
                e.name() == "PRESENCE_IN"
                    && e.get("unique-id") == format!("callpark-{orbit}")
                    && e.get("from") == from
            })
            .map(|e| e.get("answer-state") == "confirmed")
    }

    async fn music_started(&self, mark: usize, ch: &Chan, music: Music<'_>) -> bool {
        let media = match music {
            Music::Default => "moh".to_string(),
            Music::Class(c) => format!("local_stream://{c}"),
        };
        self.playback_since(mark, &ch.id, &media)
    }

    async fn any_music(&self, mark: usize, ch: &Chan) -> bool {
        self.playback_since(mark, &ch.id, "")
    }

    fn heard_orbit_empty(&self, ch: &Chan) -> bool {
        self.heard(&ch.id, "ivr-that_was_an_invalid_entry")
    }

    fn heard_parking_failed(&self, ch: &Chan) -> bool {
        self.heard(&ch.id, "ivr-call_cannot_be_completed_as_dialed")
    }
}
