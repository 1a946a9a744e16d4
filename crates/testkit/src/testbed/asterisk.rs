//! The Asterisk testbed (contrib/testbed/asterisk) behind [`Testbed`]: phones are Local
//! channels into `phones`, a park "from a call" is AMI's BlindTransfer of a bridged pair, and
//! what a channel heard is read in Asterisk's verbose log.

use std::time::Duration;

use serde_json::Value;

use super::{Chan, Leg, Music, Side, Testbed, leak};
use crate::phone::PhoneOpts;
use crate::*;

const S: fn(u64) -> Duration = Duration::from_secs;

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

    /// [`AsteriskTestbed::take`] with an AMI client for actions only: a benchmark's
    /// thousands of calls would fill one that hears call events with every event of every
    /// call. What waits on AMI events ([`Side::Asterisk`]) hears none.
    pub async fn take_lean() -> AsteriskTestbed {
        let turn = exclusive().await;
        let (ari, _) = testbed().await;
        AsteriskTestbed {
            ari,
            ami: Ami::connect_for_actions().await,
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

    fn sip_uri(&self, exten: &str) -> String {
        format!("sip:{exten}@{}", tb("SIP_BIND"))
    }

    fn alice_opts(&self) -> PhoneOpts {
        PhoneOpts::new(
            &self.sip_alice_contact(),
            &format!("\"Alice\" <{}>", self.sip_uri("alice")),
        )
    }

    fn is_alice(&self, endpoint: Option<&str>) -> bool {
        endpoint == Some("PJSIP/alice")
    }

    fn alice_dial(&self) -> String {
        "PJSIP/alice".into()
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

    async fn call_alice(&self, name: &str, number: &str) {
        self.call_alice_from("answer", name, number).await;
    }

    async fn call_alice_echo(&self, name: &str, number: &str) {
        self.call_alice_from("echo", name, number).await;
    }

    async fn redirect(&self, ch: &Chan, exten: &str) {
        let r = self
            .ami
            .action(
                "Redirect",
                &[
                    ("Channel", ch.name.as_str()),
                    ("Context", "park-in"),
                    ("Exten", exten),
                    ("Priority", "1"),
                ],
            )
            .await;
        assert_eq!(
            r.get("Response").map(String::as_str),
            Some("Success"),
            "{r:?}"
        );
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

    async fn channels(&self) -> Vec<(String, String)> {
        self.ari
            .channels()
            .await
            .into_iter()
            .filter_map(|c| {
                Some((
                    c["id"].as_str()?.to_string(),
                    c["name"].as_str().unwrap_or("").to_string(),
                ))
            })
            .collect()
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

    async fn phone_bridged(&self) -> bool {
        let alice: Vec<String> = self
            .channels()
            .await
            .into_iter()
            .filter(|(_, name)| name.starts_with("PJSIP/alice-"))
            .map(|(id, _)| id)
            .collect();
        self.ari.bridges().await.iter().any(|br| {
            let chs: Vec<&str> = br["channels"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            chs.len() >= 2 && chs.iter().any(|c| alice.iter().any(|a| a == c))
        })
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

impl AsteriskTestbed {
    /// alice's caller: `Local/to-sip-alice@calls`, whose other half runs `far@phones`.
    async fn call_alice_from(&self, far: &str, name: &str, number: &str) {
        self.ari
            .post(
                "/channels",
                &[
                    ("endpoint", "Local/to-sip-alice@calls"),
                    ("context", "phones"),
                    ("extension", far),
                    ("priority", "1"),
                    ("callerId", &format!("\"{name}\" <{number}>")),
                    ("timeout", "30"),
                ],
            )
            .await;
    }
}
