//! The park state machine, path by path (Lync's behaviour), and property tests over random
//! interleavings of PBX events and timer expiries.

use std::collections::{HashMap, HashSet};

use callpark::orbit::{Orbit, OrbitRange, OrbitTable};
use callpark::park::*;
use proptest::prelude::*;

fn o(s: &str) -> Orbit {
    s.parse().unwrap()
}

fn ch(s: &str) -> ChannelId {
    ChannelId::new(s)
}

fn table(spans: &[&str]) -> OrbitTable {
    OrbitTable::new(
        spans
            .iter()
            .enumerate()
            .map(|(i, s)| OrbitRange {
                name: format!("r{i}"),
                span: s.parse().unwrap(),
                pool: "pbx".into(),
                lot: None,
            })
            .collect(),
    )
    .unwrap()
}

fn everyone() -> PolicySet {
    PolicySet::new(vec![
        PolicyRule::new("all", true, &[], &[".*".to_string()]).unwrap(),
    ])
}

fn core_with(settings: Settings, spans: &[&str]) -> ParkCore {
    ParkCore::new(settings, everyone(), PoolOrbits::new(&table(spans), "pbx"))
}

fn settings(attempts: u8, fallback: bool) -> Settings {
    Settings {
        pickup_timeout: 90_000,
        max_pickup_attempts: attempts,
        ringback_ring_time: 20_000,
        on_timeout: fallback.then(|| Destination::parse("exten:0@operator").unwrap()),
        moh: Moh::Class(None),
        bridge_timeout: 10_000,
        ..Settings::default()
    }
}

fn park_event(c: &str, user: &str) -> Event {
    Event::Park(ParkRequest {
        channel: ch(c),
        caller: Party {
            name: "Bob".into(),
            number: "200".into(),
        },
        parker: Parker {
            ids: vec![user.into()],
            endpoint: Some(format!("PJSIP/{user}")),
            display: user.into(),
        },
        announce_to: None,
        lot: None,
        orbit: None,
        replaces: None,
    })
}

fn announced(mut e: Event, to: &str) -> Event {
    if let Event::Park(ParkRequest { announce_to, .. }) = &mut e {
        *announce_to = Some(ch(to));
    }
    e
}

fn retrieve(c: &str, orbit: &str) -> Event {
    Event::Retrieve {
        channel: ch(c),
        orbit: o(orbit),
        by: Party {
            name: "Carol".into(),
            number: "300".into(),
        },
        dialler: Parker {
            ids: vec!["300".into()],
            endpoint: None,
            display: "carol".into(),
        },
    }
}

fn kinds(core: &mut ParkCore) -> Vec<LogKind> {
    core.drain_log().into_iter().map(|e| e.kind).collect()
}

fn originates(cmds: &[Command]) -> Vec<(ChannelId, LegPurpose)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Originate {
                channel, purpose, ..
            } => Some((channel.clone(), purpose.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn park_answers_holds_announces_and_lights_the_lamp() {
    let mut core = core_with(settings(1, false), &["*700-*702"]);
    let cmds = core.handle(1_000, announced(park_event("bob", "alice"), "alice-line"));
    assert_eq!(cmds[0], Command::Answer { channel: ch("bob") });
    assert!(cmds.contains(&Command::Lamp {
        orbit: o("*700"),
        state: LampState::InUse
    }));
    assert!(cmds.contains(&Command::Announce {
        channel: ch("alice-line"),
        orbit: o("*700")
    }));
    assert!(cmds.contains(&Command::StartMoh {
        channel: ch("bob"),
        moh: Moh::Class(None)
    }));
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::Notify { endpoint, text }
        if endpoint == "PJSIP/alice" && text.contains("*700")))
    );
    assert_eq!(core.next_deadline(), Some(91_000));
    assert_eq!(kinds(&mut core), vec![LogKind::Parked]);
    let changes = core.drain_changes();
    assert!(
        matches!(&changes[..], [Change::Upsert(c)] if c.orbit == Some(o("*700")) && c.deadline == 91_000)
    );
}

#[test]
fn music_on_hold_off_gives_silence() {
    let mut s = settings(1, false);
    s.moh = Moh::Off;
    let mut core = core_with(s, &["700-709"]);
    let cmds = core.handle(0, park_event("bob", "alice"));
    assert!(!cmds.iter().any(|c| matches!(c, Command::StartMoh { .. })));
}

#[test]
fn parked_then_retrieved_frees_the_orbit_and_notifies_the_parker() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    core.handle(0, park_event("bob", "alice"));
    let cmds = core.handle(5_000, retrieve("carol", "700"));
    assert!(cmds.contains(&Command::Bridge {
        parked: ch("bob"),
        other: ch("carol")
    }));
    assert!(cmds.contains(&Command::StopMoh { channel: ch("bob") }));
    // Orbit held until the bridge is up.
    assert!(core.call_on(o("700")).is_some());
    let cmds = core.handle(
        5_100,
        Event::Bridged {
            channel: ch("carol"),
        },
    );
    assert!(cmds.contains(&Command::Lamp {
        orbit: o("700"),
        state: LampState::Idle
    }));
    assert!(cmds.iter().any(
        |c| matches!(c, Command::Notify { text, .. } if text.contains("retrieved by Carol <300>"))
    ));
    assert!(core.call_on(o("700")).is_none());
    assert_eq!(core.next_deadline(), None);
    assert_eq!(
        kinds(&mut core),
        vec![
            LogKind::Parked,
            LogKind::RetrieveStarted,
            LogKind::Retrieved
        ]
    );
    // Freed: the next park takes the lowest orbit again.
    core.handle(6_000, park_event("dave", "alice"));
    assert_eq!(core.call(&ch("dave")).unwrap().orbit, Some(o("700")));
}

#[test]
fn timeout_rings_back_with_orbit_caller_id_and_parker_answers() {
    let mut core = core_with(settings(2, false), &["*701-*709"]);
    core.handle(0, park_event("bob", "alice"));
    let cmds = core.handle_timeout(90_000);
    let [
        Command::Originate {
            channel,
            target,
            caller_id,
            timeout_ms,
            purpose,
        },
        // The busy-lamp key blinks while the parker's phone rings.
        Command::Lamp {
            state: LampState::Ringing,
            ..
        },
    ] = &cmds[..]
    else {
        panic!("{cmds:?}")
    };
    assert_eq!(channel, &ch("bob").leg("rb1"));
    assert_eq!(target, &Target::Endpoint("PJSIP/alice".into()));
    // The orbit and whose call it is, with the caller's own number.
    assert_eq!(caller_id.name, "Parked *701: Bob");
    assert_eq!(caller_id.number, "200");
    assert_eq!(
        (*timeout_ms, purpose),
        (20_000, &LegPurpose::Ringback { attempt: 1 })
    );
    // The orbit stays retrievable while the parker's phone rings.
    assert!(core.call_on(o("*701")).is_some());
    let cmds = core.handle(
        95_000,
        Event::Answered {
            channel: ch("bob").leg("rb1"),
        },
    );
    assert!(cmds.contains(&Command::Bridge {
        parked: ch("bob"),
        other: ch("bob").leg("rb1")
    }));
    core.handle(95_100, Event::Bridged { channel: ch("bob") });
    assert!(core.call_on(o("*701")).is_none());
    assert_eq!(
        kinds(&mut core),
        vec![
            LogKind::Parked,
            LogKind::RingbackStarted,
            LogKind::Reconnected
        ]
    );
}

#[test]
fn missed_ringbacks_park_again_then_fallback_then_disconnect() {
    let mut core = core_with(settings(2, true), &["700-709"]);
    core.handle(0, park_event("bob", "alice"));
    assert_eq!(originates(&core.handle_timeout(90_000)).len(), 1);
    // Not answered within ring time: hung up, parked again for another pickup timeout.
    let cmds = core.handle_timeout(110_000);
    assert!(cmds.contains(&Command::Hangup {
        channel: ch("bob").leg("rb1")
    }));
    assert_eq!(core.call(&ch("bob")).unwrap().state, CallState::Parked);
    assert_eq!(core.next_deadline(), Some(200_000));
    let cmds = core.handle_timeout(200_000);
    assert_eq!(originates(&cmds)[0].1, LegPurpose::Ringback { attempt: 2 });
    // Busy this time: straight to the fallback, since both attempts are spent.
    let cmds = core.handle(
        201_000,
        Event::OriginateFailed {
            channel: ch("bob").leg("rb2"),
            reason: "busy".into(),
        },
    );
    let orig = originates(&cmds);
    assert_eq!(orig, vec![(ch("bob").leg("fb"), LegPurpose::Fallback)]);
    assert!(cmds.iter().any(|c| matches!(c, Command::Originate { target: Target::Destination(Destination::Exten { exten, context }), .. } if exten == "0" && context == "operator")));
    // Nobody at the fallback: disconnected, orbit freed.
    let cmds = core.handle_timeout(221_000);
    assert!(cmds.contains(&Command::Hangup {
        channel: ch("bob").leg("fb")
    }));
    assert!(cmds.contains(&Command::Hangup { channel: ch("bob") }));
    assert!(cmds.contains(&Command::Lamp {
        orbit: o("700"),
        state: LampState::Idle
    }));
    assert_eq!(
        kinds(&mut core),
        vec![
            LogKind::Parked,
            LogKind::RingbackStarted,
            LogKind::RingbackMissed,
            LogKind::RingbackStarted,
            LogKind::RingbackMissed,
            LogKind::FallbackStarted,
            LogKind::FallbackMissed,
            LogKind::Disconnected
        ]
    );
}

#[test]
fn fallback_answered_is_bridged() {
    let mut core = core_with(settings(1, true), &["700-709"]);
    core.handle(0, park_event("bob", "alice"));
    core.handle_timeout(90_000);
    core.handle_timeout(110_000);
    assert!(matches!(
        core.call(&ch("bob")).unwrap().state,
        CallState::Fallback { .. }
    ));
    let cmds = core.handle(
        111_000,
        Event::Answered {
            channel: ch("bob").leg("fb"),
        },
    );
    assert!(cmds.contains(&Command::Bridge {
        parked: ch("bob"),
        other: ch("bob").leg("fb")
    }));
    core.handle(
        111_100,
        Event::Bridged {
            channel: ch("bob").leg("fb"),
        },
    );
    assert_eq!(kinds(&mut core).last(), Some(&LogKind::FallbackAnswered));
    assert_eq!(core.calls().count(), 0);
}

#[test]
fn no_fallback_configured_disconnects_after_last_ringback() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    core.handle(0, park_event("bob", "alice"));
    core.handle_timeout(90_000);
    let cmds = core.handle_timeout(110_000);
    assert!(cmds.contains(&Command::Hangup { channel: ch("bob") }));
    assert_eq!(kinds(&mut core).last(), Some(&LogKind::Disconnected));
}

/// A park whose parker is on the line (the park code dialled): nobody to ring back.
fn dialled(c: &str) -> Event {
    let mut e = announced(park_event(c, "alice"), c);
    if let Event::Park(r) = &mut e {
        r.parker.endpoint = None;
    }
    e
}

#[test]
fn nobody_to_ring_back_goes_straight_to_the_fallback() {
    let mut core = core_with(settings(2, true), &["700-709"]);
    core.handle(0, dialled("k"));
    kinds(&mut core);
    let cmds = core.handle_timeout(90_000);
    assert_eq!(
        originates(&cmds),
        [(ch("k").leg("fb"), LegPurpose::Fallback)]
    );
    let log = core.drain_log();
    assert_eq!(log[0].kind, LogKind::FallbackStarted);
    assert!(
        log[0].detail.contains("nobody to ring back"),
        "{}",
        log[0].detail
    );
}

#[test]
fn nobody_to_ring_back_and_no_fallback_keeps_the_call_parked_until_retrieved() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    core.handle(0, dialled("k"));
    kinds(&mut core);
    let cmds = core.handle_timeout(90_000);
    assert!(cmds.is_empty(), "no ringback, no hang-up: {cmds:?}");
    let log = core.drain_log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].kind, LogKind::KeptParked);
    assert!(!log[0].kind.is_final());
    let call = core.call(&ch("k")).unwrap();
    assert_eq!(call.state, CallState::Parked);
    assert_eq!(call.deadline, NO_DEADLINE);
    assert_eq!(core.next_deadline(), None, "no timer runs for it");
    assert!(core.handle_timeout(100_000_000).is_empty());
    // Still retrievable, at any time.
    let cmds = core.handle(200_000_000, retrieve("r", "700"));
    assert!(cmds.contains(&Command::Bridge {
        parked: ch("k"),
        other: ch("r")
    }));
}

/// An attended transfer: the consultation `k` dialled the park code and heard its orbit;
/// the phone's REFER with Replaces swaps the caller `c` in.
fn replacing(c: &str, k: &str) -> Event {
    let mut e = park_event(c, "bob");
    if let Event::Park(r) = &mut e {
        r.caller = Party {
            name: "Carol".into(),
            number: "300".into(),
        };
        r.replaces = Some(ch(k));
    }
    e
}

/// A phone's REFER completes an attended park while someone who dialled the orbit is being
/// connected to the consultation: the caller takes the orbit, and the retriever gets the
/// caller (not "orbit empty", not a bridge to a consultation that is gone).
#[test]
fn a_retrieve_of_the_consultation_as_the_transfer_completes_gets_the_caller() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    core.handle(0, dialled("k"));
    // Dialled once the consultation has settled (it could be a call parked by dialling).
    let cmds = core.handle(SETTLE_TIME, retrieve("r", "700"));
    assert!(cmds.contains(&Command::Bridge {
        parked: ch("k"),
        other: ch("r")
    }));
    core.drain_log();
    let cmds = core.handle(SETTLE_TIME + 10, replacing("c", "k"));
    assert_eq!(core.call_on(o("700")).unwrap().channel, ch("c"));
    assert!(cmds.contains(&Command::Hangup { channel: ch("k") }));
    assert!(
        cmds.contains(&Command::Bridge {
            parked: ch("c"),
            other: ch("r")
        }),
        "{cmds:?}"
    );
    assert!(
        !cmds.iter().any(|c| matches!(c,
            Command::OrbitEmpty { channel, .. } | Command::Hangup { channel } if *channel == ch("r"))),
        "{cmds:?}"
    );
    assert_eq!(
        core.drain_log().iter().map(|e| e.kind).collect::<Vec<_>>(),
        [LogKind::HandedOver, LogKind::RetrieveStarted]
    );
    // The bridge comes up: retrieved, the orbit free.
    core.handle(SETTLE_TIME + 50, Event::Bridged { channel: ch("c") });
    assert!(core.call_on(o("700")).is_none());
    assert!(
        core.drain_log()
            .iter()
            .any(|e| e.kind == LogKind::Retrieved && e.channel == ch("c"))
    );
}

/// The other order: the consultation leaves (replaced) while someone who dialled its orbit is
/// being connected to it. The retriever hears the orbit empty; the orbit waits for the caller,
/// who takes it.
#[test]
fn a_consultation_replaced_while_retrieved_keeps_its_orbit_for_the_caller() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    core.handle(0, dialled("k"));
    core.handle(SETTLE_TIME, retrieve("r", "700"));
    let cmds = core.handle(SETTLE_TIME + 10, Event::Replaced { channel: ch("k") });
    assert_eq!(
        cmds,
        [Command::OrbitEmpty {
            channel: ch("r"),
            orbit: o("700")
        }]
    );
    assert_eq!(core.call(&ch("k")).unwrap().state, CallState::Replaced);
    core.handle(SETTLE_TIME + 20, replacing("c", "k"));
    let call = core.call_on(o("700")).unwrap();
    assert_eq!(
        (call.channel.clone(), call.state.clone()),
        (ch("c"), CallState::Parked)
    );
    // The retriever's hang-up after "orbit empty" touches nothing.
    assert!(
        core.handle(SETTLE_TIME + 30, Event::Hangup { channel: ch("r") })
            .is_empty()
    );
}

/// Dialled while a call parked by dialling is still settling (a phone's consultation whose
/// REFER is on its way): the retriever waits, is connected to the caller that takes the
/// consultation's place, and nobody is bridged to the consultation.
#[test]
fn a_retrieve_of_a_settling_consultation_waits_and_gets_the_caller() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    core.handle(0, dialled("k"));
    let cmds = core.handle(500, retrieve("r", "700"));
    assert!(
        !cmds
            .iter()
            .any(|c| matches!(c, Command::Bridge { .. } | Command::OrbitEmpty { .. })),
        "{cmds:?}"
    );
    assert!(core.knows(&ch("r")));
    assert_eq!(core.next_deadline(), Some(SETTLE_TIME));
    // Reported again (found on reconnecting): still one waiting retriever.
    assert!(core.handle(600, retrieve("r", "700")).is_empty());
    // The consultation goes (replaced), then the caller takes its place: the retriever gets it.
    assert!(
        core.handle(700, Event::Replaced { channel: ch("k") })
            .is_empty()
    );
    let cmds = core.handle(720, replacing("c", "k"));
    assert!(
        cmds.contains(&Command::Bridge {
            parked: ch("c"),
            other: ch("r")
        }),
        "{cmds:?}"
    );
    assert!(
        !cmds.iter().any(
            |c| matches!(c, Command::Bridge { parked, .. } | Command::Hangup { channel: parked } if *parked == ch("r"))
        )
    );
    // Its settle deadline is gone with the wait.
    assert!(core.handle_timeout(SETTLE_TIME).is_empty());

    // Dialled while the orbit is being handed over (after the consultation left, before the
    // caller came): it waits for the caller too.
    core.handle(SETTLE_TIME + 10, Event::Bridged { channel: ch("c") });
    core.handle(10_000, dialled("k2"));
    core.handle(10_100, Event::Replaced { channel: ch("k2") });
    assert!(core.handle(10_110, retrieve("r2", "700")).is_empty());
    let cmds = core.handle(10_130, replacing("c2", "k2"));
    assert!(
        cmds.contains(&Command::Bridge {
            parked: ch("c2"),
            other: ch("r2")
        }),
        "{cmds:?}"
    );
    // A hand-over that never completes: "orbit empty" when the orbit's wait ends.
    core.handle(10_140, Event::Bridged { channel: ch("c2") });
    core.handle(20_000, dialled("k3"));
    core.handle(20_100, Event::Replaced { channel: ch("k3") });
    assert!(core.handle(20_110, retrieve("r3", "700")).is_empty());
    let cmds = core.handle_timeout(20_100 + HANDOVER_TIMEOUT + 1);
    assert!(
        cmds.contains(&Command::OrbitEmpty {
            channel: ch("r3"),
            orbit: o("700")
        }),
        "{cmds:?}"
    );
    assert!(!core.knows(&ch("r3")));
}

/// A settling call that ends (the phone hung the consultation up, no transfer) tells its
/// waiting retriever the orbit is empty; one still there when the time is up is connected to
/// it (a call parked by dialling, retrievable like any); a retriever that hangs up while
/// waiting leaves nothing behind.
#[test]
fn a_settling_call_that_ends_stays_or_is_left_tells_its_retrievers() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    core.handle(0, dialled("k"));
    core.handle(100, retrieve("r", "700"));
    let cmds = core.handle(200, Event::Hangup { channel: ch("k") });
    assert!(
        cmds.contains(&Command::OrbitEmpty {
            channel: ch("r"),
            orbit: o("700")
        }),
        "{cmds:?}"
    );
    assert!(!core.knows(&ch("r")));
    assert_eq!(core.next_deadline(), None);

    core.handle(1_000, dialled("k2"));
    core.handle(1_500, retrieve("gone", "700"));
    assert!(
        core.handle(
            1_600,
            Event::Hangup {
                channel: ch("gone")
            }
        )
        .is_empty()
    );
    assert!(!core.knows(&ch("gone")));
    core.handle(2_000, retrieve("r2", "700"));
    assert!(core.handle_timeout(1_000 + SETTLE_TIME - 1).is_empty());
    let cmds = core.handle_timeout(1_000 + SETTLE_TIME);
    assert!(
        cmds.contains(&Command::Bridge {
            parked: ch("k2"),
            other: ch("r2")
        }),
        "{cmds:?}"
    );
    // A retrieve after the settle time is connected at once.
    core.handle(
        1_000 + SETTLE_TIME + 5,
        Event::Bridged { channel: ch("k2") },
    );
    core.handle(20_000, dialled("k3"));
    let cmds = core.handle(20_000 + SETTLE_TIME, retrieve("r3", "700"));
    assert!(cmds.contains(&Command::Bridge {
        parked: ch("k3"),
        other: ch("r3")
    }));
}

#[test]
fn an_attended_transfer_hands_the_consultations_orbit_to_the_caller() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    core.handle(0, dialled("k"));
    core.handle(0, park_event("other", "x"));
    assert_eq!(core.call(&ch("k")).unwrap().orbit, Some(o("700")));
    core.drain_changes();
    kinds(&mut core);
    let cmds = core.handle(4_000, replacing("c", "k"));
    // The caller takes 700 itself, not the lowest free orbit (702), and the lamp never
    // goes out in between.
    let call = core.call(&ch("c")).unwrap();
    assert_eq!(call.orbit, Some(o("700")));
    assert_eq!(call.parker.endpoint.as_deref(), Some("PJSIP/bob"));
    assert_eq!(call.caller.name, "Carol");
    assert_eq!(call.parked_at, 4_000);
    assert_eq!(call.deadline, 94_000);
    assert!(core.call(&ch("k")).is_none());
    assert_eq!(core.call_on(o("700")).unwrap().channel, ch("c"));
    assert!(cmds.contains(&Command::Answer { channel: ch("c") }));
    assert!(
        cmds.contains(&Command::Hangup { channel: ch("k") }),
        "the consultation is released"
    );
    assert!(
        !cmds
            .iter()
            .any(|c| matches!(c, Command::Lamp { .. } | Command::Announce { .. })),
        "{cmds:?}"
    );
    assert_eq!(notes(&cmds), ["Call from Carol <300> parked on 700"]);
    // One park in the log: the consultation's, handed over; nothing ended.
    let log = core.drain_log();
    assert_eq!(
        log.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [LogKind::HandedOver]
    );
    assert_eq!(log[0].channel, ch("c"));
    assert_eq!(log[0].orbit, Some(o("700")));
    // The store drops the consultation before it writes the caller (one call per orbit).
    let changes = core.drain_changes();
    assert!(
        matches!(&changes[..], [Change::Remove(k), Change::Upsert(c)] if *k == ch("k") && c.channel == ch("c")),
        "{changes:?}"
    );
    // The consultation's hang-up, when it comes, changes nothing.
    assert!(
        core.handle(4_010, Event::Hangup { channel: ch("k") })
            .is_empty()
    );
    // The transferring phone is rung back, 90 s after the hand-over.
    assert!(
        originates(&core.handle_timeout(93_999))
            .iter()
            .all(|(l, _)| *l != ch("c").leg("rb1"))
    );
    let cmds = core.handle_timeout(94_000);
    assert_eq!(
        originates(&cmds),
        [(ch("c").leg("rb1"), LegPurpose::Ringback { attempt: 1 })]
    );
}

#[test]
fn a_consultation_hung_up_without_a_transfer_frees_its_orbit_at_once() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    core.handle(0, dialled("k"));
    let cmds = core.handle(3_000, Event::Hangup { channel: ch("k") });
    assert!(cmds.contains(&Command::Lamp {
        orbit: o("700"),
        state: LampState::Idle
    }));
    assert_eq!(
        core.orbits().usage().map(|(_, used, _)| used).sum::<u64>(),
        0
    );
    // A caller that claims to replace a consultation gone already is parked like any other.
    core.handle(3_010, replacing("c", "k"));
    assert_eq!(core.call(&ch("c")).unwrap().orbit, Some(o("700")));
    assert_eq!(kinds(&mut core).last(), Some(&LogKind::Parked));
}

#[test]
fn parked_caller_hangs_up_while_parked_and_while_ringback_rings() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    core.handle(0, park_event("bob", "alice"));
    let cmds = core.handle(1_000, Event::Hangup { channel: ch("bob") });
    assert_eq!(
        cmds,
        vec![Command::Lamp {
            orbit: o("700"),
            state: LampState::Idle
        }]
    );
    core.handle(2_000, park_event("dan", "alice"));
    core.handle_timeout(92_000);
    let cmds = core.handle(93_000, Event::Hangup { channel: ch("dan") });
    assert!(cmds.contains(&Command::Hangup {
        channel: ch("dan").leg("rb1")
    }));
    assert!(
        core.drain_log()
            .iter()
            .filter(|e| e.kind == LogKind::Abandoned)
            .count()
            == 2
    );
    assert_eq!(core.next_deadline(), None);
}

#[test]
fn retriever_leaving_before_the_bridge_leaves_the_call_parked() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    core.handle(0, park_event("bob", "alice"));
    core.handle(10_000, retrieve("carol", "700"));
    let cmds = core.handle(
        10_500,
        Event::Hangup {
            channel: ch("carol"),
        },
    );
    assert!(cmds.contains(&Command::StartMoh {
        channel: ch("bob"),
        moh: Moh::Class(None)
    }));
    let call = core.call_on(o("700")).unwrap();
    assert_eq!(call.state, CallState::Parked);
    // The original pickup deadline still holds.
    assert_eq!(call.deadline, 90_000);
}

#[test]
fn two_retrieves_of_one_orbit_exactly_one_wins() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    core.handle(0, park_event("bob", "alice"));
    let first = core.handle(1_000, retrieve("carol", "700"));
    let second = core.handle(1_000, retrieve("erin", "700"));
    assert!(first.iter().any(|c| matches!(c, Command::Bridge { .. })));
    assert!(!second.iter().any(|c| matches!(c, Command::Bridge { .. })));
    assert!(second.contains(&Command::OrbitEmpty {
        channel: ch("erin"),
        orbit: o("700")
    }));
}

#[test]
fn retrieve_while_ringback_rings_cancels_the_ringback() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    core.handle(0, park_event("bob", "alice"));
    core.handle_timeout(90_000);
    let cmds = core.handle(95_000, retrieve("carol", "700"));
    assert!(cmds.contains(&Command::Hangup {
        channel: ch("bob").leg("rb1")
    }));
    assert!(cmds.contains(&Command::Bridge {
        parked: ch("bob"),
        other: ch("carol")
    }));
    // A late answer of the cancelled ringback changes nothing but hanging it up (again):
    // an answered leg nobody waits for is never left in silence.
    let cmds = core.handle(
        95_001,
        Event::Answered {
            channel: ch("bob").leg("rb1"),
        },
    );
    assert_eq!(
        cmds,
        [Command::Hangup {
            channel: ch("bob").leg("rb1")
        }]
    );
    assert!(matches!(
        core.call(&ch("bob")).unwrap().state,
        CallState::Connecting { .. }
    ));
}

#[test]
fn dialling_a_free_orbit_holds_the_call_there_and_an_unknown_or_busy_one_is_empty() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    // A free orbit: held there hearing it, as the consultation of an attended transfer to
    // that orbit (which the phone's REFER with Replaces completes), never "orbit empty".
    let cmds = core.handle(0, retrieve("carol", "705"));
    assert_eq!(
        cmds,
        vec![
            Command::Answer {
                channel: ch("carol")
            },
            Command::Announce {
                channel: ch("carol"),
                orbit: o("705")
            },
            Command::StartMoh {
                channel: ch("carol"),
                moh: Moh::Class(None)
            },
            Command::Lamp {
                orbit: o("705"),
                state: LampState::InUse
            },
        ]
    );
    assert_eq!(kinds(&mut core), [LogKind::Parked]);
    // Found again on a reconnection, as the retrieve it looked like: it is the call on 705
    // already, never a retriever of itself (seen in a fault run: bridged to itself, lost).
    assert!(core.handle(1_000, retrieve("carol", "705")).is_empty());
    assert!(kinds(&mut core).is_empty());
    let held = core.call(&ch("carol")).unwrap();
    assert_eq!(held.orbit, Some(o("705")));
    assert_eq!(
        held.parker.endpoint, None,
        "nobody to ring back: it is on the line"
    );
    // The caller taking its place gets 705.
    core.handle(2_000, replacing("c", "carol"));
    assert_eq!(core.call(&ch("c")).unwrap().orbit, Some(o("705")));
    // An orbit that is not ours.
    let cmds = core.handle(0, retrieve("carol2", "999"));
    assert!(cmds.contains(&Command::OrbitEmpty {
        channel: ch("carol2"),
        orbit: o("999")
    }));
    // An orbit being retrieved by someone else: exactly one gets it.
    core.handle(3_000, retrieve("r1", "705"));
    let cmds = core.handle(3_000, retrieve("r2", "705"));
    assert!(cmds.contains(&Command::OrbitEmpty {
        channel: ch("r2"),
        orbit: o("705")
    }));
}

#[test]
fn dialling_a_free_orbit_without_a_policy_that_allows_park_is_empty() {
    let nobody = PolicySet::new(vec![]);
    let mut core = ParkCore::new(
        settings(1, false),
        nobody,
        PoolOrbits::new(&table(&["700-709"]), "pbx"),
    );
    let cmds = core.handle(0, retrieve("carol", "705"));
    assert_eq!(
        cmds,
        vec![
            Command::Answer {
                channel: ch("carol")
            },
            Command::OrbitEmpty {
                channel: ch("carol"),
                orbit: o("705")
            }
        ]
    );
    assert_eq!(kinds(&mut core), [LogKind::OrbitEmpty]);
}

#[test]
fn full_range_returns_the_call_to_the_parker() {
    let mut core = core_with(settings(1, false), &["700-701"]);
    core.handle(0, park_event("a", "alice"));
    core.handle(0, park_event("b", "alice"));
    let cmds = core.handle(0, park_event("c", "alice"));
    assert!(cmds.iter().any(
        |c| matches!(c, Command::Notify { text, .. } if text.contains("every orbit is in use"))
    ));
    assert_eq!(
        originates(&cmds),
        vec![(ch("c").leg("ret"), LegPurpose::Return)]
    );
    assert_eq!(core.drain_log().last().unwrap().kind, LogKind::Refused);
    // The parker answers: the call is back, nothing lost.
    core.handle(
        1_000,
        Event::Answered {
            channel: ch("c").leg("ret"),
        },
    );
    core.handle(
        1_100,
        Event::Bridged {
            channel: ch("c").leg("ret"),
        },
    );
    assert_eq!(kinds(&mut core), vec![LogKind::Returned]);
    assert!(core.call(&ch("c")).is_none());
    // Orbits of the two parked calls untouched.
    assert_eq!(core.call(&ch("a")).unwrap().orbit, Some(o("700")));
}

#[test]
fn park_refused_by_policy() {
    let policies = PolicySet::new(vec![
        PolicyRule::new("reception", true, &["alice".to_string()], &[]).unwrap(),
    ]);
    let mut core = ParkCore::new(
        settings(1, false),
        policies,
        PoolOrbits::new(&table(&["700-709"]), "pbx"),
    );
    // Park code dialled directly by a user no policy covers: told on the line.
    let cmds = core.handle(0, announced(park_event("mallory", "mallory"), "mallory"));
    assert!(cmds.contains(&Command::Refuse {
        channel: ch("mallory"),
        reason: RefuseReason::NotAllowed
    }));
    assert!(!cmds.iter().any(|c| matches!(c, Command::Lamp { .. })));
    let log = core.drain_log();
    assert_eq!(log[0].kind, LogKind::Refused);
    assert!(log[0].detail.contains("not enabled"));
    // Transferred by a user without policy: the call rings back to them.
    let cmds = core.handle(0, park_event("bob", "mallory"));
    assert_eq!(
        originates(&cmds),
        vec![(ch("bob").leg("ret"), LegPurpose::Return)]
    );
    // Allowed user parks fine.
    core.handle(0, park_event("carl", "alice"));
    assert_eq!(core.call(&ch("carl")).unwrap().orbit, Some(o("700")));
}

#[test]
fn directed_park_takes_the_named_orbit_or_refuses() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    let ev = |c: &str, orbit: &str| {
        let mut e = announced(park_event(c, "alice"), c);
        if let Event::Park(ParkRequest { orbit: want, .. }) = &mut e {
            *want = Some(o(orbit));
        }
        e
    };
    core.handle(0, ev("a", "705"));
    assert_eq!(core.call(&ch("a")).unwrap().orbit, Some(o("705")));
    let cmds = core.handle(0, ev("b", "705"));
    assert!(cmds.contains(&Command::Refuse {
        channel: ch("b"),
        reason: RefuseReason::OrbitBusy
    }));
    let cmds = core.handle(0, ev("c", "800"));
    assert!(cmds.contains(&Command::Refuse {
        channel: ch("c"),
        reason: RefuseReason::NotOurOrbit
    }));
    // Lowest free skips the directed one.
    core.handle(0, park_event("d", "alice"));
    assert_eq!(core.call(&ch("d")).unwrap().orbit, Some(o("700")));
}

#[test]
fn restore_resumes_timers_and_holds_orbits() {
    let mut core = core_with(settings(1, false), &["700-709"]);
    core.handle(0, park_event("a", "alice"));
    core.handle(1_000, park_event("b", "alice"));
    core.handle_timeout(90_000); // a rings back
    let saved: Vec<ParkedCall> = core.calls().cloned().collect();
    drop(core);
    let (mut core, rejected) = ParkCore::restore(
        settings(1, false),
        everyone(),
        PoolOrbits::new(&table(&["700-709"]), "pbx"),
        saved,
    );
    assert!(rejected.is_empty());
    assert_eq!(core.next_deadline(), Some(91_000));
    // Deadline passed while down: fires at once with the original state.
    let cmds = core.handle_timeout(200_000);
    assert!(cmds.contains(&Command::Hangup {
        channel: ch("a").leg("rb1")
    }));
    assert_eq!(
        originates(&cmds),
        vec![(ch("b").leg("rb1"), LegPurpose::Ringback { attempt: 1 })]
    );
    core.handle(0, park_event("c", "alice"));
    assert_eq!(core.call(&ch("c")).unwrap().orbit, Some(o("700")));
}

#[test]
fn found_on_reconnect_answered_legs_are_bridged_or_hung_up_and_retrievers_reconnected() {
    // What a (re)connection finds is handled as if it had just arrived.
    let mut core = core_with(settings(1, false), &["700-709"]);
    core.handle(0, park_event("a", "alice"));
    core.handle(0, park_event("b", "alice"));
    core.handle_timeout(90_000); // both ring their parker back
    // a's leg answered while callpark was down: bridged, not missed at its deadline.
    let cmds = core.handle(
        95_000,
        Event::Answered {
            channel: ch("a").leg("rb1"),
        },
    );
    assert!(cmds.contains(&Command::Bridge {
        parked: ch("a"),
        other: ch("a").leg("rb1")
    }));
    // Found again, still not bridged (callpark stopped before the bridge came up): the bridge
    // is asked for again, with a fresh deadline, and never treated as missed.
    let cmds = core.handle(
        96_000,
        Event::Answered {
            channel: ch("a").leg("rb1"),
        },
    );
    assert_eq!(
        cmds,
        [
            Command::StopMoh { channel: ch("a") },
            Command::Bridge {
                parked: ch("a"),
                other: ch("a").leg("rb1")
            }
        ]
    );
    assert_eq!(core.call(&ch("a")).unwrap().deadline, 106_000);
    // A leg of a call the core no longer knows (it ended meanwhile) is hung up.
    let stray = ch("gone").leg("rb1");
    assert_eq!(
        core.handle(
            97_000,
            Event::Answered {
                channel: stray.clone()
            }
        ),
        [Command::Hangup { channel: stray }]
    );
    // A retriever found again while its bridge is pending is bridged again, never told
    // the orbit is empty (the orbit is still taken by the call it is connecting to).
    let orbit_b = core.call(&ch("b")).unwrap().orbit.unwrap();
    let r = retrieve("r", &orbit_b.to_string());
    core.handle(98_000, r.clone());
    let cmds = core.handle(99_000, r);
    assert_eq!(
        cmds,
        [
            Command::StopMoh { channel: ch("b") },
            Command::Bridge {
                parked: ch("b"),
                other: ch("r")
            }
        ]
    );
    // A park found again is one the core holds: nothing changes.
    assert!(core.handle(99_500, park_event("a", "alice")).is_empty());
    core.handle(100_000, Event::Bridged { channel: ch("b") });
    assert!(core.call(&ch("b")).is_none());
    assert_eq!(
        kinds(&mut core),
        vec![
            LogKind::Parked,
            LogKind::Parked,
            LogKind::RingbackStarted,
            LogKind::RingbackStarted,
            LogKind::RetrieveStarted,
            LogKind::Retrieved
        ]
    );
}

// ----- lots and directed park --------------------------------------------------------------

fn directed(c: &str, user: &str, orbit: &str) -> Event {
    let mut e = park_event(c, user);
    if let Event::Park(ParkRequest { orbit: o2, .. }) = &mut e {
        *o2 = Some(o(orbit));
    }
    e
}

fn in_lot(c: &str, user: &str, lot: &str) -> Event {
    let mut e = park_event(c, user);
    if let Event::Park(ParkRequest { lot: l, .. }) = &mut e {
        *l = Some(lot.into());
    }
    e
}

fn notes(cmds: &[Command]) -> Vec<String> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Notify { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn each_lot_keeps_its_own_timeout_prefix_and_lamp() {
    let mut core = lots_core(settings(1, false));
    core.handle(0, park_event("a", "alice"));
    core.handle(0, in_lot("b", "alice", "sales"));
    let (a, b) = (core.call(&ch("a")).unwrap(), core.call(&ch("b")).unwrap());
    assert_eq!(
        (a.orbit, a.lot.as_deref(), a.deadline),
        (Some(o("700")), None, 90_000)
    );
    assert_eq!(
        (b.orbit, b.lot.as_deref(), b.deadline),
        (Some(o("702")), Some("sales"), 45_000)
    );
    let log = core.drain_log();
    assert_eq!(
        log[1].lot.as_deref(),
        Some("sales"),
        "the lot is in the log"
    );
    // The sales call rings back first, showing its lot's prefix.
    let cmds = core.handle_timeout(45_000);
    let Some(caller_id) = cmds.iter().find_map(|c| match c {
        Command::Originate { caller_id, .. } => Some(caller_id),
        _ => None,
    }) else {
        panic!("{cmds:?}")
    };
    assert_eq!(caller_id.name, "Sales 702: Bob");
    assert!(core.call(&ch("a")).unwrap().state == CallState::Parked);
}

#[test]
fn policies_limit_lots_and_give_a_default_lot() {
    let t = {
        let mut t: Vec<OrbitRange> = table(&["700-701", "702-703"]).ranges().to_vec();
        t[1].lot = Some("sales".into());
        OrbitTable::new(t).unwrap()
    };
    let policies = PolicySet::new(vec![
        PolicyRule::new("sales-staff", true, &["sam".into()], &[])
            .unwrap()
            .with_lots(Some(vec!["sales".into()]), Some("sales".into())),
        PolicyRule::new("general-only", true, &["gina".into()], &[])
            .unwrap()
            .with_lots(Some(vec!["general".into()]), None),
    ]);
    let mut core = ParkCore::new(settings(1, false), policies, PoolOrbits::new(&t, "pbx"));
    // Sam's plain park goes to his default lot.
    core.handle(0, park_event("s1", "sam"));
    assert_eq!(core.call(&ch("s1")).unwrap().orbit, Some(o("702")));
    // Gina may not park into sales, by code nor by orbit; her plain park stays general.
    for e in [in_lot("g1", "gina", "sales"), directed("g2", "gina", "703")] {
        core.handle(0, e);
    }
    let refused: Vec<String> = core
        .drain_log()
        .into_iter()
        .filter(|e| e.kind == LogKind::Refused)
        .map(|e| e.detail)
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|d| d.contains("does not allow this lot"))
    );
    core.handle(0, park_event("g3", "gina"));
    core.handle(0, park_event("g4", "gina"));
    core.handle(0, park_event("g5", "gina"));
    assert_eq!(core.call(&ch("g3")).unwrap().orbit, Some(o("700")));
    assert_eq!(core.call(&ch("g4")).unwrap().orbit, Some(o("701")));
    // The general lot is full: never the sales orbit left, back to Gina instead.
    let g5 = core.call(&ch("g5")).unwrap();
    assert!(
        matches!(
            g5.state,
            CallState::Returning {
                reason: RefuseReason::Full,
                ..
            }
        ),
        "{g5:?}"
    );
}

#[test]
fn directed_park_takes_a_free_orbit_and_never_bridges_to_a_busy_one() {
    let mut core = lots_core(settings(1, false));
    let cmds = core.handle(0, directed("a", "alice", "701"));
    assert_eq!(core.call(&ch("a")).unwrap().orbit, Some(o("701")));
    assert_eq!(notes(&cmds), vec!["Call from Bob <200> parked on 701"]);
    // 701 in use, general lot: the call goes back to the transferor, who is told.
    let cmds = core.handle(1, directed("b", "alice", "701"));
    assert!(
        !cmds.iter().any(|c| matches!(c, Command::Bridge { .. })),
        "{cmds:?}"
    );
    assert_eq!(
        originates(&cmds),
        vec![(ch("b").leg("ret"), LegPurpose::Return)]
    );
    assert!(notes(&cmds)[0].contains("the requested orbit is in use"));
    // The transferor answers: connected again with the call.
    core.handle(
        2,
        Event::Answered {
            channel: ch("b").leg("ret"),
        },
    );
    let cmds = core.handle(
        3,
        Event::Bridged {
            channel: ch("b").leg("ret"),
        },
    );
    // Who answers hears why the call came back.
    assert!(cmds.contains(&Command::ParkFailed {
        channel: ch("b").leg("ret")
    }));
    assert!(core.call(&ch("b")).is_none());
    assert_eq!(
        core.call(&ch("a")).unwrap().orbit,
        Some(o("701")),
        "untouched"
    );
    // In use in lot sales (next_free): the next free orbit there, and the transferor knows it.
    core.handle(4, directed("c", "alice", "702"));
    let cmds = core.handle(5, directed("d", "alice", "702"));
    assert_eq!(core.call(&ch("d")).unwrap().orbit, Some(o("703")));
    assert_eq!(
        notes(&cmds),
        vec!["Call from Bob <200> parked on 703 (702 is in use)"]
    );
    // Sales full: back to the transferor.
    core.handle(6, directed("e", "alice", "702"));
    let e = core.call(&ch("e")).unwrap();
    assert!(
        matches!(
            e.state,
            CallState::Returning {
                reason: RefuseReason::Full,
                ..
            }
        ),
        "{e:?}"
    );
    // Not the pool's orbit.
    core.handle(7, directed("f", "alice", "704"));
    assert!(matches!(
        core.call(&ch("f")).unwrap().state,
        CallState::Returning {
            reason: RefuseReason::NotOurOrbit,
            ..
        }
    ));
}

// ----- property tests ----------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    Park,
    Retrieve(u8),
    HangupParked(u8),
    AnswerLeg(u8),
    FailLeg(u8),
    HangupLeg(u8),
    Bridge(u8),
    /// A (re)connection finds a channel again: a connecting leg answered, a park held.
    FoundAgain(u8),
    Advance(u32),
    /// A park by the sales lot's code.
    ParkLot,
    /// A call transferred to orbit 700 + n % 5 (704 is not the pool's).
    Directed(u8),
    /// Two calls transferred to one orbit at the same moment.
    DirectedTwice(u8),
    /// Two calls transferred to the park code at the same moment.
    ParkTwice,
    /// An operator retrieves orbit 700 + n % 5 to an extension (the admin API).
    Operator(u8),
    /// An operator hangs up orbit 700 + n % 5.
    OperatorHangUp(u8),
    /// An attended transfer completes: a new caller takes the place of a held call.
    HandOver(u8),
    /// A held call's channel leaves, replaced by a transfer (its caller may follow).
    Replaced(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Park),
        1 => Just(Step::ParkLot),
        2 => any::<u8>().prop_map(Step::Directed),
        1 => any::<u8>().prop_map(Step::DirectedTwice),
        1 => Just(Step::ParkTwice),
        1 => any::<u8>().prop_map(Step::Operator),
        1 => any::<u8>().prop_map(Step::OperatorHangUp),
        2 => any::<u8>().prop_map(Step::HandOver),
        1 => any::<u8>().prop_map(Step::Replaced),
        2 => any::<u8>().prop_map(Step::Retrieve),
        1 => any::<u8>().prop_map(Step::HangupParked),
        2 => any::<u8>().prop_map(Step::AnswerLeg),
        1 => any::<u8>().prop_map(Step::FailLeg),
        1 => any::<u8>().prop_map(Step::HangupLeg),
        2 => any::<u8>().prop_map(Step::Bridge),
        1 => any::<u8>().prop_map(Step::FoundAgain),
        3 => (0u32..120_000).prop_map(Step::Advance),
    ]
}

/// Watches every command and log entry and checks the invariants as they happen.
#[derive(Default)]
struct Checker {
    lamps: HashMap<Orbit, LampState>,
    ringbacks: HashMap<ChannelId, u8>,
    ended: HashMap<ChannelId, usize>,
    parked: HashSet<ChannelId>,
    legs: Vec<ChannelId>,
    /// Pages placed, by the call on the paged orbit.
    pages: HashMap<ChannelId, u8>,
    /// Page legs placed and not yet ended.
    paging: HashSet<ChannelId>,
    /// Ringbacks owed before a fallback: none when the parker's endpoint is unknown.
    owed: u8,
}

impl Checker {
    fn see(&mut self, core: &mut ParkCore, cmds: &[Command], max: u8) -> Result<(), TestCaseError> {
        for c in cmds {
            match c {
                Command::Lamp { orbit, state } => {
                    let was = self.lamps.insert(*orbit, *state).unwrap_or(LampState::Idle);
                    // Only changes are sent: idle twice is an orbit freed twice, lit twice
                    // one taken twice.
                    prop_assert_ne!(was, *state, "orbit {} lamp {:?} twice", orbit, state);
                }
                Command::Originate {
                    channel, purpose, ..
                } => {
                    // The call now waiting on this leg.
                    let parked = core
                        .calls()
                        .find(|c| c.state.leg() == Some(channel))
                        .map(|c| c.channel.clone())
                        .expect("an originated leg belongs to a call");
                    match purpose {
                        LegPurpose::Ringback { attempt } => {
                            let n = self.ringbacks.entry(parked).or_default();
                            *n += 1;
                            prop_assert_eq!(*n, *attempt);
                            prop_assert!(*n <= max, "ringback {} of {}", n, max);
                        }
                        LegPurpose::Fallback => {
                            let n = self.ringbacks.get(&parked).copied().unwrap_or(0);
                            // No ringbacks are owed to a parker with no phone to ring (one
                            // that dialled a free orbit is held there, with none).
                            let owed = match core.call(&parked).map(|c| c.parker.endpoint.is_some())
                            {
                                Some(true) => self.owed,
                                _ => 0,
                            };
                            prop_assert_eq!(n, owed, "fallback before the last ringback");
                        }
                        LegPurpose::Return | LegPurpose::Deliver => {}
                    }
                    self.legs.push(channel.clone());
                }
                // Only a call of the paging lot (sales) is paged, on its own orbit, at most
                // 1 + page_repeat times, and each page leg is ended at most once.
                Command::Page { channel, orbit, .. } => {
                    prop_assert!(self.paging.insert(channel.clone()));
                    // The call may have ended later in the same step (its page then ended).
                    let Some(call) = core
                        .call_on(*orbit)
                        .filter(|c| c.page.leg.as_ref() == Some(channel))
                    else {
                        prop_assert!(
                            cmds.contains(&Command::EndPage {
                                channel: channel.clone()
                            }),
                            "page {} of no call",
                            channel
                        );
                        continue;
                    };
                    prop_assert_eq!(call.lot.as_deref(), Some("sales"));
                    let n = self.pages.entry(call.channel.clone()).or_default();
                    *n += 1;
                    prop_assert!(*n <= 3, "page {} of 3", n);
                }
                Command::EndPage { channel } => {
                    prop_assert!(
                        self.paging.remove(channel),
                        "{} ended but never placed",
                        channel
                    );
                }
                _ => {}
            }
        }
        for e in core.drain_log() {
            if matches!(e.kind, LogKind::Parked | LogKind::HandedOver) {
                prop_assert!(self.parked.insert(e.channel.clone()));
            }
            if e.kind.is_final() {
                *self.ended.entry(e.channel.clone()).or_default() += 1;
            }
        }
        // No orbit is ever held by two calls, and the allocator agrees with the calls.
        let mut held = HashSet::new();
        for call in core.calls() {
            if let Some(o) = call.orbit {
                prop_assert!(held.insert(o), "orbit {} held twice", o);
                // Every lamp shows its call's state after each step.
                prop_assert_eq!(self.lamps.get(&o), Some(&LampState::of(&call.state)));
            }
        }
        let used: u64 = core.orbits().usage().map(|(_, used, _)| used).sum();
        prop_assert_eq!(used, held.len() as u64);
        Ok(())
    }
}

/// 700-701 the general lot, 702-703 lot `sales` (its own pickup timeout, caller id prefix,
/// and the next free orbit for a call transferred to a busy one).
fn lots_core(general: Settings) -> ParkCore {
    let mut t: Vec<OrbitRange> = table(&["700-701", "702-703"]).ranges().to_vec();
    t[1].lot = Some("sales".into());
    let sales = Settings {
        pickup_timeout: 45_000,
        caller_id_prefix: "Sales".into(),
        on_busy_orbit: OnBusyOrbit::NextFree,
        page: Some(Destination::parse("exten:8000@paging").unwrap()),
        page_repeat: 2,
        page_interval: 5_000,
        ..general.clone()
    };
    ParkCore::new(
        general,
        everyone(),
        PoolOrbits::new(&OrbitTable::new(t).unwrap(), "pbx"),
    )
    .with_lots(HashMap::from([("sales".to_string(), sales)]))
}

fn pick<T: Clone>(items: &[T], i: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[i as usize % items.len()].clone())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_interleavings_keep_every_invariant(
        steps in prop::collection::vec(step(), 1..120),
        max in 1u8..=3,
        fallback in any::<bool>(),
        known_parker in any::<bool>(),
    ) {
        let mut core = lots_core(settings(max, fallback));
        let mut chk = Checker { owed: if known_parker { max } else { 0 }, ..Checker::default() };
        let mut now: Millis = 0;
        let mut next = 0u32;
        let mut retrievers = Vec::new();
        let mut handed: Vec<ChannelId> = Vec::new();
        let ev_park = |c: &str| {
            let mut e = park_event(c, "alice");
            if let Event::Park(ParkRequest { parker, .. }) = &mut e {
                if !known_parker { parker.endpoint = None; }
            }
            e
        };
        for s in steps {
            let calls: Vec<ParkedCall> = core.calls().cloned().collect();
            let legs: Vec<ChannelId> = calls.iter().filter_map(|c| match &c.state {
                CallState::Ringback { leg, .. } | CallState::Fallback { leg } | CallState::Returning { leg, .. } | CallState::Delivering { leg, .. } => Some(leg.clone()),
                _ => None,
            }).collect();
            let connecting: Vec<ChannelId> = calls.iter().filter_map(|c| match &c.state {
                CallState::Connecting { leg, .. } => Some(leg.clone()),
                _ => None,
            }).collect();
            // Parks of this step, and the orbit each asked for.
            let mut parks: Vec<(ChannelId, Option<Orbit>)> = Vec::new();
            let mut park = |core: &mut ParkCore, next: &mut u32, lot: Option<&str>, orbit: Option<Orbit>| {
                *next += 1;
                let c = format!("p{next}");
                let mut e = ev_park(&c);
                if let Event::Park(ParkRequest { lot: l, orbit: o, .. }) = &mut e {
                    *l = lot.map(str::to_string);
                    *o = orbit;
                }
                parks.push((ch(&c), orbit));
                core.handle(now, e)
            };
            // A caller handed the orbit of a consultation someone dialled (being connected to
            // it, or waiting for it to settle): bridged to that retriever.
            let mut rebridged: Option<(ChannelId, ChannelId)> = None;
            let mut handed_to: Option<ChannelId> = None;
            let cmds = match s {
                Step::Park => park(&mut core, &mut next, None, None),
                Step::ParkLot => park(&mut core, &mut next, Some("sales"), None),
                Step::Directed(i) => park(&mut core, &mut next, None, Some(o(&format!("{}", 700 + (i % 5) as u32)))),
                Step::DirectedTwice(i) => {
                    let orbit = o(&format!("{}", 700 + (i % 5) as u32));
                    let mut cmds = park(&mut core, &mut next, None, Some(orbit));
                    chk.see(&mut core, &cmds, max)?;
                    cmds = park(&mut core, &mut next, None, Some(orbit));
                    let on: Vec<&ParkedCall> = core.calls().filter(|c| c.orbit == Some(orbit)).collect();
                    prop_assert!(on.len() <= 1, "orbit {} held by {:?}", orbit, on);
                    cmds
                }
                Step::Operator(i) => {
                    let orbit = o(&format!("{}", 700 + (i % 5) as u32));
                    let to = Target::Endpoint("PJSIP/operator".into());
                    match core.deliver(now, orbit, to, "PJSIP/operator") {
                        Ok(cmds) => cmds,
                        Err(e) => {
                            // Refused only for an orbit with no call, or one being connected.
                            let held = core.call_on(orbit).map(|c| c.state.name());
                            prop_assert!(matches!((&e, held), (OperatorError::NoCall(_), None) | (OperatorError::Busy(_), Some("connecting" | "handing_over"))), "{:?} {:?}", e, held);
                            vec![]
                        }
                    }
                }
                Step::OperatorHangUp(i) => {
                    let orbit = o(&format!("{}", 700 + (i % 5) as u32));
                    core.hang_up(now, orbit).unwrap_or_default()
                }
                Step::ParkTwice => {
                    let cmds = park(&mut core, &mut next, None, None);
                    chk.see(&mut core, &cmds, max)?;
                    park(&mut core, &mut next, None, None)
                }
                Step::HandOver(i) => match pick(&calls, i) {
                    Some(k) => {
                        next += 1;
                        let c = ch(&format!("h{next}"));
                        let mut e = ev_park(c.as_str());
                        if let Event::Park(r) = &mut e {
                            r.replaces = Some(k.channel.clone());
                        }
                        parks.push((c.clone(), None));
                        let cmds = core.handle(now, e);
                        let waits = k.orbit.is_some() && matches!(k.state, CallState::Parked | CallState::Replaced | CallState::Ringback { .. } | CallState::Fallback { .. } | CallState::Connecting { via: Via::Retrieve { .. }, .. });
                        if waits {
                            // The orbit passes over without being freed; the held call goes.
                            prop_assert!(core.call(&k.channel).is_none());
                            prop_assert_eq!(core.call(&c).and_then(|x| x.orbit), k.orbit);
                            let hangs_up = cmds.contains(&Command::Hangup { channel: k.channel.clone() });
                            prop_assert!(hangs_up, "{:?}", cmds);
                            prop_assert!(!cmds.iter().any(|x| matches!(x, Command::Lamp { state: LampState::Idle, .. })), "{:?}", cmds);
                            if let CallState::Connecting { leg, via: Via::Retrieve { .. }, .. } = &k.state {
                                let bridge = Command::Bridge { parked: c.clone(), other: leg.clone() };
                                prop_assert!(cmds.contains(&bridge), "{:?}", cmds);
                                rebridged = Some((c.clone(), leg.clone()));
                            }
                            handed_to = Some(c.clone());
                            handed.push(k.channel.clone());
                        } else {
                            // Nothing to take over: parked like any call.
                            prop_assert!(core.call(&k.channel).is_some());
                        }
                        cmds
                    }
                    None => vec![],
                },
                Step::Replaced(i) => match pick(&calls, i) {
                    Some(k) => {
                        let waits = k.orbit.is_some() && matches!(k.state, CallState::Parked | CallState::Replaced | CallState::Ringback { .. } | CallState::Fallback { .. } | CallState::Connecting { via: Via::Retrieve { .. }, .. });
                        let cmds = core.handle(now, Event::Replaced { channel: k.channel.clone() });
                        if waits {
                            // Its orbit waits for the caller, a few seconds at most.
                            let c = core.call(&k.channel).unwrap();
                            prop_assert_eq!(&c.state, &CallState::Replaced);
                            prop_assert_eq!(c.deadline, now + HANDOVER_TIMEOUT);
                        } else {
                            prop_assert!(core.call(&k.channel).is_none(), "ended like a hang-up");
                        }
                        cmds
                    }
                    None => vec![],
                },
                Step::Retrieve(i) => {
                    next += 1;
                    let r = format!("r{next}");
                    retrievers.push(ChannelId::new(r.clone()));
                    let orbit = o(&format!("{}", 700 + (i % 5) as u32)); // 704 is never ours
                    core.handle(now, retrieve(&r, &orbit.to_string()))
                }
                Step::HangupParked(i) => match pick(&calls, i) {
                    Some(c) => core.handle(now, Event::Hangup { channel: c.channel }),
                    None => vec![],
                },
                Step::AnswerLeg(i) => match pick(&legs, i) {
                    Some(l) => core.handle(now, Event::Answered { channel: l }),
                    None => vec![],
                },
                Step::FailLeg(i) => match pick(&legs, i) {
                    Some(l) => core.handle(now, Event::OriginateFailed { channel: l, reason: "busy".into() }),
                    None => vec![],
                },
                Step::HangupLeg(i) => match pick(&connecting, i).or_else(|| pick(&legs, i)) {
                    Some(l) => core.handle(now, Event::Hangup { channel: l }),
                    None => vec![],
                },
                Step::Bridge(i) => match pick(&connecting, i) {
                    Some(l) => core.handle(now, Event::Bridged { channel: l }),
                    None => vec![],
                },
                Step::FoundAgain(i) => match (pick(&connecting, i), pick(&calls, i)) {
                    (Some(l), _) if i % 2 == 0 => core.handle(now, Event::Answered { channel: l }),
                    (_, Some(c)) => {
                        // Found again: the core holds it, so nothing may change.
                        let again = core.handle(now, ev_park(c.channel.as_str()));
                        prop_assert!(again.is_empty(), "{:?}", again);
                        again
                    }
                    _ => vec![],
                },
                Step::Advance(ms) => { now += ms as i64; core.handle_timeout(now) }
            };
            // A park is never bridged to anything in its own step (a call transferred to an
            // orbit in use is not a retrieve), follows its orbit's lot, and a directed one
            // gets its orbit, the lot's next free one, or goes back.
            for (c, wanted) in &parks {
                let expected = |p: &ChannelId, x: &ChannelId| {
                    rebridged.as_ref().is_some_and(|(rp, rx)| rp == p && rx == x)
                        || (handed_to.as_ref() == Some(p) && retrievers.contains(x))
                };
                prop_assert!(!cmds.iter().any(|x| matches!(x, Command::Bridge { parked, other } if (parked == c || other == c) && !expected(parked, other))), "{} bridged", c);
                let Some(call) = core.call(c) else { continue };
                if let Some(orbit) = call.orbit {
                    let sales = orbit >= o("702");
                    prop_assert_eq!(call.lot.as_deref(), sales.then_some("sales"));
                    if call.state == CallState::Parked {
                        prop_assert_eq!(call.deadline, now + if sales { 45_000 } else { 90_000 });
                    }
                    if let Some(w) = wanted {
                        // Moved on only within the sales lot (next_free); the general lot
                        // gives a busy orbit's call back.
                        prop_assert!(orbit == *w || (sales && *w >= o("702")), "{} asked {} got {}", c, w, orbit);
                    }
                } else {
                    prop_assert!(matches!(call.state, CallState::Returning { .. }), "{:?}", call);
                }
            }
            chk.see(&mut core, &cmds, max)?;
            // A call that handed its orbit over ended nowhere: its caller's park goes on.
            for k in handed.drain(..) {
                prop_assert!(chk.parked.remove(&k), "{} was never parked", k);
            }
            // Events for channels that are gone change nothing; an answered one is hung up.
            let gone = ChannelId::new("gone");
            let before: Vec<ParkedCall> = core.calls().cloned().collect();
            let stale = core.handle(now, Event::Answered { channel: gone.clone() });
            prop_assert_eq!(stale, vec![Command::Hangup { channel: gone.clone() }]);
            let bridged = core.handle(now, Event::Bridged { channel: gone.clone() });
            prop_assert!(bridged.is_empty());
            let hung_up = core.handle(now, Event::Hangup { channel: gone });
            prop_assert!(hung_up.is_empty());
            let mut after: Vec<ParkedCall> = core.calls().cloned().collect();
            let mut before = before;
            before.sort_by(|a, b| a.channel.as_str().cmp(b.channel.as_str()));
            after.sort_by(|a, b| a.channel.as_str().cmp(b.channel.as_str()));
            prop_assert_eq!(before, after);
        }
        // Let time run with nobody answering: every call must end.
        for _ in 0..10_000 {
            match core.next_deadline() {
                Some(t) => { now = now.max(t); let cmds = core.handle_timeout(now); chk.see(&mut core, &cmds, max)?; }
                None => break,
            }
        }
        // What time alone does not end waits for a retrieve: a call with nobody to ring back
        // and no fallback (its parker unknown), with no timer left. Its caller hangs up.
        let kept: Vec<ParkedCall> = core.calls().cloned().collect();
        for c in &kept {
            prop_assert!(
                (!fallback || c.fallback_tried) && c.parker.endpoint.is_none() && c.state == CallState::Parked && c.deadline == NO_DEADLINE,
                "a call time should have ended: {:?}", c
            );
            let cmds = core.handle(now, Event::Hangup { channel: c.channel.clone() });
            chk.see(&mut core, &cmds, max)?;
        }
        prop_assert_eq!(core.calls().count(), 0, "calls left: {:?}", core.calls().collect::<Vec<_>>());
        prop_assert!(chk.lamps.values().all(|s| *s == LampState::Idle), "an orbit was never freed");
        for p in &chk.parked {
            prop_assert_eq!(chk.ended.get(p).copied(), Some(1), "call {} did not end exactly once", p);
        }
        for (c, n) in &chk.ended {
            prop_assert_eq!(*n, 1, "call {} ended {} times", c, n);
        }
    }
}

#[test]
fn an_operator_retrieves_to_an_extension_or_hangs_up() {
    let mut core = core_with(settings(1, false), &["700-703"]);
    core.handle(0, park_event("bob", "alice"));
    let to = Target::Destination(Destination::parse("exten:201@phones").unwrap());
    assert_eq!(
        core.deliver(1_000, o("701"), to.clone(), "exten:201@phones"),
        Err(OperatorError::NoCall(o("701")))
    );
    let cmds = core
        .deliver(1_000, o("700"), to.clone(), "exten:201@phones")
        .unwrap();
    let leg = ch("bob").leg("op1000");
    // The operator's extension rings showing the parked caller; the call keeps its music.
    assert!(cmds.contains(&Command::Originate {
        channel: leg.clone(),
        target: to.clone(),
        caller_id: Party {
            name: "Bob".into(),
            number: "200".into()
        },
        timeout_ms: 20_000,
        purpose: LegPurpose::Deliver,
    }));
    assert!(!cmds.iter().any(|c| matches!(c, Command::StopMoh { .. })));
    // Nobody answers: parked again, with its own pickup deadline.
    core.handle(
        5_000,
        Event::OriginateFailed {
            channel: leg.clone(),
            reason: "busy".into(),
        },
    );
    let call = core.call_on(o("700")).unwrap();
    assert_eq!((call.state.name(), call.deadline), ("parked", 90_000));
    // Again, answered this time: bridged and retrieved "by the operator".
    core.deliver(6_000, o("700"), to.clone(), "exten:201@phones")
        .unwrap();
    let leg = ch("bob").leg("op6000");
    let cmds = core.handle(
        7_000,
        Event::Answered {
            channel: leg.clone(),
        },
    );
    assert!(cmds.contains(&Command::Bridge {
        parked: ch("bob"),
        other: leg.clone()
    }));
    core.handle(7_100, Event::Bridged { channel: leg });
    assert!(core.call_on(o("700")).is_none());
    let log = core.drain_log();
    assert!(
        log.iter()
            .any(|e| e.kind == LogKind::Retrieved && e.detail.contains("201@phones")),
        "{log:?}"
    );
    // Hang up by the operator.
    core.handle(8_000, park_event("carol", "alice"));
    let cmds = core.hang_up(8_500, o("700")).unwrap();
    assert!(cmds.contains(&Command::Hangup {
        channel: ch("carol")
    }));
    assert!(core.call_on(o("700")).is_none());
    assert!(
        core.drain_log()
            .iter()
            .any(|e| e.kind == LogKind::Disconnected && e.detail == "hung up by the operator")
    );
}

fn paging(repeat: u8) -> Settings {
    Settings {
        page: Some(Destination::parse("exten:8000@paging").unwrap()),
        page_repeat: repeat,
        page_interval: 30_000,
        ..settings(1, false)
    }
}

fn pages(cmds: &[Command]) -> Vec<(ChannelId, Orbit)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Page { channel, orbit, .. } => Some((channel.clone(), *orbit)),
            _ => None,
        })
        .collect()
}

/// Park and page: the page follows the park's own commands (the caller's music and the lamp
/// never wait on it), shows the orbit as its number, repeats every `page_interval` while the
/// call waits, and ends with the call.
#[test]
fn a_paging_lot_pages_after_the_park_and_repeats_until_retrieved() {
    let mut core = core_with(paging(2), &["700-709"]);
    let cmds = core.handle(0, park_event("bob", "alice"));
    let at = |f: &dyn Fn(&Command) -> bool| cmds.iter().position(f).unwrap();
    let page = at(&|c| matches!(c, Command::Page { .. }));
    assert!(page > at(&|c| matches!(c, Command::StartMoh { .. })));
    assert!(page > at(&|c| matches!(c, Command::Lamp { .. })));
    let Command::Page {
        channel,
        target,
        orbit,
        caller_id,
        timeout_ms,
    } = &cmds[page]
    else {
        unreachable!()
    };
    assert_eq!(*channel, ch("bob").leg("pg1"));
    assert_eq!(target.to_string(), "exten:8000@paging");
    assert_eq!(*orbit, o("700"));
    assert_eq!(caller_id.name, "Parked 700: Bob");
    assert_eq!(caller_id.number, "700");
    assert_eq!(*timeout_ms, 20_000);
    let log = core.drain_log();
    assert_eq!(
        log.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [LogKind::Parked, LogKind::Paged]
    );
    assert_eq!(log[1].detail, "page 1 of 3 to exten:8000@paging");
    let call = core.call(&ch("bob")).unwrap();
    assert_eq!(call.page.sent, 1);
    assert_eq!(call.page.next, Some(30_000));
    assert_eq!(core.next_deadline(), Some(30_000));
    assert!(pages(&core.handle_timeout(29_999)).is_empty());
    assert_eq!(
        pages(&core.handle_timeout(30_000)),
        [(ch("bob").leg("pg2"), o("700"))]
    );
    assert_eq!(kinds(&mut core), [LogKind::Paged]);
    assert_eq!(core.next_deadline(), Some(60_000));
    // Retrieved before the third: the page in progress is ended, no other is placed.
    core.handle(40_000, retrieve("carol", "700"));
    let cmds = core.handle(
        40_100,
        Event::Bridged {
            channel: ch("carol"),
        },
    );
    assert!(cmds.contains(&Command::EndPage {
        channel: ch("bob").leg("pg2")
    }));
    assert_eq!(core.next_deadline(), None);
    assert!(pages(&core.handle_timeout(200_000)).is_empty());
}

/// `page_repeat = 0` pages once; the count and the next page's time are the call's, so a
/// restart neither repeats a page nor forgets one that is due.
#[test]
fn pages_run_out_and_a_restart_keeps_their_count() {
    let mut core = core_with(paging(0), &["700-709"]);
    assert_eq!(pages(&core.handle(0, park_event("a", "alice"))).len(), 1);
    assert_eq!(core.next_deadline(), Some(90_000), "no second page");
    let mut core = core_with(paging(1), &["700-709"]);
    core.handle(0, park_event("a", "alice"));
    let saved: Vec<ParkedCall> = core.calls().cloned().collect();
    let (mut core, _) = ParkCore::restore(
        paging(1),
        everyone(),
        PoolOrbits::new(&table(&["700-709"]), "pbx"),
        saved,
    );
    assert_eq!(core.next_deadline(), Some(30_000));
    // Down past the page's time: placed once, late, and the last.
    assert_eq!(
        pages(&core.handle_timeout(50_000)),
        [(ch("a").leg("pg2"), o("700"))]
    );
    assert_eq!(core.call(&ch("a")).unwrap().page.next, None);
    assert!(pages(&core.handle_timeout(89_999)).is_empty());
    // The ringback still comes on time, and the call ending ends the last page.
    let cmds = core.handle_timeout(90_000);
    assert_eq!(originates(&cmds).len(), 1);
    let cmds = core.handle(91_000, Event::Hangup { channel: ch("a") });
    assert!(cmds.contains(&Command::EndPage {
        channel: ch("a").leg("pg2")
    }));
}

/// The orbit an attended park's consultation heard (and that was paged) passes to the caller
/// with its pages: not paged again at the hand-over, and repeated on the same schedule.
#[test]
fn a_handed_over_orbit_keeps_its_pages() {
    let mut core = core_with(paging(2), &["700-709"]);
    assert_eq!(
        pages(&core.handle(0, dialled("k"))),
        [(ch("k").leg("pg1"), o("700"))]
    );
    let cmds = core.handle(4_000, replacing("c", "k"));
    assert!(pages(&cmds).is_empty(), "{cmds:?}");
    assert!(!cmds.iter().any(|c| matches!(c, Command::EndPage { .. })));
    let call = core.call(&ch("c")).unwrap();
    assert_eq!(call.page.sent, 1);
    assert_eq!(call.page.next, Some(30_000));
    assert_eq!(
        pages(&core.handle_timeout(30_000)),
        [(ch("c").leg("pg2"), o("700"))]
    );
}

/// A page due while the call is being connected is put off by an interval: the retrieve may
/// fail and leave the call on its orbit.
#[test]
fn a_page_due_during_a_retrieve_waits_for_the_call_to_be_back_on_its_orbit() {
    let mut core = core_with(paging(2), &["700-709"]);
    core.handle(0, park_event("bob", "alice"));
    core.handle(29_000, retrieve("carol", "700"));
    assert!(pages(&core.handle_timeout(30_000)).is_empty());
    assert_eq!(core.call(&ch("bob")).unwrap().page.next, Some(60_000));
    // The retriever leaves before the bridge: parked again, paged at the new time.
    core.handle(
        31_000,
        Event::Hangup {
            channel: ch("carol"),
        },
    );
    assert_eq!(core.call(&ch("bob")).unwrap().state, CallState::Parked);
    assert_eq!(
        pages(&core.handle_timeout(60_000)),
        [(ch("bob").leg("pg2"), o("700"))]
    );
}
