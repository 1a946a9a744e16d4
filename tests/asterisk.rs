//! Every park flow end to end on the real Asterisk 22 testbed (contrib/testbed/asterisk), with
//! `callpark run` as a process. Phones are Local channels into the testbed's `phones` context;
//! a park "from a call" is Asterisk's own blind transfer (AMI BlindTransfer of a bridged pair),
//! so callpark learns the parker from the BLINDTRANSFER variable Asterisk sets.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

/// A call between `dev-<phone>` (the parker's phone) and a caller, which the phone then blind
/// transfers to the park code. Returns the parked channel (the caller) and the transferer.
async fn park_by_transfer(ari: &Ari, ami: &Ami, phone: &str, caller_id: &str) -> (Value, Value) {
    ami.set_phone(phone, "answer").await;
    let to = format!("to-dev-{phone}");
    ari.originate_local(&to, "calls", ("answer", "phones"), caller_id)
        .await;
    let transferer_prefix = format!("Local/{to}@calls-");
    let caller_prefix = format!("Local/dev-{phone}@phones-");
    let (transferer, caller) = wait_for("the phone's call to be up", S(10), || async {
        let t = ari.channel_named(&transferer_prefix, ";2").await?;
        let c = ari.channel_named(&caller_prefix, ";1").await?;
        (t["state"] == "Up" && c["state"] == "Up").then_some((t, c))
    })
    .await;
    // Dial's bridge must exist before a transfer can find the peer.
    wait_for("the call to be bridged", S(5), || async {
        ari.bridge_with(
            transferer["id"].as_str().unwrap(),
            caller["id"].as_str().unwrap(),
        )
        .await
    })
    .await;
    ami.blind_transfer(transferer["name"].as_str().unwrap(), "park", "park-in")
        .await;
    (caller, transferer)
}

/// Another phone dials an orbit; returns the retrieving channel (the half in Stasis).
async fn dial_orbit(ari: &Ari, orbit: &str, caller_id: &str) -> Value {
    ari.originate_local(orbit, "park-in", ("answer", "phones"), caller_id)
        .await;
    let prefix = format!("Local/{orbit}@park-in-");
    wait_for("the retriever's channel", S(5), || async {
        ari.channel_named(&prefix, ";2").await
    })
    .await
}

fn id(v: &Value) -> &str {
    v["id"].as_str().expect("channel id")
}

fn name(v: &Value) -> &str {
    v["name"].as_str().expect("channel name")
}

#[tokio::test]
async fn park_by_blind_transfer_music_lamp_then_retrieve_bridges_and_frees() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let cp = Callpark::start(&Setup::default()).await;

    let (caller, _transferer) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    let call = cp.wait_parked_on("701").await;
    assert_eq!(call.channel.as_str(), id(&caller));
    assert_eq!(
        call.parker.endpoint.as_deref(),
        Some("Local/to-dev-alice@calls"),
        "the parker is the transferer Asterisk named in BLINDTRANSFER"
    );
    assert!(cp.kinds_of(id(&caller)).await.contains(&"parked".into()));

    let moh = format!(
        "Started music on hold, class 'default', on channel '{}'",
        name(&caller)
    );
    wait_for("music on hold on the parked call", S(5), || async {
        asterisk_log().contains(&moh).then_some(())
    })
    .await;
    wait_for("busy lamp of 701 in use", S(5), || async {
        (ari.device_state("Stasis:callpark-701").await == "INUSE").then_some(())
    })
    .await;

    let retriever = dial_orbit(&ari, "701", "\"Dave\" <202>").await;
    let bridge = wait_for(
        "the parked call bridged to the retriever",
        S(10),
        || async { ari.bridge_with(id(&caller), id(&retriever)).await },
    )
    .await;
    assert_eq!(bridge["channels"].as_array().unwrap().len(), 2);
    cp.wait_log(id(&caller), "retrieved", S(5)).await;
    let row = cp
        .log_rows()
        .await
        .into_iter()
        .find(|r| r.kind == "retrieved" && r.channel == id(&caller))
        .unwrap();
    assert!(
        row.detail.contains("202"),
        "the log says who retrieved: {}",
        row.detail
    );
    assert!(cp.parked().await.is_empty(), "orbit 701 is free again");
    wait_for("busy lamp of 701 off", S(5), || async {
        (ari.device_state("Stasis:callpark-701").await == "NOT_INUSE").then_some(())
    })
    .await;
    let stopped = format!("Stopped music on hold on {}", name(&caller));
    assert!(
        asterisk_log().contains(&stopped),
        "music stops at the bridge"
    );

    // The next park takes the lowest free orbit: 701 again.
    let (caller2, _) = park_by_transfer(&ari, &ami, "bob", "\"Eve\" <5550000>").await;
    let call2 = cp.wait_parked_on("701").await;
    assert_eq!(call2.channel.as_str(), id(&caller2));
}
