//! Busy-lamp keys on both real PBXes, seen by a real SIP phone (crates/testkit/src/sip.rs) that
//! subscribes to an orbit's dialog state: idle (`terminated`, or no dialog at all), in use
//! (`confirmed`) while a call is parked, ringing (`early`, a blinking key) while it rings back;
//! through park → ringback → missed ringback → retrieve, across a dialplan reload, for a phone
//! that subscribes while the call is parked, and after callpark restarts.

use callpark_testkit as support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::sip::SipPhone;
use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

/// What each NOTIFY of `phone` about `orbit` says, in arrival order: the `<state>` of the
/// orbit's dialog (`dialog_id`: Asterisk names it after the orbit, callpark's FreeSWITCH
/// presence `callpark-<orbit>`), or `terminated` for a full state without any dialog (how
/// FreeSWITCH says idle). Only the NOTIFYs of this phone's own subscription count (a PBX may
/// still retransmit those of a subscription an earlier test's phone left on the same port);
/// NOTIFYs about other dialogs of the same entity are left out.
fn lamp_states(phone: &SipPhone, orbit: &str, dialog_id: &str) -> Vec<String> {
    lamp_states_since(phone, 0, orbit, dialog_id)
}

/// [`lamp_states`] of the NOTIFYs after the first `from`.
fn lamp_states_since(phone: &SipPhone, from: usize, orbit: &str, dialog_id: &str) -> Vec<String> {
    let entity = format!("entity=\"sip:{orbit}@");
    let call_id = phone.subscription_id(orbit);
    phone.notifies.lock().unwrap()[from..]
        .iter()
        .filter_map(|n| {
            let (head, body) = n.split_once("\r\n\r\n")?;
            let ours = head.lines().any(|l| {
                l.split_once(':').is_some_and(|(k, v)| {
                    matches!(k.trim().to_ascii_lowercase().as_str(), "call-id" | "i")
                        && v.trim() == call_id
                })
            });
            if !ours {
                return None;
            }
            if !body.contains(&entity) {
                return None;
            }
            if !body.contains("<dialog ") {
                return Some("terminated".to_string());
            }
            let dialog = body
                .split("<dialog ")
                .skip(1)
                .find(|d| d.trim_start().starts_with(&format!("id=\"{dialog_id}\"")))?;
            let state = dialog.split_once("<state>")?.1.split_once("</state>")?.0;
            Some(state.to_string())
        })
        .collect()
}

/// Waits until the last lamp state `phone` was told for `orbit` is `state`; returns every
/// state so far.
async fn wait_lamp(
    phone: &SipPhone,
    orbit: &str,
    dialog_id: &str,
    state: &str,
    what: &str,
) -> Vec<String> {
    wait_for(
        &format!("{what}: a NOTIFY of {orbit} {state}"),
        S(10),
        || async {
            let states = lamp_states(phone, orbit, dialog_id);
            (states.last().map(String::as_str) == Some(state)).then_some(states)
        },
    )
    .await
}

/// The phone subscribes again (a refresh of its subscription, as phones send before it
/// expires): the NOTIFYs that answer it end with `state`.
async fn resubscribe(phone: &SipPhone, server: &str, orbit: &str, dialog_id: &str, state: &str) {
    let before = phone.notifies.lock().unwrap().len();
    let r = phone.subscribe(server, orbit, "127.0.0.1").await;
    assert!(r.starts_with("SIP/2.0 20"), "SUBSCRIBE again: {r}");
    // Within moments: on FreeSWITCH callpark answers the probe at once.
    wait_for(
        &format!("a NOTIFY of {orbit} {state} after subscribing again"),
        S(3),
        || async {
            let states = lamp_states_since(phone, before, orbit, dialog_id);
            (states.last().map(String::as_str) == Some(state)).then_some(())
        },
    )
    .await;
}

/// Consecutive repeats folded (a PBX may notify the same state twice).
fn changes(states: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = states.iter().map(String::as_str).collect();
    v.dedup();
    v
}

/// A CLI command on the Asterisk testbed; its output.
fn ast_cli(cmd: &str) -> String {
    let script = Path::new(REPO).join("contrib/testbed/asterisk/testbed.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["cli", cmd])
        .output()
        .expect("run testbed.sh cli");
    assert!(out.status.success(), "{cmd}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The line of `core show hints` for `exten@callpark`.
fn hint_line(exten: &str) -> Option<String> {
    let at = format!("{exten}@callpark ");
    ast_cli("core show hints")
        .lines()
        .find(|l| l.trim_start().starts_with(&at))
        .map(str::to_string)
}

/// AMI ExtensionState of an orbit: Asterisk's own view of the hint (0 idle, 1 in use,
/// 8 ringing).
async fn ext_state(ami: &Ami, orbit: &str) -> String {
    let r = ami
        .action(
            "ExtensionState",
            &[("Exten", orbit), ("Context", "callpark")],
        )
        .await;
    r.get("Status").cloned().unwrap_or_default()
}

fn id(v: &Value) -> &str {
    v["id"].as_str().expect("channel id")
}

fn ast_setup(park: &str) -> Setup {
    Setup {
        park: park.into(),
        ..Setup::default()
    }
}

#[tokio::test]
async fn asterisk_lamp_through_park_ringback_reload_resubscribe_and_retrieve() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    // Two pickup attempts: the call is parked again after the missed ringback, and lit again.
    // 20 s: room for two reloads and a second subscription before the ringback.
    let cp = Callpark::start(&ast_setup(
        "pickup_timeout = \"20s\"\nmax_pickup_attempts = 2\nringback_ring_time = \"5s\"\n",
    ))
    .await;
    // The shipped include has one pattern hint per orbit pattern, no line per orbit.
    let include =
        std::fs::read_to_string(Path::new(&tb("ROOT")).join("etc/asterisk/callpark.conf")).unwrap();
    assert!(include.contains("exten => _70[1-9],hint,Stasis:callpark-${EXTEN}"));
    assert!(!include.contains("exten => 701,hint"), "no per-orbit hint");

    let sip = tb("SIP_BIND");
    let phone = SipPhone::start(&tb("SIP_ALICE_CONTACT")).await;
    let r = phone.subscribe(&sip, "701", "127.0.0.1").await;
    assert!(r.starts_with("SIP/2.0 20"), "SUBSCRIBE: {r}");
    wait_lamp(&phone, "701", "701", "terminated", "subscribed, idle").await;
    // The SUBSCRIBE made Asterisk add 701's own hint from the pattern, ${EXTEN} expanded.
    let line = hint_line("701").expect("a hint 701@callpark made from the pattern");
    assert!(line.contains(": Stasis:callpark-701 "), "{line}");
    assert!(!line.contains("Watchers  0"), "{line}");
    // The same from the `_*70XX` pattern of the reception range (callpark keeps its lamps
    // dark here: this configuration has only 701-799).
    let r = phone.subscribe(&sip, "*7001", "127.0.0.1").await;
    assert!(r.starts_with("SIP/2.0 20"), "SUBSCRIBE *7001: {r}");
    let line = hint_line("*7001").expect("a hint *7001@callpark made from _*70XX");
    assert!(line.contains(": Stasis:callpark-*7001 "), "{line}");

    let (caller, _) = park_by_transfer(&ari, &ami, "bob", "\"Carol\" <5551234>").await;
    cp.wait_parked_on("701").await;
    // bob's phone rings from now on and nobody picks up.
    ami.set_phone("bob", "noanswer").await;
    wait_lamp(&phone, "701", "701", "confirmed", "parked").await;
    assert_eq!(ext_state(&ami, "701").await, "1");

    // A dialplan reload keeps the orbit's hint (made from the pattern again), its watcher and
    // its state: the device state is Asterisk's, not the dialplan's.
    ast_cli("dialplan reload");
    let line = hint_line("701").expect("701's hint after the reload");
    assert!(line.contains("State:InUse "), "{line}");
    assert!(!line.contains("Watchers  0"), "{line}");
    assert_eq!(ext_state(&ami, "701").await, "1");
    // And a whole `core reload` (the testbed's configuration copied again, the shipped include
    // among it).
    let script = Path::new(REPO).join("contrib/testbed/asterisk/testbed.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("reload")
        .output()
        .expect("run testbed.sh reload");
    assert!(out.status.success(), "testbed.sh reload: {out:?}");
    let line = hint_line("701").expect("701's hint after core reload");
    assert!(line.contains("State:InUse "), "{line}");
    assert_eq!(ext_state(&ami, "701").await, "1");
    // A phone that subscribes now (another key, a phone that rebooted) is told at once.
    let second = SipPhone::start("127.0.0.1:5176").await;
    let r = second.subscribe(&sip, "701", "127.0.0.1").await;
    assert!(r.starts_with("SIP/2.0 20"), "second SUBSCRIBE: {r}");
    let first = wait_for("the second phone's first NOTIFY", S(5), || async {
        lamp_states(&second, "701", "701").first().cloned()
    })
    .await;
    assert_eq!(
        first, "confirmed",
        "a fresh subscription sees the parked call"
    );

    // The ringback: both keys blink (the first phone's subscription outlived the reload).
    cp.wait_log(id(&caller), "ringback_started", S(25)).await;
    wait_lamp(&phone, "701", "701", "early", "ringing back").await;
    wait_lamp(&second, "701", "701", "early", "ringing back, second phone").await;
    assert_eq!(ext_state(&ami, "701").await, "8");
    // Missed: parked again, lit again.
    cp.wait_log(id(&caller), "ringback_missed", S(10)).await;
    wait_lamp(&phone, "701", "701", "confirmed", "parked again").await;
    // The phone refreshes its subscription: answered in use.
    resubscribe(&phone, &sip, "701", "701", "confirmed").await;

    let retriever = dial_orbit(&ari, "701", "\"Dave\" <202>").await;
    wait_for(
        "the retriever bridged to the parked call",
        S(10),
        || async { ari.bridge_with(id(&caller), id(&retriever)).await },
    )
    .await;
    let states = wait_lamp(&phone, "701", "701", "terminated", "retrieved").await;
    assert_eq!(
        changes(&states),
        [
            "terminated",
            "confirmed",
            "early",
            "confirmed",
            "terminated"
        ],
        "{states:?}"
    );
    let states = wait_lamp(&second, "701", "701", "terminated", "retrieved, second").await;
    assert_eq!(
        changes(&states),
        ["confirmed", "early", "confirmed", "terminated"]
    );
    assert_eq!(ext_state(&ami, "701").await, "0");
}

#[tokio::test]
async fn asterisk_lamp_is_lit_again_when_callpark_reconnects() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let mut cp = Callpark::start(&ast_setup(
        "pickup_timeout = \"120s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"5s\"\n",
    ))
    .await;
    let phone = SipPhone::start(&tb("SIP_ALICE_CONTACT")).await;
    let r = phone.subscribe(&tb("SIP_BIND"), "701", "127.0.0.1").await;
    assert!(r.starts_with("SIP/2.0 20"), "SUBSCRIBE: {r}");
    park_by_transfer(&ari, &ami, "bob", "\"Carol\" <5551234>").await;
    cp.wait_parked_on("701").await;
    wait_lamp(&phone, "701", "701", "confirmed", "parked").await;

    // callpark dies; meanwhile the device state is lost (as in an Asterisk restarted with an
    // older astdb).
    cp.kill();
    let (user, pass) = (tb("ARI_USER"), tb("ARI_PASSWORD"));
    let r = reqwest::Client::new()
        .put(format!(
            "{}/ari/deviceStates/Stasis:callpark-701",
            tb("ARI_URL")
        ))
        .basic_auth(user, Some(pass))
        .query(&[("deviceState", "NOT_INUSE")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{r:?}");
    wait_lamp(&phone, "701", "701", "terminated", "lamp lost").await;
    // Back: the stored call's lamp is sent again once connected.
    cp.spawn().await;
    wait_lamp(
        &phone,
        "701",
        "701",
        "confirmed",
        "lit again after reconnecting",
    )
    .await;
    assert_eq!(ari.device_state("Stasis:callpark-701").await, "INUSE");
}

mod fs_lamps {
    use super::*;
    use crate::support::fs::{dial_orbit, fb, fs_testbed, park_by_transfer};

    /// callpark's presence dialog for an orbit.
    const DIALOG: &str = "callpark-601";

    fn fs_setup(park: &str) -> Setup {
        Setup {
            park: park.into(),
            ..Setup::freeswitch()
        }
    }

    async fn subscribed(addr: &str) -> SipPhone {
        let phone = SipPhone::start(addr).await;
        let r = phone.subscribe(&fb("SIP_BIND"), "601", "127.0.0.1").await;
        assert!(r.starts_with("SIP/2.0 20"), "SUBSCRIBE: {r}");
        phone
    }

    #[tokio::test]
    async fn freeswitch_lamp_through_park_ringback_reload_resubscribe_and_retrieve() {
        let _turn = exclusive().await;
        let esl = fs_testbed().await;
        let cp = Callpark::start(&fs_setup(
            "pickup_timeout = \"10s\"\nmax_pickup_attempts = 2\nringback_ring_time = \"5s\"\n",
        ))
        .await;
        let phone = subscribed(&fb("SIP_ALICE_CONTACT")).await;
        wait_lamp(&phone, "601", DIALOG, "terminated", "subscribed, idle").await;

        let caller = park_by_transfer(&esl, "bob", "Carol", "5551234").await;
        cp.wait_parked_on("601").await;
        esl.set_phone("bob", "noanswer").await;
        wait_lamp(&phone, "601", DIALOG, "confirmed", "parked").await;

        // A dialplan reload changes nothing of presence.
        let r = esl.api("reloadxml").await;
        assert!(r.contains("+OK"), "reloadxml: {r}");
        // A phone that subscribes now: sofia answers idle (it keeps no presence) and asks
        // (PRESENCE_PROBE); callpark's answer lights the key.
        let second = subscribed("127.0.0.1:5276").await;
        wait_lamp(&second, "601", DIALOG, "confirmed", "a fresh subscription").await;

        cp.wait_log(&caller, "ringback_started", S(15)).await;
        wait_lamp(&phone, "601", DIALOG, "early", "ringing back").await;
        wait_lamp(
            &second,
            "601",
            DIALOG,
            "early",
            "ringing back, second phone",
        )
        .await;
        cp.wait_log(&caller, "ringback_missed", S(10)).await;
        wait_lamp(&phone, "601", DIALOG, "confirmed", "parked again").await;
        // The phone refreshes its subscription: answered in use (after sofia's idle).
        resubscribe(&phone, &fb("SIP_BIND"), "601", DIALOG, "confirmed").await;

        let retriever = dial_orbit(&esl, "601", "Dave", "202").await;
        wait_for(
            "the retriever bridged to the parked call",
            S(10),
            || async {
                (esl.getvar(&caller, "bridge_uuid").await == retriever
                    || esl.getvar(&retriever, "bridge_uuid").await == caller)
                    .then_some(())
            },
        )
        .await;
        let states = wait_lamp(&phone, "601", DIALOG, "terminated", "retrieved").await;
        assert_eq!(
            changes(&states),
            // The refresh while parked again: sofia's own idle NOTIFY, then callpark's answer
            // to its probe.
            [
                "terminated",
                "confirmed",
                "early",
                "confirmed",
                "terminated",
                "confirmed",
                "terminated"
            ],
            "{states:?}"
        );
        wait_lamp(&second, "601", DIALOG, "terminated", "retrieved, second").await;
    }

    #[tokio::test]
    async fn freeswitch_lamp_is_lit_again_when_callpark_reconnects() {
        let _turn = exclusive().await;
        let esl = fs_testbed().await;
        let mut cp = Callpark::start(&fs_setup(
            "pickup_timeout = \"120s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"5s\"\n",
        ))
        .await;
        let phone = subscribed(&fb("SIP_ALICE_CONTACT")).await;
        park_by_transfer(&esl, "bob", "Carol", "5551234").await;
        cp.wait_parked_on("601").await;
        wait_lamp(&phone, "601", DIALOG, "confirmed", "parked").await;

        // callpark dies and the lamp goes dark meanwhile (as after a FreeSWITCH restart,
        // which keeps no presence).
        cp.kill();
        let r = esl
            .sendevent(
                "PRESENCE_IN",
                &[
                    ("proto", "sip"),
                    ("login", "601"),
                    ("from", "601@127.0.0.1"),
                    ("event_type", "presence"),
                    ("alt_event_type", "dialog"),
                    ("unique-id", DIALOG),
                    ("channel-state", "CS_HANGUP"),
                    ("answer-state", "terminated"),
                    ("presence-call-direction", "inbound"),
                ],
            )
            .await;
        assert!(r.starts_with("+OK"), "sendevent: {r}");
        wait_lamp(&phone, "601", DIALOG, "terminated", "lamp lost").await;
        cp.spawn().await;
        wait_lamp(
            &phone,
            "601",
            DIALOG,
            "confirmed",
            "lit again after reconnecting",
        )
        .await;
    }
}
