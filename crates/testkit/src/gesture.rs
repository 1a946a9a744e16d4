//! What the SIP phone `alice` (PJSIP's pjsua2, [`crate::phone`]) does on either testbed, so a
//! scenario with it is written once against [`Testbed`] for both PBXes: the phone started,
//! Carol calling it, the steps of an attended transfer, and what callpark's store and log
//! then say.

use std::time::Duration;

use serde_json::Value;

use super::phone::{Phone, PhoneOpts};
use super::testbed::Testbed;
use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;
pub const CALLER_NUMBER: &str = "5551234";

/// The phone `alice` of this PBX, its log in a file of its own.
pub async fn alice(pbx: &impl Testbed) -> Phone {
    let log = std::env::temp_dir().join(format!(
        "callpark-phone-{}-{}.log",
        pbx.name(),
        std::process::id()
    ));
    Phone::start(PhoneOpts {
        log: Some(log),
        ..pbx.alice_opts()
    })
    .await
}

/// Carol calls alice's phone: the PBX's own channel, bridged to the phone once it answers.
pub async fn carol_calls_alice(pbx: &impl Testbed) {
    pbx.call_alice("Carol", CALLER_NUMBER).await;
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
pub async fn alice_talks_to_carol(pbx: &impl Testbed, alice: &Phone) -> u64 {
    let mark = alice.mark();
    carol_calls_alice(pbx).await;
    let inc = alice.wait_incoming(mark, S(10)).await;
    let c1 = inc["call"].as_u64().unwrap();
    alice.wait_state_since(mark, c1, "CONFIRMED", S(10)).await;
    pbx.wait_phone_bridged().await;
    c1
}

pub fn is_state(e: &Value, call: u64, state: &str) -> bool {
    super::phone::ev_name(e) == "call_state" && e["call"] == call && e["state"] == state
}

/// Alice holds Carol, calls `exten` (the consultation), waits until callpark holds it on an
/// orbit; returns the consultation's call id and that orbit.
pub async fn consult(
    pbx: &impl Testbed,
    cp: &Callpark,
    alice: &Phone,
    c1: u64,
    exten: &str,
) -> (u64, String) {
    alice.hold(c1).await;
    let mark = alice.mark();
    let c2 = alice.call(&pbx.sip_uri(exten)).await;
    alice.wait_state_since(mark, c2, "CONFIRMED", S(10)).await;
    let held = wait_for("the consultation held on an orbit", S(10), || async {
        cp.parked().await.into_iter().find(|c| {
            c.caller.number == "100" || c.caller.name == "Alice" || c.caller.number == "alice"
        })
    })
    .await;
    (c2, held.orbit.unwrap().to_string())
}
