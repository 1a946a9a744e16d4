//! What a real SIP phone does, on both PBXes: attended transfers (REFER with Replaces) to the
//! park code and to an orbit, a consultation hung up instead of transferred, and a call the
//! phone deflects to the park code with a 302. The phone is PJSIP's pjsua2
//! (`tests/phone/phone.py`, `support::phone`), a SIP stack nobody here wrote, registered as
//! `alice`; the caller is the PBX's own channel calling it (a Local channel on Asterisk, a
//! loopback one on FreeSWITCH). Each test checks where the caller ends up, the event log, the
//! busy lamp, and that ringbacks go to the phone. Each scenario is written once against
//! [`Testbed`] (the phone's steps in `support::gesture`) and run on each PBX.

use callpark_testkit as support;

use std::time::Duration;

use support::gesture::*;
use support::testbed::*;
use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

async fn asterisk() -> AsteriskTestbed {
    AsteriskTestbed::take().await
}

async fn freeswitch() -> FreeswitchTestbed {
    FreeswitchTestbed::take().await
}

/// The scenarios' configuration: the pool's first nine orbits, and `park`.
fn setup(pbx: &impl Testbed, park: &str) -> Setup {
    let mut setup = pbx.setup(park);
    pbx.limit_orbits(&mut setup, 1, 9);
    setup
}

/// A short pickup timeout, so the ringback comes within the test.
const RINGS_SOON: &str =
    "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"8s\"\n";
/// A pickup timeout that does not fire during the test.
const RINGS_LATER: &str =
    "pickup_timeout = \"60s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"8s\"\n";
/// Attended transfer to the park code: the orbit the consultation heard is handed to the
/// caller (not freed and given again: a lower orbit freed meanwhile is not taken), with the
/// phone as its parker; one park in the log; the phone is rung back at the pickup timeout.
async fn attended_transfer_to_the_park_code(pbx: &impl Testbed) {
    let lamps = pbx.mark();
    let cp = Callpark::start(&setup(pbx, RINGS_SOON)).await;
    let alice = alice(pbx).await;
    alice.auto("answer").await;
    // Someone holds the first orbit while alice consults, and leaves before she transfers.
    let blocker = pbx.dial_park("Blocker", "900").await;
    let c1 = alice_talks_to_carol(pbx, &alice).await;
    let from = cp.log_rows().await.len();
    let (c2, orbit) = consult(pbx, &cp, &alice, c1, "park").await;
    assert_eq!(orbit, pbx.orbit(2), "the lowest free orbit, as heard");
    pbx.wait_lamp(lamps, &orbit, true).await;
    hang_up_blocker(pbx, &cp, &blocker).await;

    let mark = alice.mark();
    alice.xfer_replaces(c1, c2).await;
    let call = carols_park(&cp).await;
    assert_eq!(
        call.orbit.map(|o| o.to_string()).as_deref(),
        Some(orbit.as_str()),
        "the caller takes the orbit the consultation heard, not the one freed meanwhile"
    );
    assert!(
        pbx.is_alice(call.parker.endpoint.as_deref()),
        "the phone is the parker: {:?}",
        call.parker
    );
    // The consultation is released and the phone's first call ends.
    alice
        .wait(mark, "the consultation released", S(10), |e| {
            is_state(e, c2, "DISCONNECTED")
        })
        .await;
    let kinds = log_since(&cp, from).await;
    let parks: Vec<_> = kinds
        .iter()
        .filter(|(k, _, o)| k == "parked" && o.as_deref() == Some(orbit.as_str()))
        .collect();
    assert_eq!(parks.len(), 1, "one park of {orbit}: {kinds:?}");
    assert!(
        kinds
            .iter()
            .any(|(k, ch, _)| k == "handed_over" && ch == call.channel.as_str()),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|(k, _, _)| k == "abandoned").count(),
        1,
        "nothing abandoned but the blocker: {kinds:?}"
    );
    // The lamp stays lit.
    pbx.wait_lamp(lamps, &orbit, true).await;

    // The pickup timeout rings the phone that transferred.
    let mark = alice.mark();
    let inc = alice.wait_incoming(mark, S(20)).await;
    let rb = inc["call"].as_u64().unwrap();
    alice.wait_state_since(mark, rb, "CONFIRMED", S(10)).await;
    cp.wait_log(call.channel.as_str(), "reconnected", S(10))
        .await;
    alice.quit().await;
}

/// Hangs up the blocker, a call parked on the first orbit by a plain park (a phone that
/// dialled the park code), once it is parked; waits until its orbit is free.
async fn hang_up_blocker(pbx: &impl Testbed, cp: &Callpark, blocker: &Chan) {
    wait_for("the blocker parked", S(10), || async {
        cp.parked()
            .await
            .into_iter()
            .find(|c| c.caller.number == "900")
    })
    .await;
    pbx.hang_up(&blocker.id).await;
    wait_for("the blocker gone", S(10), || async {
        (!cp.parked().await.iter().any(|c| c.caller.number == "900")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn asterisk_attended_transfer_to_the_park_code() {
    attended_transfer_to_the_park_code(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_attended_transfer_to_the_park_code() {
    attended_transfer_to_the_park_code(&freeswitch().await).await;
}

/// Attended transfer to a free orbit: the consultation is held there hearing it (not told
/// "orbit empty"), and the REFER parks the caller on exactly that orbit.
async fn attended_transfer_to_an_orbit(pbx: &impl Testbed) {
    let lamps = pbx.mark();
    let cp = Callpark::start(&setup(pbx, RINGS_LATER)).await;
    let alice = alice(pbx).await;
    alice.auto("answer").await;
    let c1 = alice_talks_to_carol(pbx, &alice).await;
    let from = cp.log_rows().await.len();
    let target = pbx.orbit(5);
    let (c2, orbit) = consult(pbx, &cp, &alice, c1, &target).await;
    assert_eq!(orbit, target);
    let kinds = log_since(&cp, from).await;
    assert!(
        !kinds.iter().any(|(k, _, _)| k == "orbit_empty"),
        "{kinds:?}"
    );
    alice.xfer_replaces(c1, c2).await;
    let call = carols_park(&cp).await;
    assert_eq!(call.orbit.map(|o| o.to_string()), Some(target.clone()));
    assert!(
        pbx.is_alice(call.parker.endpoint.as_deref()),
        "{:?}",
        call.parker
    );
    pbx.wait_lamp(lamps, &target, true).await;
    let kinds = log_since(&cp, from).await;
    assert_eq!(
        kinds.iter().filter(|(k, _, _)| k == "parked").count(),
        1,
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|(k, _, _)| k == "handed_over"),
        "{kinds:?}"
    );
    // Dialling the orbit now retrieves it.
    let mark = alice.mark();
    let r = alice.call(&pbx.sip_uri(&target)).await;
    alice.wait_state_since(mark, r, "CONFIRMED", S(10)).await;
    cp.wait_log(call.channel.as_str(), "retrieved", S(10)).await;
    alice.quit().await;
}

#[tokio::test]
async fn asterisk_attended_transfer_to_an_orbit() {
    attended_transfer_to_an_orbit(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_attended_transfer_to_an_orbit() {
    attended_transfer_to_an_orbit(&freeswitch().await).await;
}

/// A consultation the phone hangs up instead of transferring frees its orbit at once; the
/// caller stays with the phone.
async fn consultation_abandoned(pbx: &impl Testbed) {
    let lamps = pbx.mark();
    let cp = Callpark::start(&setup(pbx, RINGS_LATER)).await;
    let alice = alice(pbx).await;
    alice.auto("answer").await;
    let c1 = alice_talks_to_carol(pbx, &alice).await;
    let (c2, orbit) = consult(pbx, &cp, &alice, c1, "park").await;
    alice.hangup(c2).await;
    wait_for("the orbit free again", S(5), || async {
        cp.parked().await.is_empty().then_some(())
    })
    .await;
    // The lamp goes out.
    pbx.wait_lamp(lamps, &orbit, false).await;
    // Carol is still on alice's first call, which comes off hold.
    alice.unhold(c1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !alice
            .events()
            .iter()
            .any(|e| is_state(e, c1, "DISCONNECTED")),
        "the caller stays with the phone"
    );
    alice.quit().await;
}

#[tokio::test]
async fn asterisk_consultation_hung_up_frees_its_orbit() {
    consultation_abandoned(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_consultation_hung_up_frees_its_orbit() {
    consultation_abandoned(&freeswitch().await).await;
}

/// The phone deflects a ringing call to the park code (302, its Forward key): the caller is
/// parked, the phone is its parker, told the orbit, and rung back.
async fn deflect_to_the_park_code(pbx: &impl Testbed) {
    let lamps = pbx.mark();
    let cp = Callpark::start(&setup(pbx, RINGS_SOON)).await;
    let alice = alice(pbx).await;
    alice
        .auto(&format!("redirect {}", pbx.sip_uri("park")))
        .await;
    let mark = alice.mark();
    carol_calls_alice(pbx).await;
    let call = carols_park(&cp).await;
    assert!(
        pbx.is_alice(call.parker.endpoint.as_deref()),
        "the deflecting phone is the parker: {:?}",
        call.parker
    );
    let orbit = call.orbit.unwrap().to_string();
    pbx.wait_lamp(lamps, &orbit, true).await;
    let msg = alice
        .wait(mark, "the orbit told to the phone", S(10), |e| {
            support::phone::ev_name(e) == "message"
        })
        .await;
    assert!(msg["body"].as_str().unwrap_or("").contains(&orbit), "{msg}");
    // The ringback reaches the phone, which answers it this time.
    alice.auto("answer").await;
    let mark = alice.mark();
    let inc = alice.wait_incoming(mark, S(20)).await;
    let rb = inc["call"].as_u64().unwrap();
    alice.wait_state_since(mark, rb, "CONFIRMED", S(10)).await;
    cp.wait_log(call.channel.as_str(), "reconnected", S(10))
        .await;
    let kinds = log_since(&cp, 0).await;
    assert!(
        !kinds.iter().any(|(k, _, _)| k == "disconnected"),
        "{kinds:?}"
    );
    alice.quit().await;
}

#[tokio::test]
async fn asterisk_deflect_to_the_park_code() {
    deflect_to_the_park_code(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_deflect_to_the_park_code() {
    deflect_to_the_park_code(&freeswitch().await).await;
}

/// FreeSWITCH's own attended transfer (`att_xfer`, bound to a key as the vanilla dialplan
/// binds `*4`): its consultation is a loopback call to the park code placed by the phone's
/// session; it parks there hearing its orbit, with the phone as parker, and the phone's
/// hang-up connects the caller to it. The phone is rung back.
#[tokio::test]
async fn freeswitch_att_xfer_to_the_park_code() {
    let pbx = freeswitch().await;
    let lamps = pbx.mark();
    let cp = Callpark::start(&setup(&pbx, RINGS_SOON)).await;
    let alice = alice(&pbx).await;
    alice.auto("answer").await;
    let mark = alice.mark();
    let r = pbx
        .esl
        .bgapi(&format!(
            "originate {{origination_caller_id_name=Carol,origination_caller_id_number=5551234,attxfer_dest=loopback/park/{ctx}}}loopback/attxfer-to-user-alice/{ctx} &park()",
            ctx = support::fs::fb("CONTEXT")
        ))
        .await;
    assert!(r.contains("+OK"), "originate: {r}");
    let c1 = alice.wait_incoming(mark, S(10)).await["call"]
        .as_u64()
        .unwrap();
    alice.wait_state_since(mark, c1, "CONFIRMED", S(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice.dtmf(c1, "*4").await;
    let held = wait_for("the consultation parked", S(10), || async {
        cp.parked().await.into_iter().next()
    })
    .await;
    assert!(
        pbx.is_alice(held.parker.endpoint.as_deref()),
        "the phone whose att_xfer placed the consultation parks: {:?}",
        held.parker
    );
    let orbit = held.orbit.unwrap().to_string();
    pbx.wait_lamp(lamps, &orbit, true).await;
    // The phone hangs up: att_xfer connects the caller to the consultation, still parked.
    tokio::time::sleep(S(2)).await;
    alice.hangup(c1).await;
    tokio::time::sleep(S(1)).await;
    let still = cp.wait_parked_on(&orbit).await;
    assert_eq!(still.channel, held.channel);
    // The pickup timeout rings the phone, which answers.
    let mark = alice.mark();
    let inc = alice.wait_incoming(mark, S(20)).await;
    let rb = inc["call"].as_u64().unwrap();
    alice.wait_state_since(mark, rb, "CONFIRMED", S(10)).await;
    cp.wait_log(held.channel.as_str(), "reconnected", S(10))
        .await;
    alice.quit().await;
}

/// Whether the PBX has no channel left: every leg of the scenario's calls ended.
async fn nobody_left(pbx: &impl Testbed, what: &str) {
    wait_for(what, S(10), || async {
        pbx.channels().await.is_empty().then_some(())
    })
    .await;
}

/// The parker answers its ringback and hangs up at once: that ends the call for the caller
/// too, as the end of any call does. The caller is never left alive and alone in silence.
async fn ringback_answered_then_hung_up(pbx: &impl Testbed) {
    let lamps = pbx.mark();
    let cp = Callpark::start(&setup(pbx, RINGS_SOON)).await;
    let alice = alice(pbx).await;
    alice.auto("answer").await;
    let c1 = alice_talks_to_carol(pbx, &alice).await;
    alice.xfer(c1, &pbx.sip_uri("park")).await;
    let call = carols_park(&cp).await;
    assert!(
        pbx.is_alice(call.parker.endpoint.as_deref()),
        "the transferring phone is the parker: {:?}",
        call.parker
    );
    let orbit = call.orbit.unwrap().to_string();
    pbx.wait_lamp(lamps, &orbit, true).await;

    let mark = alice.mark();
    let inc = alice.wait_incoming(mark, S(20)).await;
    let rb = inc["call"].as_u64().unwrap();
    alice.wait_state_since(mark, rb, "CONFIRMED", S(10)).await;
    cp.wait_log(call.channel.as_str(), "reconnected", S(10))
        .await;
    alice.hangup(rb).await;
    pbx.wait_gone(
        "the caller, once the parker hung up",
        call.channel.as_str(),
        S(10),
    )
    .await;
    nobody_left(pbx, "every leg of the call gone").await;
    assert!(cp.parked().await.is_empty(), "{:?}", cp.parked().await);
    pbx.wait_lamp(lamps, &orbit, false).await;
    let kinds = log_since(&cp, 0).await;
    assert!(
        !kinds
            .iter()
            .any(|(k, _, _)| k == "disconnected" || k == "abandoned"),
        "a conversation that ended, not a park that failed: {kinds:?}"
    );
    alice.quit().await;
}

#[tokio::test]
async fn asterisk_ringback_answered_then_hung_up_ends_the_call() {
    ringback_answered_then_hung_up(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_ringback_answered_then_hung_up_ends_the_call() {
    ringback_answered_then_hung_up(&freeswitch().await).await;
}

/// RTP packets alice receives and sends on `call` over a second: both must flow.
async fn audio_flows(alice: &support::phone::Phone, call: u64, when: &str) {
    let (rx0, tx0) = alice.rtp(call).await;
    tokio::time::sleep(S(1)).await;
    let (rx1, tx1) = alice.rtp(call).await;
    // 50 packets a second each way (20 ms frames, silence sent too: VAD off).
    assert!(
        rx1 - rx0 >= 25 && tx1 - tx0 >= 25,
        "two-way audio {when}: {} packets in, {} out in a second",
        rx1 - rx0,
        tx1 - tx0
    );
}

/// After a retrieve, the retriever holds (re-INVITE sendonly) and resumes (sendrecv): audio
/// still flows both ways, counted at the SIP phone. The caller echoes, so what the phone
/// hears back went through the parked call's whole path.
async fn hold_and_resume_after_a_retrieve(pbx: &impl Testbed) {
    let lamps = pbx.mark();
    let cp = Callpark::start(&setup(pbx, RINGS_LATER)).await;
    let alice = alice(pbx).await;
    alice.auto("answer").await;
    let mark = alice.mark();
    pbx.call_alice_echo("Carol", CALLER_NUMBER).await;
    let c1 = alice.wait_incoming(mark, S(10)).await["call"]
        .as_u64()
        .unwrap();
    alice.wait_state_since(mark, c1, "CONFIRMED", S(10)).await;
    pbx.wait_phone_bridged().await;
    alice.xfer(c1, &pbx.sip_uri("park")).await;
    let call = carols_park(&cp).await;
    let orbit = call.orbit.unwrap().to_string();

    pbx.wait_lamp(lamps, &orbit, true).await;
    let mark = alice.mark();
    let r = alice.call(&pbx.sip_uri(&orbit)).await;
    alice.wait_state_since(mark, r, "CONFIRMED", S(10)).await;
    cp.wait_log(call.channel.as_str(), "retrieved", S(10)).await;
    pbx.wait_lamp(lamps, &orbit, false).await;
    audio_flows(&alice, r, "after the retrieve").await;
    alice.hold(r).await;
    tokio::time::sleep(S(1)).await;
    alice.unhold(r).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    audio_flows(&alice, r, "after hold and resume").await;
    assert!(
        pbx.exists(call.channel.as_str()).await,
        "the caller is there"
    );
    alice.hangup(r).await;
    nobody_left(pbx, "the call ended").await;
    alice.quit().await;
}

#[tokio::test]
async fn asterisk_hold_and_resume_after_a_retrieve_keep_two_way_audio() {
    hold_and_resume_after_a_retrieve(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_hold_and_resume_after_a_retrieve_keep_two_way_audio() {
    hold_and_resume_after_a_retrieve(&freeswitch().await).await;
}

/// A call sent to the park code before it was answered (in early media: the caller hears a
/// 183's audio), by the PBX itself as an operator panel does: callpark answers it and parks
/// it; the caller's phone sees the call answered, not left ringing.
async fn park_in_early_media(pbx: &impl Testbed) {
    let lamps = pbx.mark();
    let cp = Callpark::start(&setup(pbx, RINGS_LATER)).await;
    let alice = alice(pbx).await;
    let mark = alice.mark();
    let c = alice.call(&pbx.sip_uri("early")).await;
    alice.wait_state_since(mark, c, "EARLY", S(10)).await;
    let (id, name) = wait_for("alice's call on the PBX", S(10), || async {
        pbx.channels()
            .await
            .into_iter()
            .find(|(_, name)| name.contains("alice"))
    })
    .await;
    let from = cp.log_rows().await.len();
    pbx.redirect(
        &Chan {
            id: id.clone(),
            name,
        },
        "park",
    )
    .await;
    alice.wait_state_since(mark, c, "CONFIRMED", S(10)).await;
    let parked = wait_for("the call parked", S(10), || async {
        cp.parked()
            .await
            .into_iter()
            .find(|p| p.channel.as_str() == id && p.state.name() == "parked")
    })
    .await;
    let orbit = parked.orbit.unwrap().to_string();
    pbx.wait_lamp(lamps, &orbit, true).await;
    let kinds = log_since(&cp, from).await;
    assert!(
        kinds.iter().any(|(k, ch, _)| k == "parked" && *ch == id),
        "{kinds:?}"
    );
    // Answered, it is a parked call like any other: dialling its orbit retrieves it.
    let retriever = pbx.dial_orbit(&orbit, "Dave", "202").await;
    cp.wait_log(&id, "retrieved", S(10)).await;
    pbx.wait_bridged("the retriever and the caller", &retriever.id, &id)
        .await;
    pbx.wait_lamp(lamps, &orbit, false).await;
    alice.hangup(c).await;
    alice.quit().await;
}

#[tokio::test]
async fn asterisk_park_in_early_media_answers_the_call() {
    park_in_early_media(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_park_in_early_media_answers_the_call() {
    park_in_early_media(&freeswitch().await).await;
}

/// Park and page: a call parked in a lot that pages is announced at the page destination (the
/// SIP phone, which answers on the auto-answer headers), again every `page_interval`, and the
/// page in progress ends when the call is retrieved; no page follows.
async fn park_and_page(pbx: &impl Testbed) {
    let lamps = pbx.mark();
    let park = format!(
        "{RINGS_LATER}page = \"{}\"\npage_repeat = 2\npage_interval = \"8s\"\n",
        pbx.alice_dial()
    );
    let cp = Callpark::start(&setup(pbx, &park)).await;
    let alice = alice(pbx).await;
    alice.auto("answer").await;
    let mark = alice.mark();
    let carol = pbx.dial_park("Carol", CALLER_NUMBER).await;
    let call = wait_for("Carol's call parked", S(10), || async {
        cp.parked()
            .await
            .into_iter()
            .find(|p| p.channel.as_str() == carol.id)
    })
    .await;
    let orbit = call.orbit.unwrap().to_string();
    pbx.wait_lamp(lamps, &orbit, true).await;

    // The first page: the phone is told to answer by itself, sees the orbit as the caller,
    // hears the announcement, and the page hangs up when it has been spoken.
    let inc = alice.wait_incoming(mark, S(10)).await;
    let headers = &inc["headers"];
    let auto_answer = headers["call-info"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| v.as_str().is_some_and(|v| v.contains("answer-after=0")));
    assert!(auto_answer, "no Call-Info answer-after=0: {headers}");
    assert_eq!(inc["caller_id"]["number"], orbit.as_str(), "{inc}");
    let p1 = inc["call"].as_u64().unwrap();
    alice.wait_state_since(mark, p1, "CONFIRMED", S(10)).await;
    // After the second the PBX leaves for the phone's speaker to open (Asterisk sends no RTP
    // while it waits).
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (rx0, _) = alice.rtp(p1).await;
    tokio::time::sleep(S(1)).await;
    let (rx1, _) = alice.rtp(p1).await;
    assert!(
        rx1 - rx0 >= 25,
        "the announcement reaches the phone: {} packets",
        rx1 - rx0
    );
    alice
        .wait_state_since(mark, p1, "DISCONNECTED", S(15))
        .await;
    assert!(
        pbx.exists(&carol.id).await,
        "the page never touches the parked call"
    );
    let stored = cp.parked().await;
    let stored = stored
        .iter()
        .find(|p| p.channel.as_str() == carol.id)
        .unwrap();
    assert_eq!(
        stored.page.sent, 1,
        "the page is kept with the call: {stored:?}"
    );
    assert!(stored.page.next.is_some());

    // The second, `page_interval` after the first; retrieved while it speaks, it ends.
    let mark = alice.mark();
    let inc = alice.wait_incoming(mark, S(10)).await;
    let p2 = inc["call"].as_u64().unwrap();
    alice.wait_state_since(mark, p2, "CONFIRMED", S(10)).await;
    let retriever = pbx.dial_orbit(&orbit, "Dave", "202").await;
    cp.wait_log(&carol.id, "retrieved", S(10)).await;
    pbx.wait_bridged("the retriever and the caller", &retriever.id, &carol.id)
        .await;
    alice.wait_state_since(mark, p2, "DISCONNECTED", S(3)).await;
    pbx.wait_lamp(lamps, &orbit, false).await;
    // No third page: the call was retrieved. (The interval is longer than an announcement,
    // about 6 s: pages do not overlap.)
    let mark = alice.mark();
    tokio::time::sleep(S(10)).await;
    assert!(
        !alice.events()[mark..]
            .iter()
            .any(|e| support::phone::ev_name(e) == "incoming"),
        "a page after the retrieve"
    );
    let kinds: Vec<String> = log_since(&cp, 0)
        .await
        .into_iter()
        .filter(|(_, ch, _)| *ch == carol.id)
        .map(|(k, _, _)| k)
        .collect();
    assert_eq!(
        kinds,
        ["parked", "paged", "paged", "retrieve_started", "retrieved"],
    );
    pbx.hang_up(&retriever.id).await;
    nobody_left(pbx, "the call ended").await;
    alice.quit().await;
}

#[tokio::test]
async fn asterisk_park_and_page_announces_repeats_and_stops_at_the_retrieve() {
    park_and_page(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_park_and_page_announces_repeats_and_stops_at_the_retrieve() {
    park_and_page(&freeswitch().await).await;
}

/// Carol's channel, the one alice's transfers send on: the Local half that dialled the phone
/// on Asterisk, the loopback half that bridged to it on FreeSWITCH. Waited for: FreeSWITCH
/// lists a channel a moment after its call is up.
async fn carols_channel(pbx: &impl Testbed) -> String {
    wait_for("Carol's channel listed", S(5), || async {
        pbx.channels()
            .await
            .into_iter()
            .find(|(_, name)| {
                (name.contains("to-sip-alice@calls") && name.ends_with(";2"))
                    || name == "loopback/to-user-alice-b"
            })
            .map(|(id, _)| id)
    })
    .await
}

/// A retrieve that arrives while an attended park is being completed (the phone's REFER with
/// Replaces on its way) gets the call or "orbit empty", never a half-bridged call: once the
/// race settles, the retriever talks to the caller, or it is gone and the caller is parked on
/// the orbit. The retrieve starts at a few offsets from the REFER, each a round.
async fn retrieve_racing_an_attended_park(pbx: &impl Testbed) {
    let cp = Callpark::start(&setup(pbx, RINGS_LATER)).await;
    let alice = alice(pbx).await;
    alice.auto("answer").await;
    let mut outcomes = Vec::new();
    for (round, offset_ms) in [0u64, 20, 60, 150].into_iter().enumerate() {
        let lamps = pbx.mark();
        let from = cp.log_rows().await.len();
        let c1 = alice_talks_to_carol(pbx, &alice).await;
        let carol = carols_channel(pbx).await;
        let (c2, orbit) = consult(pbx, &cp, &alice, c1, "park").await;
        alice.xfer_replaces(c1, c2).await;
        tokio::time::sleep(Duration::from_millis(offset_ms)).await;
        let retriever = pbx.dial_orbit(&orbit, "Dave", "202").await;
        // Settled: the retriever bridged to Carol, or gone with Carol parked on the orbit.
        let outcome = wait_for(
            &format!("round {round}: the race settled"),
            S(15),
            || async {
                assert!(
                    pbx.exists(&carol).await,
                    "round {round}: the caller was dropped"
                );
                if pbx.exists(&retriever.id).await {
                    pbx.bridged(&retriever.id, &carol)
                        .await
                        .then_some("retrieved")
                } else {
                    cp.parked()
                        .await
                        .iter()
                        .any(|c| {
                            c.channel.as_str() == carol
                                && c.state.name() == "parked"
                                && c.orbit.map(|o| o.to_string()).as_deref() == Some(orbit.as_str())
                        })
                        .then_some("orbit empty, the caller parked")
                }
            },
        )
        .await;
        // And it stays so: no bridge that falls apart a moment later.
        tokio::time::sleep(S(1)).await;
        assert!(
            pbx.exists(&carol).await,
            "round {round}: the caller dropped"
        );
        let kinds = log_since(&cp, from).await;
        if outcome == "retrieved" {
            assert!(
                pbx.bridged(&retriever.id, &carol).await,
                "round {round}: the retrieve's bridge fell apart"
            );
            assert!(cp.parked().await.is_empty(), "{:?}", cp.parked().await);
            pbx.wait_lamp(lamps, &orbit, false).await;
            assert!(
                kinds
                    .iter()
                    .any(|(k, ch, _)| k == "retrieved" && *ch == carol),
                "round {round}: {kinds:?}"
            );
        } else {
            pbx.wait_lamp(lamps, &orbit, true).await;
            assert!(
                kinds.iter().any(|(k, _, _)| k == "orbit_empty"),
                "round {round}: {kinds:?}"
            );
        }
        // One park of the caller, on the orbit the consultation heard; nothing abandoned.
        assert!(
            kinds.iter().any(|(k, ch, o)| k == "handed_over"
                && *ch == carol
                && o.as_deref() == Some(orbit.as_str())),
            "round {round}: {kinds:?}"
        );
        assert!(
            !kinds.iter().any(|(k, _, _)| k == "abandoned"),
            "round {round}: {kinds:?}"
        );
        outcomes.push(outcome);
        for (id, _) in pbx.channels().await {
            pbx.hang_up(&id).await;
        }
        nobody_left(pbx, "the round's calls ended").await;
        wait_for("callpark holds nothing", S(10), || async {
            cp.parked().await.is_empty().then_some(())
        })
        .await;
    }
    eprintln!("{}: {outcomes:?}", pbx.name());
    alice.quit().await;
}

#[tokio::test]
async fn asterisk_retrieve_racing_an_attended_park_gets_the_call_or_orbit_empty() {
    retrieve_racing_an_attended_park(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_retrieve_racing_an_attended_park_gets_the_call_or_orbit_empty() {
    retrieve_racing_an_attended_park(&freeswitch().await).await;
}
