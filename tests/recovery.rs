//! callpark stopped, killed, frozen or cut off from its PBX, end to end on both real testbeds:
//! each scenario is written once against [`Testbed`] and run on Asterisk and on FreeSWITCH.
//! Nothing parked is lost, timers keep their deadlines, and calls that changed meanwhile are
//! found as they are when callpark is back.

use callpark_testkit as support;

use std::time::Duration;

use support::testbed::*;
use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

async fn asterisk() -> AsteriskTestbed {
    AsteriskTestbed::take().await
}

async fn freeswitch() -> FreeswitchTestbed {
    FreeswitchTestbed::take().await
}

async fn sigkill_with_20_parked_calls_loses_nothing(pbx: &impl Testbed) {
    let mut cp = Callpark::start(&pbx.setup(
        "pickup_timeout = \"25s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"10s\"\n",
    ))
    .await;
    let mut callers = Vec::new();
    for i in 1..=20 {
        let caller = pbx
            .park_by_transfer(&format!("p{i}"), &format!("C{i}"), &format!("55500{i:02}"))
            .await;
        cp.wait_parked_on(&pbx.orbit(i)).await;
        callers.push(caller);
    }
    let mut before = cp.parked().await;
    before.sort_by_key(|c| c.orbit);
    assert_eq!(before.len(), 20);

    cp.kill();
    tokio::time::sleep(S(2)).await;
    for c in &callers {
        assert!(
            pbx.exists(&c.id).await,
            "{} keeps the parked channel",
            pbx.name()
        );
    }
    cp.spawn().await;

    let mut after = cp.parked().await;
    after.sort_by_key(|c| c.orbit);
    assert_eq!(
        before, after,
        "same calls, same orbits, same deadlines after the restart"
    );

    // Retrievable after the restart.
    let retriever = pbx.dial_orbit(&pbx.orbit(5), "Dave", "202").await;
    pbx.wait_bridged(
        "orbit 5 retrieved after the restart",
        &callers[4].id,
        &retriever.id,
    )
    .await;

    // Every other call rings its parker back at the deadline stored before the kill.
    let pending: Vec<_> = before
        .iter()
        .filter(|c| c.channel.as_str() != callers[4].id)
        .collect();
    let last = pending.iter().map(|c| c.deadline).max().unwrap();
    let wait = (last - callpark::service::now_ms()).max(0) as u64 + 3_000;
    for c in &pending {
        cp.wait_log(
            c.channel.as_str(),
            "ringback_started",
            Duration::from_millis(wait),
        )
        .await;
    }
    let rows = cp.log_rows().await;
    for c in &pending {
        let at = rows
            .iter()
            .find(|r| r.kind == "ringback_started" && r.channel == c.channel.as_str())
            .unwrap()
            .at;
        assert!(
            (at - c.deadline).abs() < 1_500,
            "ringback of {} at {at}, deadline {}",
            c.channel,
            c.deadline
        );
    }
    for c in &pending {
        cp.wait_log(c.channel.as_str(), "reconnected", S(15)).await;
    }
    assert!(cp.parked().await.is_empty());
}

#[tokio::test]
async fn asterisk_sigkill_with_20_parked_calls_loses_nothing_and_timers_keep_their_deadlines() {
    sigkill_with_20_parked_calls_loses_nothing(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_sigkill_with_20_parked_calls_loses_nothing_and_timers_keep_their_deadlines() {
    sigkill_with_20_parked_calls_loses_nothing(&freeswitch().await).await;
}

/// Two calls parked; the PBX connection lost (cut, or silent without closing: a hung PBX, a
/// path that drops everything, noticed within a bounded time by a probe nobody answers); one
/// parked caller hangs up meanwhile; the connection back: reconciliation ends the call that
/// vanished and frees its orbit, the other is untouched.
async fn outage_loses_nothing(pbx: &impl Testbed, outage: Outage) {
    let cutter = Cutter::start(pbx.pbx_addr()).await;
    let mut setup = pbx.setup("pickup_timeout = \"60s\"\n");
    pbx.connect_through(&mut setup, cutter.port);
    let cp = Callpark::start(&setup).await;
    let stays = pbx.park_by_transfer("alice", "C1", "5550001").await;
    cp.wait_parked_on(&pbx.orbit(1)).await;
    let leaves = pbx.park_by_transfer("bob", "C2", "5550002").await;
    cp.wait_parked_on(&pbx.orbit(2)).await;

    let link = pbx.link();
    let connected = format!("connected to {link}");
    let connects = cp.log_text().matches(&connected).count();
    let began = std::time::Instant::now();
    match outage {
        Outage::Cut => {
            cutter.cut();
            let lost = format!("{link} connection lost");
            wait_for("callpark to notice the lost connection", S(10), || async {
                cp.log_text().contains(&lost).then_some(())
            })
            .await;
        }
        Outage::Silence => {
            cutter.freeze();
            let bound = callpark::pbx::QUIET + callpark::pbx::PROBE_TIMEOUT;
            let silent = format!("{link} did not answer for");
            wait_for("callpark to notice the silence", bound + S(3), || async {
                cp.log_text().contains(&silent).then_some(())
            })
            .await;
            assert!(
                began.elapsed() >= callpark::pbx::QUIET,
                "not before it was quiet"
            );
        }
    }
    // While callpark cannot hear the PBX, one parked caller hangs up.
    pbx.hang_up(&leaves.id).await;
    tokio::time::sleep(S(2)).await;
    let mark = pbx.mark();
    cutter.restore();
    wait_for("callpark to reconnect", S(20), || async {
        (cp.log_text().matches(&connected).count() > connects).then_some(())
    })
    .await;

    cp.wait_log(&leaves.id, "abandoned", S(5)).await;
    let parked = cp.parked().await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].channel.as_str(), stays.id);
    pbx.wait_lamp(mark, &pbx.orbit(2), false).await;
    let retriever = pbx.dial_orbit(&pbx.orbit(1), "Dave", "202").await;
    pbx.wait_bridged(
        "the first orbit retrieved after the reconnect",
        &stays.id,
        &retriever.id,
    )
    .await;
}

#[tokio::test]
async fn asterisk_ari_connection_lost_and_back_without_restart_loses_nothing() {
    outage_loses_nothing(&asterisk().await, Outage::Cut).await;
}

#[tokio::test]
async fn freeswitch_event_socket_cut_and_back_without_restart_loses_nothing() {
    outage_loses_nothing(&freeswitch().await, Outage::Cut).await;
}

#[tokio::test]
async fn asterisk_silent_ari_is_noticed_and_reconnected_with_the_calls_reconciled() {
    outage_loses_nothing(&asterisk().await, Outage::Silence).await;
}

#[tokio::test]
async fn freeswitch_silent_event_socket_is_noticed_and_reconnected_with_the_calls_reconciled() {
    outage_loses_nothing(&freeswitch().await, Outage::Silence).await;
}

/// While callpark is not connected (a restart, say), the include does not leave a call waiting
/// in silence: a park goes to on_timeout (the operator, `0@from-internal` in the example
/// configuration) after "parking failed", and a retriever hears that the orbit is empty. On
/// Asterisk Stasis() fails at once; on FreeSWITCH the include's scheduled transfer fires.
async fn while_callpark_is_down_parks_go_to_the_operator(pbx: &impl Testbed) {
    // Asterisk: no callpark started. FreeSWITCH: one that took the include's turn, then died.
    if let Side::Freeswitch(_) = pbx.side() {
        let mut cp = Callpark::start(&pbx.setup(&Setup::default().park)).await;
        cp.kill();
    }
    match pbx.side() {
        // A caller who dialled the park code.
        Side::Asterisk(ari, _) => {
            let ch = pbx.dial_park("Zed", "209").await;
            let at_operator = format!("Executing [0@from-internal:1] Goto(\"{}\"", ch.name);
            wait_for("told, then sent to the operator", S(10), || async {
                (pbx.heard_parking_failed(&ch) && asterisk_log().contains(&at_operator))
                    .then_some(())
            })
            .await;
            let now = ari.get(&format!("/channels/{}", ch.id)).await;
            assert_eq!(
                now["dialplan"]["context"], "phones",
                "the operator answered: {now}"
            );
        }
        // A call blind-transferred to the park code.
        Side::Freeswitch(esl) => {
            let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
            wait_for("the park sent to the operator", S(10), || async {
                (esl.getvar(&caller.id, "destination_number").await == "0"
                    || support::fs::fs_log().lines().any(|l| {
                        l.starts_with(caller.id.as_str())
                            && l.contains("Transfer")
                            && l.contains("to XML[0@from-internal]")
                    }))
                .then_some(())
            })
            .await;
            assert!(
                pbx.heard_parking_failed(&caller),
                "the caller heard that parking failed"
            );
            assert!(
                pbx.exists(&caller.id).await,
                "the call is alive at the operator"
            );
        }
    }

    let retriever = pbx.dial_orbit(&pbx.orbit(1), "Dave", "202").await;
    wait_for("the retriever hears the orbit is empty", S(10), || async {
        pbx.heard_orbit_empty(&retriever).then_some(())
    })
    .await;
    pbx.wait_gone("the retriever told and hung up", &retriever.id, S(15))
        .await;
}

#[tokio::test]
async fn asterisk_while_callpark_is_down_parks_go_to_the_operator_and_retrieves_hear_empty() {
    while_callpark_is_down_parks_go_to_the_operator(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_while_callpark_is_down_parks_go_to_the_operator_and_retrieves_hear_empty() {
    while_callpark_is_down_parks_go_to_the_operator(&freeswitch().await).await;
}

/// Callpark frozen while a call is blind-transferred to the park code, then killed and started
/// again. The call was in callpark's hands (Asterisk: in the Stasis application; FreeSWITCH:
/// taken, its fallback transfer cancelled as callpark's take does first) but in no orbit; the
/// restarted callpark finds it there and parks it as if it had just arrived.
async fn a_park_taken_while_callpark_was_frozen_is_adopted_on_restart(pbx: &impl Testbed) {
    let mut cp = Callpark::start(&pbx.setup("pickup_timeout = \"60s\"\n")).await;
    cp.freeze();
    let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
    match pbx.side() {
        Side::Asterisk(ari, _) => {
            wait_for(
                "the call handed to the Stasis application",
                S(10),
                || async {
                    let c = ari.get(&format!("/channels/{}", caller.id)).await;
                    (c["dialplan"]["app_name"] == "Stasis").then_some(())
                },
            )
            .await;
            cp.kill();
            tokio::time::sleep(S(2)).await;
            let c = ari.get(&format!("/channels/{}", caller.id)).await;
            assert_eq!(
                c["dialplan"]["app_data"], "callpark,park,,,moh",
                "still in callpark's hands: {c}"
            );
        }
        Side::Freeswitch(esl) => {
            let row = |uuid: String| async move {
                esl.channels()
                    .await
                    .into_iter()
                    .find(|c| c["uuid"] == uuid.as_str())
            };
            wait_for("the include's hold music", S(5), || async {
                let r = row(caller.id.clone()).await?;
                (r["application"] == "playback").then_some(())
            })
            .await;
            // What callpark's take does first; it froze right after.
            let r = esl.api(&format!("sched_del {}", caller.id)).await;
            assert!(r.starts_with("+OK"), "sched_del: {r}");
            cp.kill();
            tokio::time::sleep(S(5)).await;
            let r = row(caller.id.clone())
                .await
                .expect("the call is still there");
            assert_eq!(r["application"], "playback", "on the include's music: {r}");
        }
    }
    assert!(cp.parked().await.is_empty(), "and unknown to the store");

    cp.spawn().await;
    let call = cp.wait_parked_on(&pbx.orbit(1)).await;
    assert_eq!(call.channel.as_str(), caller.id);
    assert_eq!(
        call.parker.endpoint.as_deref(),
        Some(pbx.parker("alice").as_str()),
        "the parker read from the channel, as for a park seen arriving"
    );
    assert!(
        cp.log_text()
            .contains("found in callpark's hands on connecting; adopting it"),
        "the log says the call was adopted"
    );
    let retriever = pbx.dial_orbit(&pbx.orbit(1), "Dave", "202").await;
    pbx.wait_bridged("the adopted call retrieved", &caller.id, &retriever.id)
        .await;
    cp.wait_log(&caller.id, "retrieved", S(5)).await;
}

#[tokio::test]
async fn asterisk_a_park_handed_over_while_callpark_was_frozen_then_killed_is_adopted_on_restart() {
    a_park_taken_while_callpark_was_frozen_is_adopted_on_restart(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_a_park_taken_then_lost_by_a_frozen_and_killed_callpark_is_adopted_on_restart() {
    a_park_taken_while_callpark_was_frozen_is_adopted_on_restart(&freeswitch().await).await;
}

/// A ringback answered while callpark is frozen, then killed: after the restart the answered
/// leg is bridged to the parked call at once, not left ringing out to "missed".
async fn a_ringback_answered_while_callpark_was_down_is_bridged(pbx: &impl Testbed) {
    let mut cp = Callpark::start(&pbx.setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"60s\"\n",
    ))
    .await;
    let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
    cp.wait_parked_on(&pbx.orbit(1)).await;
    // The parker's phone rings for 3 s before it answers: callpark is frozen by then.
    pbx.set_phone("alice", "answerafter3").await;
    // Due pickup_timeout (10 s) after the park, which was seen only just now: 10 s to wait
    // for it left no room for its commit on a loaded machine.
    cp.wait_log(&caller.id, "ringback_started", S(20)).await;
    let rb = leg_id(&caller.id, "rb1");
    wait_for("the ringback ringing", S(5), || async {
        pbx.ringing(&rb).await.then_some(())
    })
    .await;
    cp.freeze();
    wait_for(
        "the ringback answered and waiting for callpark",
        S(10),
        || async { pbx.answered_waiting(&rb).await.then_some(()) },
    )
    .await;
    cp.kill();
    assert!(
        !pbx.bridged(&caller.id, &rb).await,
        "nobody bridged it while callpark was down"
    );
    let started = std::time::Instant::now();
    cp.spawn().await;
    pbx.wait_bridged("the answered ringback bridged", &caller.id, &rb)
        .await;
    cp.wait_log(&caller.id, "reconnected", S(5)).await;
    assert!(
        started.elapsed() < S(20),
        "bridged at once, not after the ring time ran out"
    );
    assert!(cp.parked().await.is_empty());
}

#[tokio::test]
async fn asterisk_a_ringback_answered_while_callpark_was_down_is_bridged_after_the_restart() {
    a_ringback_answered_while_callpark_was_down_is_bridged(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_a_ringback_answered_while_callpark_was_down_is_bridged_after_the_restart() {
    a_ringback_answered_while_callpark_was_down_is_bridged(&freeswitch().await).await;
}
