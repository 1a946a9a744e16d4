//! Issue 11, item 5, "Caller id kept" (fusionpbx #2356: the caller id was lost after a
//! retrieve), end to end on both real testbeds with the tests' SIP phone `alice`: the phone that
//! retrieves a parked call by dialling its orbit is told the parked caller's name and number,
//! and a ringback to the phone shows `Parked <orbit>…` with the parked caller's number.

mod support;

use std::time::Duration;

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
