//! The FreeSWITCH testbed (contrib/testbed/freeswitch) behind [`Testbed`]: phones are loopback
//! channels into the test context, a park "from a call" is `uuid_transfer` of the caller as a
//! REFER does it, and what the PBX did is read in its events and its log.

use std::time::Duration;

use serde_json::Value;

use super::{Chan, Leg, Music, Side, Testbed, leak};
use crate::fs::{self, Esl, fb, fs_log, fs_testbed, fs_testbed_for};
use crate::phone::PhoneOpts;
use crate::*;

const S: fn(u64) -> Duration = Duration::from_secs;

/// The FreeSWITCH testbed (contrib/testbed/freeswitch), held for one test.
pub struct FreeswitchTestbed {
    pub esl: Esl,
    /// None when another testbed of the same test holds the turn ([`FreeswitchTestbed::beside`]).
    _turn: Option<Turn>,
}

impl FreeswitchTestbed {
    /// Waits for the testbeds' turn, then brings the testbed up when it is not, and clean.
    pub async fn take() -> FreeswitchTestbed {
        let turn = exclusive().await;
        FreeswitchTestbed {
            esl: fs_testbed().await,
            _turn: Some(turn),
        }
    }

    /// The testbed for a test that holds the testbeds' turn already (through
    /// [`AsteriskTestbed::take`](super::AsteriskTestbed::take)): both PBXes in one scenario.
    pub async fn beside(_asterisk: &super::AsteriskTestbed) -> FreeswitchTestbed {
        FreeswitchTestbed {
            esl: fs_testbed().await,
            _turn: None,
        }
    }

    /// [`FreeswitchTestbed::take`] with an event-socket client that keeps only the replies
    /// of background jobs: a benchmark's thousands of calls would fill one that keeps every
    /// event. What reads events (the marks, the lamps, the legs, the music) sees none.
    pub async fn take_lean() -> FreeswitchTestbed {
        let turn = exclusive().await;
        FreeswitchTestbed {
            esl: fs_testbed_for("BACKGROUND_JOB").await,
            _turn: Some(turn),
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

    fn sip_uri(&self, exten: &str) -> String {
        format!("sip:{exten}@{}", fb("SIP_BIND"))
    }

    fn alice_opts(&self) -> PhoneOpts {
        PhoneOpts::new(
            &self.sip_alice_contact(),
            &format!("\"Alice\" <{}>", self.sip_uri("alice")),
        )
        .registering(&format!("sip:{}", fb("SIP_BIND")), "alice", "alice")
    }

    fn alice_dial(&self) -> String {
        // The directory's domain is the testbed's address.
        let host = fb("SIP_BIND");
        format!("user/alice@{}", host.split(':').next().unwrap_or(&host))
    }

    /// The registered user, by its contact or by the directory.
    fn is_alice(&self, endpoint: Option<&str>) -> bool {
        endpoint.is_some_and(|e| {
            e.starts_with("sofia/internal/alice@")
                || e.starts_with("sofia/internal/alice%")
                || e.starts_with("user/alice@")
        })
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

    async fn call_alice(&self, name: &str, number: &str) {
        self.call_alice_from("park()", name, number).await;
    }

    async fn call_alice_echo(&self, name: &str, number: &str) {
        self.call_alice_from("echo()", name, number).await;
    }

    async fn redirect(&self, ch: &Chan, exten: &str) {
        let r = self
            .esl
            .api(&format!(
                "uuid_transfer {} {exten} XML {}",
                ch.id,
                fb("CONTEXT")
            ))
            .await;
        assert!(r.starts_with("+OK"), "uuid_transfer: {r}");
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

    async fn channels(&self) -> Vec<(String, String)> {
        self.esl
            .channels()
            .await
            .into_iter()
            .filter_map(|c| {
                Some((
                    c["uuid"].as_str()?.to_string(),
                    c["name"].as_str().unwrap_or("").to_string(),
                ))
            })
            .collect()
    }

    async fn exists(&self, id: &str) -> bool {
        self.esl.exists(id).await
    }

    async fn bridged(&self, a: &str, b: &str) -> bool {
        self.esl.getvar(a, "bridge_uuid").await == b || self.esl.getvar(b, "bridge_uuid").await == a
    }

    async fn phone_bridged(&self) -> bool {
        for (id, name) in self.channels().await {
            if self.is_alice(Some(&name)) {
                let peer = self.esl.getvar(&id, "bridge_uuid").await;
                if !peer.is_empty() && peer != "_undef_" && self.esl.exists(&peer).await {
                    return true;
                }
            }
        }
        false
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

impl FreeswitchTestbed {
    /// alice's caller: `loopback/to-user-alice-b`, whose other half runs `app`.
    async fn call_alice_from(&self, app: &str, name: &str, number: &str) {
        let r = self
            .esl
            .bgapi(&format!(
                "originate {{origination_caller_id_name={name},origination_caller_id_number={number}}}loopback/to-user-alice/{} &{app}",
                fb("CONTEXT")
            ))
            .await;
        assert!(r.contains("+OK"), "originate: {r}");
    }
}
