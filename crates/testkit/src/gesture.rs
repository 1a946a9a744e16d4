//! Both testbeds as a phone sees them, so that a scenario is written once for both PBXes: the
//! SIP address of an extension, the orbit numbers, the phone `alice` (PJSIP's pjsua2), a caller
//! that calls it, the busy lamp, and the steps of an attended transfer.

use std::time::Duration;

use serde_json::Value;

use super::fs::{Esl, fb, fs_testbed};
use super::phone::{Phone, PhoneOpts};
use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;
pub const CALLER_NUMBER: &str = "5551234";

/// One of the two testbeds, as the phone and the test see it.
pub enum Pbx {
    Asterisk(Ari),
    Freeswitch(Esl),
}

impl Pbx {
    pub async fn asterisk() -> Pbx {
        let (ari, _ami) = testbed().await;
        Pbx::Asterisk(ari)
    }

    pub async fn freeswitch() -> Pbx {
        Pbx::Freeswitch(fs_testbed().await)
    }

    pub fn setup(&self, park: &str) -> Setup {
        let mut s = match self {
            Pbx::Asterisk(_) => Setup {
                ranges: vec![("701", "709")],
                ..Setup::default()
            },
            Pbx::Freeswitch(_) => Setup {
                fs_ranges: vec![("601", "609")],
                ..Setup::freeswitch()
            },
        };
        s.park = park.into();
        s
    }

    /// The SIP address of an extension on this PBX.
    pub fn uri(&self, exten: &str) -> String {
        match self {
            Pbx::Asterisk(_) => format!("sip:{exten}@{}", tb("SIP_BIND")),
            Pbx::Freeswitch(_) => format!("sip:{exten}@{}", fb("SIP_BIND")),
        }
    }

    /// The orbit numbers of the pool: 701... on Asterisk, 601... on FreeSWITCH.
    pub fn orbit(&self, n: u32) -> String {
        match self {
            Pbx::Asterisk(_) => format!("{}", 700 + n),
            Pbx::Freeswitch(_) => format!("{}", 600 + n),
        }
    }

    /// The phone `alice` of this PBX: Asterisk's endpoint has a static contact, FreeSWITCH's
    /// directory user registers.
    pub async fn alice(&self) -> Phone {
        let log = std::env::temp_dir().join(format!(
            "callpark-phone-{}-{}.log",
            self.name(),
            std::process::id()
        ));
        let opts = match self {
            Pbx::Asterisk(_) => PhoneOpts::new(
                &tb("SIP_ALICE_CONTACT"),
                &format!("\"Alice\" <sip:alice@{}>", tb("SIP_BIND")),
            ),
            Pbx::Freeswitch(_) => PhoneOpts::new(
                &fb("SIP_ALICE_CONTACT"),
                &format!("\"Alice\" <sip:alice@{}>", fb("SIP_BIND")),
            )
            .registering(&format!("sip:{}", fb("SIP_BIND")), "alice", "alice"),
        };
        Phone::start(PhoneOpts {
            log: Some(log),
            ..opts
        })
        .await
    }

    pub fn name(&self) -> &'static str {
        match self {
            Pbx::Asterisk(_) => "asterisk",
            Pbx::Freeswitch(_) => "freeswitch",
        }
    }

    /// Carol calls alice's phone: the PBX's own channel, bridged to the phone once it answers.
    pub async fn carol_calls_alice(&self) {
        match self {
            Pbx::Asterisk(ari) => {
                ari.post(
                    "/channels",
                    &[
                        ("endpoint", "Local/to-sip-alice@calls"),
                        ("context", "phones"),
                        ("extension", "answer"),
                        ("priority", "1"),
                        ("callerId", &format!("\"Carol\" <{CALLER_NUMBER}>")),
                        ("timeout", "30"),
                    ],
                )
                .await;
            }
            Pbx::Freeswitch(esl) => {
                let r = esl
                    .bgapi(&format!(
                        "originate {{origination_caller_id_name=Carol,origination_caller_id_number={CALLER_NUMBER}}}loopback/to-user-alice/{} &park()",
                        fb("CONTEXT")
                    ))
                    .await;
                assert!(r.contains("+OK"), "originate: {r}");
            }
        }
    }

    /// The endpoint callpark rings back for alice's phone.
    pub fn is_alice(&self, endpoint: Option<&str>) -> bool {
        match self {
            Pbx::Asterisk(_) => endpoint == Some("PJSIP/alice"),
            Pbx::Freeswitch(_) => endpoint.is_some_and(|e| {
                e.starts_with("sofia/internal/alice@")
                    || e.starts_with("sofia/internal/alice%")
                    || e.starts_with("user/alice@")
            }),
        }
    }

    /// Waits until the busy lamp of `orbit` is lit (or out); true when it got there.
    pub async fn lamp_lit(&self, cp: &Callpark, orbit: &str) -> bool {
        self.lamp_is(cp, orbit, true).await
    }

    pub async fn lamp_is(&self, cp: &Callpark, orbit: &str, lit: bool) -> bool {
        let end = std::time::Instant::now() + S(5);
        loop {
            if self.lamp_now(cp, orbit).await == lit {
                return true;
            }
            if std::time::Instant::now() > end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The busy lamp of `orbit` as the PBX holds it now: lit or not.
    pub async fn lamp_now(&self, cp: &Callpark, orbit: &str) -> bool {
        match self {
            Pbx::Asterisk(ari) => {
                ari.device_state(&format!("Stasis:callpark-{orbit}")).await == "INUSE"
            }
            // FreeSWITCH keeps no presence: the last busy-lamp event callpark sent for it.
            Pbx::Freeswitch(esl) => {
                let _ = cp;
                esl.events()
                    .iter()
                    .rfind(|e| {
                        e.name() == "PRESENCE_IN"
                            && e.get("unique-id") == format!("callpark-{orbit}")
                    })
                    .is_some_and(|e| e.get("answer-state") == "confirmed")
            }
        }
    }
}

/// The call parked from Carol, once there is one.
pub async fn carols_park(cp: &Callpark) -> callpark::park::ParkedCall {
    wait_for("Carol's call parked", S(10), || async {
        cp.parked()
            .await
            .into_iter()
            .find(|c| c.caller.number == CALLER_NUMBER && c.state.name() == "parked")
    })
    .await
}

/// Log rows from `from` on, as (kind, channel, orbit).
pub async fn log_since(cp: &Callpark, from: usize) -> Vec<(String, String, Option<String>)> {
    cp.log_rows()
        .await
        .into_iter()
        .skip(from)
        .map(|r| (r.kind, r.channel, r.orbit))
        .collect()
}

/// Alice answers Carol's call: the phone's call id.
pub async fn alice_talks_to_carol(pbx: &Pbx, alice: &Phone) -> u64 {
    let mark = alice.mark();
    pbx.carol_calls_alice().await;
    let inc = alice.wait_incoming(mark, S(10)).await;
    let c1 = inc["call"].as_u64().unwrap();
    alice.wait_state_since(mark, c1, "CONFIRMED", S(10)).await;
    c1
}

pub fn is_state(e: &Value, call: u64, state: &str) -> bool {
    super::phone::ev_name(e) == "call_state" && e["call"] == call && e["state"] == state
}

/// Alice holds Carol, calls `exten` (the consultation), waits until callpark holds it on an
/// orbit; returns the consultation's call id and that orbit.
pub async fn consult(
    pbx: &Pbx,
    cp: &Callpark,
    alice: &Phone,
    c1: u64,
    exten: &str,
) -> (u64, String) {
    alice.hold(c1).await;
    let mark = alice.mark();
    let c2 = alice.call(&pbx.uri(exten)).await;
    alice.wait_state_since(mark, c2, "CONFIRMED", S(10)).await;
    let held = wait_for("the consultation held on an orbit", S(10), || async {
        cp.parked().await.into_iter().find(|c| {
            c.caller.number == "100" || c.caller.name == "Alice" || c.caller.number == "alice"
        })
    })
    .await;
    (c2, held.orbit.unwrap().to_string())
}
