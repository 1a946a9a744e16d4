//! Issue 11, item 5, "Caller id kept" (fusionpbx #2356: the caller id was lost after a
//! retrieve), end to end on both real testbeds with the tests' SIP phone `alice`: the phone that
//! retrieves a parked call by dialling its orbit is told the parked caller's name and number,
//! and a ringback to the phone shows `Parked <orbit>…` with the parked caller's number.

use callpark_testkit as support;

use std::time::Duration;

use callpark::park::Party;
use callpark::pbx::asterisk::translate::caller_id_param;
use callpark::pbx::freeswitch::translate::originate_value;
use serde_json::Value;
use support::fs::{self, fb};
use support::sip::{SipPhone, header};
use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn id(v: &Value) -> &str {
    v["id"].as_str().expect("channel id")
}

/// Waits for the identity the PBX gives the phone in call `d` (P-Asserted-Identity or
/// Remote-Party-ID, in the answer or in a later re-INVITE/UPDATE) to name `name` and `number`;
/// returns the message's first line and that header.
async fn told_identity(
    phone: &SipPhone,
    d: &support::sip::Dialog,
    name: &str,
    number: &str,
) -> (String, String) {
    let names = |m: &String| {
        let first = m.lines().next().unwrap_or("").to_string();
        ["P-Asserted-Identity", "Remote-Party-ID"]
            .iter()
            .map(|h| header(m, h))
            .find(|v| !v.is_empty())
            .map(|v| (first, v))
    };
    let ok = |(_, v): &(String, String)| {
        v.contains(&format!("\"{name}\"")) && v.contains(&format!("sip:{number}@"))
    };
    let found = tokio::time::timeout(S(10), async {
        loop {
            let mut seen = vec![d.answer.clone()];
            seen.extend(phone.requests_in(&d.call_id));
            if let Some(v) = seen.iter().rev().filter_map(names).find(ok) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "the phone was never told {name} <{number}>; answer:\n{}\nrequests within the call:\n{}",
            d.answer,
            phone.requests_in(&d.call_id).join("\n----\n")
        )
    })
}

/// Settings that ring back within seconds. A ringback shows `Parked <orbit>: <caller name>`.
const RINGBACK_TIME: &str =
    "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"8s\"\n";

/// What the core gives a ringback once the caller's name is in it (issue 11.5's format).
fn issue_text(orbit: &str) -> String {
    format!("Parked {orbit}: O'Brien, Zoë")
}

/// New calls the phone was offered (INVITEs without a To tag) from index `from` of them on.
fn new_calls(phone: &SipPhone, from: usize) -> Vec<String> {
    phone
        .invites
        .lock()
        .unwrap()
        .iter()
        .filter(|i| !header(i, "To").contains("tag="))
        .skip(from)
        .cloned()
        .collect()
}

fn new_call_count(phone: &SipPhone) -> usize {
    new_calls(phone, 0).len()
}

/// Waits for the next new call to the phone after `from` and returns its From header.
async fn next_call_from(phone: &SipPhone, from: usize, what: &str) -> String {
    let invite = wait_for(what, S(20), || async {
        new_calls(phone, from).into_iter().next()
    })
    .await;
    header(&invite, "From")
}

/// A From header shows `display` and the number `number`.
fn assert_from(from: &str, display_starts: &str, number: &str) {
    assert!(
        from.starts_with(&format!("\"{display_starts}")),
        "the phone's display: {from}"
    );
    assert!(
        from.contains(&format!("<sip:{number}@")),
        "the phone's number: {from}"
    );
}

// ----- Asterisk ------------------------------------------------------------------------------

/// The testbed's `alice` must send P-Asserted-Identity (contrib/testbed/asterisk/etc/pjsip.conf):
/// a testbed brought up from an older checkout is reloaded from this one.
async fn asterisk_alice_sends_pai() {
    let script = format!("{REPO}/contrib/testbed/asterisk/testbed.sh");
    let cli = |args: &[&str]| {
        let o = std::process::Command::new("bash")
            .arg(&script)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{script}: {e}"));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let sends = |out: String| {
        out.lines()
            .any(|l| l.trim_start().starts_with("send_pai") && l.contains("true"))
    };
    if !sends(cli(&["cli", "pjsip show endpoint alice"])) {
        cli(&["reload"]);
        assert!(
            sends(cli(&["cli", "pjsip show endpoint alice"])),
            "endpoint alice of the Asterisk testbed does not send P-Asserted-Identity"
        );
    }
}

/// A caller who dials the park code itself (so its own caller id is the parked call's); returns
/// the parked channel.
async fn asterisk_self_park(ari: &Ari, caller_id: &str) -> Value {
    ari.originate_local("park", "park-in", ("answer", "phones"), caller_id)
        .await;
    wait_for("the parked caller", S(5), || async {
        ari.channel_named("Local/park@park-in-", ";2").await
    })
    .await
}

#[tokio::test]
async fn asterisk_retriever_phone_sees_the_parked_caller() {
    let _turn = exclusive().await;
    let (ari, _ami) = testbed().await;
    asterisk_alice_sends_pai().await;
    let phone = SipPhone::start(&tb("SIP_ALICE_CONTACT")).await;
    let cp = Callpark::start(&Setup::default()).await;
    let sip = tb("SIP_BIND");

    for (name, number) in [("O'Brien, Zoë", "5551234"), ("Carol", "5550000")] {
        let cid = format!("\"{name}\" <{number}>");
        let caller = asterisk_self_park(&ari, &cid).await;
        let call = cp.wait_parked_on("701").await;
        assert_eq!(
            (call.caller.name.as_str(), call.caller.number.as_str()),
            (name, number)
        );
        let d = phone
            .call(&sip, "701", "127.0.0.1", "callpark test phone")
            .await;
        cp.wait_log(id(&caller), "retrieved", S(10)).await;
        let (how, pai) = told_identity(&phone, &d, name, number).await;
        eprintln!("asterisk told the retriever, in {how}: {pai}");
        phone.hang_up(&sip, &d).await;
        ari.reset().await;
    }
}

/// alice on her SIP phone talks to a caller (PJSIP/alice originated with the caller's id, then
/// bridged to a Local phone) and blind transfers it to the park code; returns the parked channel.
async fn asterisk_sip_park(ari: &Ari, ami: &Ami, caller_id: &str) -> Value {
    ari.post(
        "/channels",
        &[
            ("endpoint", "PJSIP/alice"),
            ("extension", "bob"),
            ("context", "calls"),
            ("priority", "1"),
            ("callerId", caller_id),
            ("timeout", "10"),
        ],
    )
    .await;
    let (alice, caller) = wait_for("alice's SIP call up", S(10), || async {
        let a = ari.channel_named("PJSIP/alice-", "").await?;
        let c = ari.channel_named("Local/answer@phones-", ";1").await?;
        ari.bridge_with(id(&a), id(&c)).await.map(|_| (a, c))
    })
    .await;
    ami.blind_transfer(alice["name"].as_str().unwrap(), "park", "park-in")
        .await;
    caller
}

#[tokio::test]
async fn asterisk_ringback_shows_the_orbit_and_the_callers_number() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    asterisk_alice_sends_pai().await;
    let phone = SipPhone::start(&tb("SIP_ALICE_CONTACT")).await;

    // The caller id the translator writes for the core's ringback text reaches the phone whole.
    let calls = new_call_count(&phone);
    let cid = caller_id_param(&Party {
        name: issue_text("701"),
        number: "5551234".into(),
    });
    ari.post(
        "/channels",
        &[
            ("endpoint", "PJSIP/alice"),
            ("extension", "answer"),
            ("context", "phones"),
            ("priority", "1"),
            ("callerId", cid.as_str()),
            ("timeout", "10"),
        ],
    )
    .await;
    let from = next_call_from(&phone, calls, "the test call to alice").await;
    assert_from(&from, &format!("{}\"", issue_text("701")), "5551234");
    ari.reset().await;

    // A real ringback from callpark.
    let cp = Callpark::start(&Setup {
        park: RINGBACK_TIME.into(),
        ..Setup::default()
    })
    .await;
    let calls = new_call_count(&phone);
    let caller = asterisk_sip_park(&ari, &ami, "\"O'Brien, Zoë\" <5551234>").await;
    let call = cp.wait_parked_on("701").await;
    assert_eq!(call.channel.as_str(), id(&caller));
    // The number Asterisk gives this test harness's far party is not the originate's (it is the
    // extension the originated channel ran): the ringback must carry whatever the parked
    // channel's caller number is.
    assert_eq!(call.caller.name, "O'Brien, Zoë");
    assert!(!call.caller.number.is_empty());
    assert_eq!(call.parker.endpoint.as_deref(), Some("PJSIP/alice"));
    // The first new call is the one alice parked; the next is the ringback.
    let from = next_call_from(&phone, calls + 1, "the ringback to alice").await;
    eprintln!("asterisk ringback: From: {from}");
    assert_from(&from, "Parked 701", &call.caller.number);
    // The whole text: the orbit and whose call it is.
    assert!(
        from.contains("\"Parked 701: O'Brien, Zoë\""),
        "From: {from}"
    );
    cp.wait_log(id(&caller), "reconnected", S(15)).await;
}

// ----- FreeSWITCH ----------------------------------------------------------------------------

/// A caller who dials the park code itself, its caller id written as callpark writes one
/// (`originate_value`); returns the parked channel (the loopback half that runs `park`).
async fn fs_self_park(esl: &fs::Esl, name: &str, number: &str) -> String {
    let ctx = fb("CONTEXT");
    let a = fs::uuid();
    let r = esl
        .bgapi(&format!(
            "originate {{origination_uuid={a},origination_caller_id_name={},origination_caller_id_number={}}}loopback/park/{ctx} &park()",
            originate_value(name),
            originate_value(number)
        ))
        .await;
    assert!(r.starts_with("+OK"), "originate: {r}");
    wait_for("the parked half of loopback/park", S(10), || async {
        let b = esl.getvar(&a, "other_loopback_leg_uuid").await;
        (b.len() == 36).then_some(b)
    })
    .await
}

#[tokio::test]
async fn freeswitch_retriever_phone_sees_the_parked_caller() {
    let _turn = exclusive().await;
    let esl = fs::fs_testbed().await;
    let sip = fb("SIP_BIND");
    let phone = SipPhone::start(&fb("SIP_ALICE_CONTACT")).await;
    let cp = Callpark::start(&Setup::freeswitch()).await;

    for (name, number) in [("O'Brien, Zoë", "5551234"), ("Carol", "5550000")] {
        let caller = fs_self_park(&esl, name, number).await;
        let call = cp.wait_parked_on("601").await;
        assert_eq!(
            (call.caller.name.as_str(), call.caller.number.as_str()),
            (name, number)
        );
        let d = phone
            .call(&sip, "601", "127.0.0.1", "Yealink SIP-T46S 66.86.0.15")
            .await;
        cp.wait_log(&caller, "retrieved", S(10)).await;
        let (how, id) = told_identity(&phone, &d, name, number).await;
        eprintln!("freeswitch told the retriever, in {how}: {id}");
        phone.hang_up(&sip, &d).await;
        esl.reset().await;
    }
}

/// A loopback call into `exten`, its caller id written as callpark writes one; returns the
/// half that runs `exten`.
async fn fs_call(esl: &fs::Esl, exten: &str, name: &str, number: &str) -> String {
    let ctx = fb("CONTEXT");
    let a = fs::uuid();
    let r = esl
        .bgapi(&format!(
            "originate {{origination_uuid={a},origination_caller_id_name={},origination_caller_id_number={}}}loopback/{exten}/{ctx} &park()",
            originate_value(name),
            originate_value(number)
        ))
        .await;
    assert!(r.starts_with("+OK"), "originate: {r}");
    wait_for(
        &format!("the other half of loopback/{exten}"),
        S(10),
        || async {
            let b = esl.getvar(&a, "other_loopback_leg_uuid").await;
            (b.len() == 36).then_some(b)
        },
    )
    .await
}

/// A name without a colon, dialled as the translator writes a plain caller id. (One with a
/// colon, as the core's `Parked 601: O'Brien, Zoë`, sofia would cut up to the colon in its
/// caller id; the translator then sends it as `sip_from_display`, which the ringback below
/// checks whole.)
const FS_SOFIA_TEXT: &str = "Parked 601 - O'Brien, Zoë";

#[tokio::test]
async fn freeswitch_ringback_shows_the_orbit_and_the_callers_number() {
    let _turn = exclusive().await;
    let esl = fs::fs_testbed().await;
    let sip = fb("SIP_BIND");
    let phone = SipPhone::start(&fb("SIP_ALICE_CONTACT")).await;
    let r = phone.register(&sip, "alice", "127.0.0.1").await;
    assert!(r.starts_with("SIP/2.0 200"), "REGISTER: {r}");

    // The originate line the translator writes for the core's ringback text reaches the phone
    // whole, dialled as callpark dials a SIP parker (the sofia channel it transferred from).
    let calls = new_call_count(&phone);
    let r = esl
        .bgapi(&format!(
            "originate {{origination_caller_id_name={},origination_caller_id_number={}}}sofia/internal/alice@{} &park()",
            originate_value(FS_SOFIA_TEXT),
            originate_value("5551234"),
            fb("SIP_ALICE_CONTACT")
        ))
        .await;
    assert!(r.starts_with("+OK"), "originate: {r}");
    let from = next_call_from(&phone, calls, "the test call to alice").await;
    assert_from(&from, &format!("{FS_SOFIA_TEXT}\""), "5551234");
    esl.reset().await;

    // A real ringback from callpark.
    let cp = Callpark::start(&Setup {
        park: RINGBACK_TIME.into(),
        ..Setup::freeswitch()
    })
    .await;
    let calls = new_call_count(&phone);
    let caller = fs_call(&esl, "to-user-alice", "O'Brien, Zoë", "5551234").await;
    wait_for("alice's phone answered", S(10), || async {
        let peer = esl.getvar(&caller, "bridge_channel").await;
        peer.starts_with("sofia/").then_some(())
    })
    .await;
    let r = phone
        .refer_last_call(&sip, &format!("sip:park@{sip}"))
        .await;
    assert!(r.starts_with("SIP/2.0 202"), "REFER: {r}");
    let call = cp.wait_parked_on("601").await;
    assert_eq!(call.channel.as_str(), caller);
    assert_eq!(
        (call.caller.name.as_str(), call.caller.number.as_str()),
        ("O'Brien, Zoë", "5551234")
    );
    let from = next_call_from(&phone, calls + 1, "the ringback to alice").await;
    eprintln!("freeswitch ringback: From: {from}");
    assert_from(&from, "Parked 601", "5551234");
    // The whole text, colon and all: the orbit and whose call it is.
    assert!(
        from.contains("\"Parked 601: O'Brien, Zoë\""),
        "From: {from}"
    );
    cp.wait_log(&caller, "reconnected", S(15)).await;
}
