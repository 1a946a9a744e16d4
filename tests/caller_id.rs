//! Issue 11, item 5, "Caller id kept" (fusionpbx #2356: the caller id was lost after a
//! retrieve), end to end on both real testbeds with the tests' SIP phone `alice`: the phone that
//! retrieves a parked call by dialling its orbit is told the parked caller's name and number,
//! and a ringback to the phone shows `Parked <orbit>…` with the parked caller's number.

mod support;

use std::time::Duration;

use serde_json::Value;
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
        let d = phone.call(&sip, "701", "127.0.0.1").await;
        cp.wait_log(id(&caller), "retrieved", S(10)).await;
        let (how, pai) = told_identity(&phone, &d, name, number).await;
        eprintln!("asterisk told the retriever, in {how}: {pai}");
        phone.hang_up(&sip, &d).await;
        ari.reset().await;
    }
}
