//! Every park flow end to end on the real FreeSWITCH testbed (contrib/testbed/freeswitch), with
//! `callpark run` as a process: the same flows as tests/asterisk.rs. Phones are loopback
//! channels into the testbed's `callpark-test` context; a park "from a call" is FreeSWITCH's
//! own blind transfer (`uuid_transfer` of the caller, as a REFER from a phone does it), so
//! callpark learns the parker from the channel the caller was bridged to.

mod support;

use std::time::Duration;

use support::fs::*;
use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

/// A call between `dev-<phone>` (the parker's phone) and a caller, which the phone then blind
/// transfers to the park code. Returns the parked channel (the caller's uuid).
async fn park_by_transfer(esl: &Esl, phone: &str, name: &str, number: &str) -> String {
    esl.set_phone(phone, "answer").await;
    let caller = esl.call(&format!("to-dev-{phone}"), name, number).await;
    wait_for("the pair to be bridged", S(10), || async {
        (esl.getvar(&caller, "bridge_uuid").await.len() == 36).then_some(())
    })
    .await;
    let r = esl
        .api(&format!("uuid_transfer {caller} park XML {}", fb("CONTEXT")))
        .await;
    assert!(r.starts_with("+OK"), "transfer: {r}");
    caller
}

/// Another phone dials an orbit; returns the retrieving channel.
async fn dial_orbit(esl: &Esl, orbit: &str, name: &str, number: &str) -> String {
    esl.call(orbit, name, number).await
}

/// The presence event callpark sends for an orbit's busy lamp, after `mark`.
async fn lamp(esl: &Esl, mark: usize, orbit: &str, in_use: bool) {
    let from = format!("{orbit}@127.0.0.1");
    let state = if in_use { "confirmed" } else { "terminated" };
    esl.wait_event(
        mark,
        &format!("busy lamp of {orbit} {state}"),
        S(5),
        |e| {
            e.name() == "PRESENCE_IN"
                && e.get("proto") == "callpark"
                && e.get("from") == from
                && e.get("answer-state") == state
        },
    )
    .await;
}

/// Music on hold starts on `uuid` (a broadcast of the hold music), after `mark`.
async fn on_hold(esl: &Esl, mark: usize, uuid: &str, media: &str) {
    esl.wait_event(mark, &format!("music on hold {media} on {uuid}"), S(5), |e| {
        e.name() == "PLAYBACK_START"
            && e.uuid() == uuid
            && e.get("Playback-File-Path").contains(media)
    })
    .await;
}

#[tokio::test]
async fn park_by_blind_transfer_music_lamp_then_retrieve_bridges_and_frees() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let cp = Callpark::start(&Setup::freeswitch()).await;

    let mark = esl.mark();
    let caller = park_by_transfer(&esl, "alice", "Carol", "5551234").await;
    let call = cp.wait_parked_on("601").await;
    assert_eq!(call.channel.as_str(), caller);
    assert_eq!(
        call.parker.endpoint.as_deref(),
        Some(format!("loopback/dev-alice/{}", fb("CONTEXT")).as_str()),
        "the parker is the channel the caller was bridged to before the transfer"
    );
    assert_eq!(call.caller.number, "5551234");
    on_hold(&esl, mark, &caller, "moh").await;
    lamp(&esl, mark, "601", true).await;

    let mark = esl.mark();
    let retriever = dial_orbit(&esl, "601", "Dave", "202").await;
    esl.wait_event(mark, "the parked call bridged to the retriever", S(10), |e| {
        e.name() == "CHANNEL_BRIDGE"
            && [e.uuid(), e.get("Other-Leg-Unique-ID")].contains(&caller.as_str())
            && [e.uuid(), e.get("Other-Leg-Unique-ID")].contains(&retriever.as_str())
    })
    .await;
    cp.wait_log(&caller, "retrieved", S(5)).await;
    let row = cp
        .log_rows()
        .await
        .into_iter()
        .find(|r| r.kind == "retrieved" && r.channel == caller)
        .unwrap();
    assert!(row.detail.contains("202"), "who retrieved: {}", row.detail);
    assert!(cp.parked().await.is_empty(), "orbit 601 is free again");
    lamp(&esl, mark, "601", false).await;

    // The next park takes the lowest free orbit: 601 again.
    let caller2 = park_by_transfer(&esl, "bob", "Eve", "5550000").await;
    let call2 = cp.wait_parked_on("601").await;
    assert_eq!(call2.channel.as_str(), caller2);
}
