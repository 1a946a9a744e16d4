//! The Asterisk translator without Asterisk: events captured from Asterisk 22.10.1
//! (`tests/data/asterisk/captured`) and synthetic sequences in, core events and REST requests out.

use std::path::PathBuf;

use callpark::config::PbxKind;
use callpark::park::{
    ChannelId, Command, Event, LegPurpose, Moh, ParkRequest, Parker, Party, Target,
};
use callpark::pbx::asterisk::model::{AriEvent, decode_event};
use callpark::pbx::asterisk::translate::{AriSettings, AriTranslator, Failure, Request, Tag, Verb};
use callpark::pbx::trunk::Trunks;
use callpark::pbx::{Output, PbxEvent, Translator};
use serde_json::Value;

/// A captured event (`tests/data/asterisk/captured`).
fn raw(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/asterisk/captured")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

fn event(v: &Value) -> AriEvent {
    decode_event(&v.to_string()).unwrap()
}

fn tr() -> AriTranslator {
    AriTranslator::new(AriSettings {
        pool: "pbx-a".into(),
        app: "callpark".into(),
        sip_endpoint: Some("trunk".into()),
        // pbx-b, the FreeSWITCH, as the example configuration reaches it.
        trunks: Trunks::default().with_peer(
            "pbx-b",
            PbxKind::Freeswitch,
            "PJSIP/{orbit}@freeswitch",
        ),
    })
}

fn wire(t: &mut AriTranslator, e: AriEvent) -> Output<Request> {
    let mut out = Output::default();
    t.on_wire(e, &mut out);
    out
}

fn cmd(t: &mut AriTranslator, c: Command) -> Output<Request> {
    let mut out = Output::default();
    t.on_command(c, &mut out);
    out
}

fn reply(t: &mut AriTranslator, r: Request, body: Result<&str, Failure>) -> Output<Request> {
    let mut out = Output::default();
    t.on_reply(r, body.map(str::to_string), &mut out);
    out
}

fn not_found(path: &str) -> Failure {
    Failure::status(Verb::Get, path, 404, "Provided variable was not found")
}

fn calls(out: &Output<Request>) -> Vec<Event> {
    out.events
        .iter()
        .filter_map(|e| match e {
            PbxEvent::Call(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn reqs(out: &Output<Request>) -> Vec<String> {
    out.requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[test]
fn captured_park_without_channelvars_reads_the_transfer_variables_first() {
    let mut t = tr();
    // The captured StasisStart has no channelvars: who parked is asked over REST.
    let out = wire(&mut t, event(&raw("StasisStart-1.json")));
    assert!(calls(&out).is_empty(), "not reported before the lookup");
    assert_eq!(reqs(&out), ["GET /channels/1795360454.4/variable"]);
    let r = out.requests[0].clone();
    assert_eq!(r.query, [("variable", "BLINDTRANSFER".to_string())]);
    assert_eq!(r.key.as_deref(), Some("1795360454.4"));
    // Unset (404 as Asterisk answers): the attended one is asked next.
    let out = reply(&mut t, r.clone(), Err(not_found(&r.path)));
    assert_eq!(
        out.requests[0].query,
        [("variable", "ATTENDEDTRANSFER".to_string())]
    );
    let out = reply(&mut t, out.requests[0].clone(), Err(not_found(&r.path)));
    // Neither transfer: was it forwarded here (a phone's 302)?
    assert_eq!(
        out.requests[0].query,
        [("variable", "FORWARDERNAME".to_string())]
    );
    let out = reply(&mut t, out.requests[0].clone(), Err(not_found(&r.path)));
    let [
        Event::Park(ParkRequest {
            channel,
            caller,
            parker,
            announce_to,
            ..
        }),
    ] = &calls(&out)[..]
    else {
        panic!("{:?}", out.events)
    };
    assert_eq!(channel.as_str(), "1795360454.4");
    assert_eq!(caller.name, "Alice");
    assert_eq!(
        announce_to.as_ref(),
        Some(channel),
        "dialled itself: it hears the orbit"
    );
    assert_eq!(parker.endpoint, None);
    assert_eq!(parker.display, "Local/answer@phones");
}

#[test]
fn a_blind_transfer_in_channelvars_is_reported_at_once() {
    let mut t = tr();
    let mut v = raw("StasisStart-1.json");
    v["channel"]["channelvars"] =
        serde_json::json!({"BLINDTRANSFER": "PJSIP/alice-00000012", "ATTENDEDTRANSFER": ""});
    let out = wire(&mut t, event(&v));
    assert!(out.requests.is_empty(), "no REST round trip");
    let [
        Event::Park(ParkRequest {
            parker,
            announce_to,
            ..
        }),
    ] = &calls(&out)[..]
    else {
        panic!("{:?}", out.events)
    };
    assert_eq!(parker.endpoint.as_deref(), Some("PJSIP/alice"));
    assert_eq!(parker.ids, ["PJSIP/alice", "alice"]);
    assert_eq!(*announce_to, None);
    // Up already: answering it again would be a wasted round trip. Music goes at once.
    let ch = ChannelId::new("1795360454.4");
    assert!(
        cmd(
            &mut t,
            Command::Answer {
                channel: ch.clone()
            }
        )
        .is_empty()
    );
    let out = cmd(
        &mut t,
        Command::StartMoh {
            channel: ch.clone(),
            moh: Moh::Class(Some("default".into())),
        },
    );
    assert_eq!(reqs(&out), ["POST /channels/1795360454.4/moh"]);
    assert_eq!(out.requests[0].query, [("mohClass", "default".to_string())]);
}

#[test]
fn captured_retrieve_then_the_bridge_it_asks_for() {
    let mut t = tr();
    let out = wire(&mut t, event(&raw("StasisStart-2.json")));
    let [
        Event::Retrieve {
            orbit, by, channel, ..
        },
    ] = &calls(&out)[..]
    else {
        panic!("{:?}", out.events)
    };
    assert_eq!(orbit.to_string(), "701");
    assert_eq!(by.number, "200");
    let parked = ChannelId::new("1795360454.4");
    let out = cmd(
        &mut t,
        Command::Bridge {
            parked: parked.clone(),
            other: channel.clone(),
        },
    );
    // An old bridge is removed, a new one made; both on the parked channel's queue.
    assert_eq!(
        reqs(&out),
        [
            "DELETE /bridges/cp-1795360454.4",
            "POST /bridges/cp-1795360454.4"
        ]
    );
    assert!(
        out.requests
            .iter()
            .all(|r| r.key.as_deref() == Some("1795360454.4"))
    );
    let created = out.requests[1].clone();
    assert!(matches!(created.tag, Tag::BridgeCreated { .. }));
    let out = reply(&mut t, created, Ok("{}"));
    assert_eq!(reqs(&out), ["POST /bridges/cp-1795360454.4/addChannel"]);
    assert_eq!(
        out.requests[0].query,
        [("channel", "1795360454.4,1795360461.8".to_string())]
    );
    // Asterisk's ChannelEnteredBridge for both (the captured one, in our bridge).
    let mut v = raw("ChannelEnteredBridge-2.json");
    v["bridge"]["id"] = "cp-1795360454.4".into();
    let out = wire(&mut t, event(&v));
    assert_eq!(calls(&out), [Event::Bridged { channel: parked }]);
    // When one leaves, the other is hung up and the bridge destroyed.
    let out = wire(&mut t, event(&raw("ChannelLeftBridge-1.json")));
    assert_eq!(
        reqs(&out),
        [
            "DELETE /channels/1795360461.8",
            "DELETE /bridges/cp-1795360454.4"
        ]
    );
}

#[test]
fn a_ringback_that_is_never_answered_fails_its_leg() {
    let mut t = tr();
    let leg = ChannelId::new("1795360456.7");
    let out = cmd(
        &mut t,
        Command::Originate {
            channel: leg.clone(),
            target: Target::Endpoint("Local/noanswer@phones".into()),
            caller_id: Party {
                name: "Parked 701".into(),
                number: "701".into(),
            },
            timeout_ms: 3_000,
            purpose: LegPurpose::Ringback { attempt: 1 },
        },
    );
    assert_eq!(reqs(&out), ["POST /channels/1795360456.7"]);
    let q = &out.requests[0].query;
    assert!(q.contains(&("callerId", "\"Parked 701\" <701>".to_string())));
    assert!(q.contains(&("appArgs", "leg".to_string())));
    assert!(q.contains(&("timeout", "3".to_string())));
    // The captured end of that ringback: cause 19, no answer.
    let out = wire(&mut t, event(&raw("ChannelDestroyed-1.json")));
    assert_eq!(
        calls(&out),
        [Event::OriginateFailed {
            channel: leg,
            reason: "User alerting, no answer".into()
        }]
    );
    // A channel callpark did not originate just hangs up.
    let out = wire(&mut t, event(&raw("ChannelDestroyed-2.json")));
    assert!(matches!(&calls(&out)[..], [Event::Hangup { .. }]));
}

#[test]
fn the_orbit_is_spoken_before_the_music_and_a_failed_playback_does_not_wait() {
    let mut t = tr();
    let ch = ChannelId::new("c1");
    let out = cmd(
        &mut t,
        Command::Announce {
            channel: ch.clone(),
            orbit: "*701".parse().unwrap(),
        },
    );
    let play = out.requests[0].clone();
    assert_eq!(play.query, [("media", "characters:*701".to_string())]);
    // Music waits for the announcement's end.
    assert!(
        cmd(
            &mut t,
            Command::StartMoh {
                channel: ch.clone(),
                moh: Moh::Class(None)
            }
        )
        .is_empty()
    );
    let Tag::Play(pb) = play.tag.clone() else {
        panic!()
    };
    let out = wire(
        &mut t,
        decode_event(&format!(
            r#"{{"type":"PlaybackFinished","playback":{{"id":"{}"}}}}"#,
            pb.0
        ))
        .unwrap(),
    );
    assert_eq!(reqs(&out), ["POST /channels/c1/moh"]);
    // A refusal's prompt that cannot be played: the call goes back to the dialplan at once.
    let out = cmd(
        &mut t,
        Command::Refuse {
            channel: ch.clone(),
            reason: callpark::park::RefuseReason::Full,
        },
    );
    let out = reply(
        &mut t,
        out.requests[0].clone(),
        Err(Failure::status(
            Verb::Post,
            "/channels/c1/play",
            500,
            "Allocation failed",
        )),
    );
    assert_eq!(reqs(&out), ["POST /channels/c1/continue"]);
}

#[test]
fn the_channel_listing_is_the_reconciliation_and_what_sits_in_stasis_is_adopted() {
    let mut t = tr();
    let mut out = Output::default();
    t.on_connect(Default::default(), &mut out);
    assert_eq!(reqs(&out), ["GET /bridges", "GET /channels"]);
    assert!(
        out.requests
            .iter()
            .all(|r| r.key.as_deref() == Some("reconnect")),
        "one key: the bridges are read before the channels"
    );
    let (get_bridges, get_channels) = (out.requests[0].clone(), out.requests[1].clone());
    // A call connected while callpark was away (both in its bridge), and one whose other side
    // left meanwhile (alone in its bridge).
    let bridges = serde_json::json!([
        {"id": "cp-p9", "channels": ["p9", "r9"]},
        {"id": "cp-p8", "channels": ["p8"]},
        {"id": "someone-elses", "channels": ["x1"]}
    ]);
    let out = reply(&mut t, get_bridges, Ok(&bridges.to_string()));
    assert_eq!(
        reqs(&out),
        ["DELETE /channels/p8", "DELETE /bridges/cp-p8"],
        "the one left alone is hung up and its bridge removed"
    );
    let stasis = |id: &str, data: &str| {
        let mut c = raw("StasisStart-1.json")["channel"].clone();
        c["id"] = id.into();
        c["dialplan"]["app_data"] = data.into();
        c
    };
    let mut other = stasis("x1", "");
    other["dialplan"]["app_name"] = "Dial".into();
    other["dialplan"]["app_data"] = "PJSIP/bob".into();
    let body = serde_json::json!([
        // Transferred to the park code while callpark was frozen: never handled.
        raw("StasisStart-1.json")["channel"],
        // A retrieve that was never handled.
        raw("StasisStart-2.json")["channel"],
        // A ringback leg answered while callpark was down.
        stasis("leg1", "callpark,leg"),
        stasis("p9", "callpark,park"),
        stasis("r9", "callpark,retrieve,702"),
        other,
    ]);
    let out = reply(&mut t, get_channels, Ok(&body.to_string()));
    let PbxEvent::Connected { channels } = &out.events[0] else {
        panic!("{:?}", out.events)
    };
    assert_eq!(channels.len(), 6);
    let found: Vec<&Event> = out.events[1..]
        .iter()
        .map(|e| match e {
            PbxEvent::Found(e) => e,
            e => panic!("only found channels follow the listing: {e:?}"),
        })
        .collect();
    assert_eq!(
        found,
        [
            &Event::Retrieve {
                channel: ChannelId::new("1795360461.8"),
                orbit: "701".parse().unwrap(),
                by: Party {
                    name: "Bob".into(),
                    number: "200".into()
                },
                dialler: Parker {
                    ids: vec!["200".into(), "Local/answer@phones".into()],
                    endpoint: None,
                    display: "Local/answer@phones".into(),
                },
            },
            &Event::Answered {
                channel: ChannelId::new("leg1")
            },
            &Event::Bridged {
                channel: ChannelId::new("p9")
            },
        ]
    );
    // The park waits for who parked it, read over REST like any park without channelvars.
    let [lookup] = &out.requests[..] else {
        panic!("{:?}", reqs(&out))
    };
    assert_eq!(reqs(&out), ["GET /channels/1795360454.4/variable"]);
    let out = reply(&mut t, lookup.clone(), Err(not_found("BLINDTRANSFER")));
    let out = reply(
        &mut t,
        out.requests[0].clone(),
        Err(not_found("ATTENDEDTRANSFER")),
    );
    let out = reply(
        &mut t,
        out.requests[0].clone(),
        Err(not_found("FORWARDERNAME")),
    );
    let [PbxEvent::Found(Event::Park(ParkRequest { channel, .. }))] = &out.events[..] else {
        panic!("{:?}", out.events)
    };
    assert_eq!(channel.as_str(), "1795360454.4");
    // The pair found bridged is known as one: r9 leaving ends p9 as well.
    let mut left = raw("ChannelLeftBridge-1.json");
    left["channel"]["id"] = "r9".into();
    left["bridge"]["id"] = "cp-p9".into();
    let out = wire(&mut t, event(&left));
    assert!(
        reqs(&out).contains(&"DELETE /channels/p9".to_string()),
        "{:?}",
        reqs(&out)
    );
}

#[test]
fn a_call_transferred_to_this_orbit_on_the_other_pbx_parks_with_its_transferer() {
    let mut t = tr();
    let mut v = raw("StasisStart-1.json");
    // The include's trunk branch: X-Callpark-Park as the fifth argument, no transfer here.
    v["args"] = serde_json::json!(["park", "", "701", "moh", "pbx-b/loopback/dev-alice-a"]);
    v["channel"]["channelvars"] = serde_json::json!({"BLINDTRANSFER": "", "ATTENDEDTRANSFER": ""});
    let out = wire(&mut t, event(&v));
    assert!(out.requests.is_empty(), "no transfer variable to read");
    let [
        Event::Park(ParkRequest {
            parker,
            announce_to,
            orbit,
            ..
        }),
    ] = &calls(&out)[..]
    else {
        panic!("{:?}", out.events)
    };
    assert_eq!(orbit.map(|o| o.to_string()).as_deref(), Some("701"));
    assert_eq!(
        parker.endpoint.as_deref(),
        Some("PJSIP/dev-alice@freeswitch"),
        "rung back over the trunk, through pbx-b's reach"
    );
    assert_eq!(parker.display, "dev-alice@pbx-b");
    assert_eq!(
        *announce_to, None,
        "the caller parked nobody: not told the orbit"
    );
    let ch = ChannelId::new("1795360454.4");
    assert!(
        cmd(
            &mut t,
            Command::StartMoh {
                channel: ch,
                moh: Moh::Class(None),
            },
        )
        .is_empty(),
        "on hold by the include already"
    );

    // A header naming a pool with no way back: parked all the same, with nobody to ring.
    let mut t = tr();
    v["args"] = serde_json::json!(["park", "", "701", "moh", "pbx-z/PJSIP/bob-00000001"]);
    let out = wire(&mut t, event(&v));
    let [
        Event::Park(ParkRequest {
            parker,
            announce_to,
            ..
        }),
    ] = &calls(&out)[..]
    else {
        panic!("{:?}", out.events)
    };
    assert_eq!(parker.endpoint, None);
    assert_eq!(*announce_to, None);
}

#[test]
fn a_call_the_include_put_on_hold_keeps_that_music_until_it_is_stopped() {
    let mut t = tr();
    let mut v = raw("StasisStart-1.json");
    v["args"] = serde_json::json!(["park", "", "", "moh"]);
    v["channel"]["channelvars"] =
        serde_json::json!({"BLINDTRANSFER": "PJSIP/alice-00000012", "ATTENDEDTRANSFER": ""});
    let out = wire(&mut t, event(&v));
    let [Event::Park(ParkRequest { lot, orbit, .. })] = &calls(&out)[..] else {
        panic!("{:?}", out.events)
    };
    assert_eq!(
        (lot, orbit),
        (&None, &None),
        "empty arguments are not a lot or orbit"
    );
    let ch = ChannelId::new("1795360454.4");
    let moh = |t: &mut AriTranslator| {
        cmd(
            t,
            Command::StartMoh {
                channel: ch.clone(),
                moh: Moh::Class(None),
            },
        )
    };
    assert!(
        moh(&mut t).is_empty(),
        "on hold already: no REST round trip"
    );
    let out = cmd(
        &mut t,
        Command::StopMoh {
            channel: ch.clone(),
        },
    );
    assert_eq!(reqs(&out), ["DELETE /channels/1795360454.4/moh"]);
    assert_eq!(reqs(&moh(&mut t)), ["POST /channels/1795360454.4/moh"]);
}

#[test]
fn what_this_connection_handled_live_is_not_adopted_again_and_a_bridge_is_asked_once() {
    let mut t = tr();
    let mut out = Output::default();
    t.on_connect(Default::default(), &mut out);
    let (get_bridges, get_channels) = (out.requests[0].clone(), out.requests[1].clone());
    // The bridges are listed before anything happens...
    reply(&mut t, get_bridges, Ok("[]"));
    // ...then a ringback leg answers and the core asks for its bridge...
    let mut start = raw("StasisStart-1.json");
    start["args"] = serde_json::json!(["leg"]);
    start["channel"]["id"] = "leg1".into();
    let out = wire(&mut t, event(&start));
    assert_eq!(
        calls(&out),
        [Event::Answered {
            channel: ChannelId::new("leg1")
        }]
    );
    let bridge = Command::Bridge {
        parked: ChannelId::new("p1"),
        other: ChannelId::new("leg1"),
    };
    let out = cmd(&mut t, bridge.clone());
    assert_eq!(reqs(&out), ["DELETE /bridges/cp-p1", "POST /bridges/cp-p1"]);
    // ...and the channel listing, older than those events, still shows both in Stasis and in no
    // bridge: neither is reported again (that would ask for the bridge a second time).
    let mut leg = start["channel"].clone();
    leg["dialplan"]["app_data"] = "callpark,leg".into();
    let mut parked = raw("StasisStart-1.json")["channel"].clone();
    parked["id"] = "p1".into();
    let out = reply(
        &mut t,
        get_channels,
        Ok(&serde_json::json!([leg, parked]).to_string()),
    );
    assert!(
        out.events[1..].is_empty(),
        "nothing found twice: {:?}",
        out.events
    );
    // Asked again while it is being built: nothing is torn down.
    assert!(cmd(&mut t, bridge.clone()).is_empty());
    let mut entered = raw("ChannelEnteredBridge-1.json");
    entered["bridge"]["id"] = "cp-p1".into();
    entered["bridge"]["channels"] = serde_json::json!(["p1", "leg1"]);
    let out = wire(&mut t, event(&entered));
    assert_eq!(
        calls(&out),
        [Event::Bridged {
            channel: ChannelId::new("p1")
        }]
    );
    // Asked again once it is up: it is reported up, not rebuilt.
    let out = cmd(&mut t, bridge);
    assert!(out.requests.is_empty(), "{:?}", reqs(&out));
    assert_eq!(
        calls(&out),
        [Event::Bridged {
            channel: ChannelId::new("p1")
        }]
    );
}

/// Issue 11.5: the core's ringback caller id (`Parked 701: O'Brien, Zoë` once the caller's name
/// is in it) reaches ARI as `"name" <number>` that Asterisk's parser reads back intact: commas,
/// colons, apostrophes and non-ASCII stand as they are, `"` and `\` are escaped
/// (ast_unescape_quoted), and nothing in the number can end it early.
#[test]
fn ringback_caller_id_survives_asterisks_callerid_parser() {
    let originate = |name: &str, number: &str| {
        let mut t = tr();
        let out = cmd(
            &mut t,
            Command::Originate {
                channel: ChannelId::new("1795360456.7"),
                target: Target::Endpoint("PJSIP/alice".into()),
                caller_id: Party {
                    name: name.into(),
                    number: number.into(),
                },
                timeout_ms: 3_000,
                purpose: LegPurpose::Ringback { attempt: 1 },
            },
        );
        out.requests[0]
            .query
            .iter()
            .find(|(k, _)| *k == "callerId")
            .map(|(_, v)| v.clone())
            .expect("a callerId")
    };
    assert_eq!(
        originate("Parked 701: O'Brien, Zoë", "5551234"),
        "\"Parked 701: O'Brien, Zoë\" <5551234>"
    );
    assert_eq!(
        originate("Parked 701: \"Big\" Al \\o/", "+44 20 7946 0000"),
        "\"Parked 701: \\\"Big\\\" Al \\\\o/\" <+44 20 7946 0000>"
    );
    assert_eq!(
        originate("Parked 701", "<5551234>"),
        "\"Parked 701\" <5551234>"
    );
    assert_eq!(originate("", ""), "\"\" <>");
}

/// Each lamp is the device state PJSIP turns into the dialog-info `<state>` a phone shows
/// (Asterisk 22): NOT_INUSE `terminated`, INUSE `confirmed`, RINGING `early`. RINGINUSE would
/// be `confirmed` too, and the key would not blink while the call rings back.
#[test]
fn lamps_are_device_states_a_phone_can_tell_apart() {
    use callpark::park::LampState;
    let mut t = tr();
    for (orbit, state, want) in [
        ("701", LampState::InUse, "INUSE"),
        ("701", LampState::Ringing, "RINGING"),
        ("701", LampState::Idle, "NOT_INUSE"),
        ("*7001", LampState::InUse, "INUSE"),
    ] {
        let out = cmd(
            &mut t,
            Command::Lamp {
                orbit: orbit.parse().unwrap(),
                state,
            },
        );
        assert_eq!(out.requests.len(), 1);
        let r = &out.requests[0];
        assert_eq!(r.method, Verb::Put);
        assert_eq!(r.path, format!("/deviceStates/Stasis:callpark-{orbit}"));
        assert_eq!(r.query, vec![("deviceState", want.to_string())]);
        assert_eq!(
            r.key.as_deref(),
            Some(format!("Stasis:callpark-{orbit}").as_str())
        );
    }
}

/// Events captured on the testbed while PJSIP's pjsua2 did a gesture (tests/data/asterisk).
fn gesture(name: &str) -> Vec<Value> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/asterisk")
        .join(name);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A lookup's reply: the variable's value, or not set.
fn var_reply(t: &mut AriTranslator, out: &Output<Request>, value: Option<&str>) -> Output<Request> {
    let r = out.requests[0].clone();
    match value {
        Some(v) => reply(t, r, Ok(&serde_json::json!({ "value": v }).to_string())),
        None => {
            let path = r.path.clone();
            reply(t, r, Err(not_found(&path)))
        }
    }
}

#[test]
fn the_caller_swapped_in_by_refer_with_replaces_takes_the_consultations_place() {
    let [consultation, caller] = &gesture("attended-transfer-to-park.jsonl")[..] else {
        panic!("two StasisStarts")
    };
    let mut t = tr();
    // The consultation dialled the park code: it parks itself, hearing the orbit (its
    // channelvars lack FORWARDERNAME, which is read over REST).
    let out = wire(&mut t, event(consultation));
    let out = var_reply(&mut t, &out, None);
    let k = ChannelId::new(consultation["channel"]["id"].as_str().unwrap());
    let [Event::Park(ParkRequest { announce_to, .. })] = &calls(&out)[..] else {
        panic!("{:?}", out.events)
    };
    assert_eq!(announce_to.as_ref(), Some(&k));
    // No arguments, `replace_channel` naming the consultation, ATTENDEDTRANSFER the phone.
    assert_eq!(caller["args"], serde_json::json!([]));
    let out = wire(&mut t, event(caller));
    let out = if calls(&out).is_empty() {
        var_reply(&mut t, &out, None)
    } else {
        out
    };
    let [
        Event::Park(ParkRequest {
            channel,
            parker,
            announce_to,
            replaces,
            ..
        }),
    ] = &calls(&out)[..]
    else {
        panic!("{:?} {:?}", out.events, out.requests)
    };
    assert_eq!(channel.as_str(), caller["channel"]["id"].as_str().unwrap());
    assert_eq!(
        replaces.as_ref(),
        Some(&k),
        "it takes the consultation's orbit"
    );
    assert_eq!(parker.endpoint.as_deref(), Some("PJSIP/alice"));
    assert_eq!(*announce_to, None, "the phone has left the call");
    assert!(
        !out.requests.iter().any(|r| r.path.ends_with("/continue")),
        "never sent back to the dialplan (which hangs up)"
    );
}

#[test]
fn a_stasis_entry_with_nothing_to_say_why_is_parked_not_sent_back() {
    let mut t = tr();
    let mut v = raw("StasisStart-1.json");
    v["args"] = serde_json::json!([]);
    v["channel"]["channelvars"] =
        serde_json::json!({"BLINDTRANSFER": "", "ATTENDEDTRANSFER": "", "FORWARDERNAME": ""});
    let out = wire(&mut t, event(&v));
    assert!(
        matches!(&calls(&out)[..], [Event::Park(_)]),
        "{:?}",
        out.events
    );
    assert!(!out.requests.iter().any(|r| r.path.ends_with("/continue")));
}

#[test]
fn a_call_deflected_by_a_phone_names_it_as_the_parker() {
    let [deflected] = &gesture("deflect-to-park.jsonl")[..] else {
        panic!("one StasisStart")
    };
    let mut t = tr();
    // Captured with channelvars of BLINDTRANSFER and ATTENDEDTRANSFER only: FORWARDERNAME is
    // read over REST; Dial set it to the channel of the phone that answered with a 302.
    let out = wire(&mut t, event(deflected));
    assert_eq!(
        out.requests[0].query,
        [("variable", "FORWARDERNAME".to_string())]
    );
    let out = var_reply(&mut t, &out, Some("PJSIP/alice-00000009"));
    let [
        Event::Park(ParkRequest {
            parker,
            announce_to,
            ..
        }),
    ] = &calls(&out)[..]
    else {
        panic!("{:?}", out.events)
    };
    assert_eq!(parker.endpoint.as_deref(), Some("PJSIP/alice"));
    assert_eq!(*announce_to, None, "the caller is not the parker");
}

/// A stand-in Asterisk for the volume test below: answers every request the translator
/// makes (in order, as the transport would hand the replies back) and hands on what the
/// translator reports.
struct FakeAri {
    pending: std::collections::VecDeque<Request>,
    events: Vec<PbxEvent>,
    /// The id of the last playback started.
    played: String,
}

impl FakeAri {
    fn take(&mut self, out: Output<Request>) {
        for r in &out.requests {
            if let Some((_, id)) = r.path.split_once("/play/") {
                self.played = id.to_string();
            }
        }
        self.pending.extend(out.requests);
        self.events.extend(out.events);
    }

    fn wire(&mut self, t: &mut AriTranslator, v: Value) {
        let out = wire(t, event(&v));
        self.take(out);
    }

    fn cmd(&mut self, t: &mut AriTranslator, c: Command) {
        let out = cmd(t, c);
        self.take(out);
    }

    /// Answers every request, and those they lead to: a transfer variable names a phone for
    /// BLINDTRANSFER and is unset otherwise; everything else succeeds.
    fn answer_all(&mut self, t: &mut AriTranslator) {
        while let Some(r) = self.pending.pop_front() {
            let body = match &r.query[..] {
                [("variable", v)] if v == "BLINDTRANSFER" => {
                    Ok(r#"{"value":"PJSIP/bob-00000001"}"#.to_string())
                }
                [("variable", _)] => Ok(r#"{"value":""}"#.to_string()),
                _ => Ok("{}".to_string()),
            };
            let mut out = Output::default();
            t.on_reply(r, body, &mut out);
            self.take(out);
        }
    }

    /// Fails every request as the transport does when it gives the connection up.
    fn lose_all(&mut self, t: &mut AriTranslator) {
        while let Some(r) = self.pending.pop_front() {
            let lost = Failure::Lost {
                text: format!("ARI {} {}: abandoned", r.method, r.path),
            };
            let mut out = Output::default();
            t.on_reply(r, Err(lost), &mut out);
            self.take(out);
        }
    }

    /// A reconnection that finds `live` in the Stasis application and no bridge.
    fn reconnect(&mut self, t: &mut AriTranslator, live: Vec<Value>) {
        t.on_disconnect();
        self.lose_all(t);
        let mut out = Output::default();
        t.on_connect(Default::default(), &mut out);
        for r in out.requests {
            let body = match r.tag {
                Tag::Bridges => "[]".to_string(),
                Tag::List => Value::Array(live.clone()).to_string(),
                _ => "{}".to_string(),
            };
            let mut o = Output::default();
            t.on_reply(r, Ok(body), &mut o);
            self.take(o);
        }
        self.answer_all(t);
    }
}

fn chan_json(id: &str, app_data: &str, vars: bool) -> Value {
    let mut c = serde_json::json!({
        "id": id,
        "name": format!("PJSIP/alice-{id}"),
        "state": "Up",
        "caller": {"name": "Alice", "number": "100"},
        "dialplan": {"context": "phones", "exten": "700", "priority": 1,
                     "app_name": "Stasis", "app_data": app_data},
    });
    if vars {
        c["channelvars"] = serde_json::json!({
            "BLINDTRANSFER": "PJSIP/bob-00000001", "ATTENDEDTRANSFER": "", "FORWARDERNAME": ""
        });
    }
    c
}

fn stasis_start(id: &str, args: &[&str], vars: bool) -> Value {
    let data = std::iter::once("callpark")
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(",");
    serde_json::json!({"type": "StasisStart", "args": args, "channel": chan_json(id, &data, vars)})
}

fn gone(id: &str) -> [Value; 2] {
    let c = chan_json(id, "", false);
    [
        serde_json::json!({"type": "StasisEnd", "channel": c}),
        serde_json::json!({"type": "ChannelDestroyed", "channel": c, "cause": 16,
                           "cause_txt": "Normal Clearing"}),
    ]
}

/// Months of calls in one go: 100,000 calls through every path that creates state in the
/// translator (parks resolved over REST, music files, the spoken orbit, retrieves and their
/// bridges, ringbacks answered and not, retrieves of an empty orbit, a caller gone before
/// the core's commands reach it, calls that end while the connection is down, requests
/// abandoned with a connection). Once they have all ended, the translator holds what it
/// held before the first.
#[test]
fn a_hundred_thousand_calls_leave_no_state_behind() {
    let mut t = tr();
    let mut pbx = FakeAri {
        pending: Default::default(),
        events: Vec::new(),
        played: String::new(),
    };
    // Connected once, with nothing in Stasis.
    pbx.reconnect(&mut t, vec![]);
    let start = t.state_size();
    let music = Moh::File("/var/lib/callpark/music/hold.wav".into());
    let orbit: callpark::orbit::Orbit = "701".parse().unwrap();
    let (mut parks, mut bridged, mut answered) = (0, 0, 0);
    for i in 0..100_000u32 {
        let (p, r, l) = (format!("p{i}"), format!("r{i}"), format!("l{i}"));
        let (pid, rid, lid) = (
            ChannelId::new(p.clone()),
            ChannelId::new(r.clone()),
            ChannelId::new(l.clone()),
        );
        match i % 6 {
            // Parked (who parked read over REST), music from a file that loops, retrieved.
            0 => {
                pbx.wire(&mut t, stasis_start(&p, &["park"], false));
                pbx.answer_all(&mut t);
                pbx.cmd(
                    &mut t,
                    Command::Answer {
                        channel: pid.clone(),
                    },
                );
                pbx.cmd(
                    &mut t,
                    Command::StartMoh {
                        channel: pid.clone(),
                        moh: music.clone(),
                    },
                );
                pbx.cmd(
                    &mut t,
                    Command::Lamp {
                        orbit,
                        state: callpark::park::LampState::InUse,
                    },
                );
                pbx.answer_all(&mut t);
                // The file ends once and is played again.
                let first = pbx.played.clone();
                pbx.wire(
                    &mut t,
                    serde_json::json!({"type": "PlaybackFinished",
                    "playback": {"id": first, "state": "done"}}),
                );
                pbx.answer_all(&mut t);
                assert_ne!(pbx.played, first, "the music file loops");
                pbx.wire(&mut t, stasis_start(&r, &["retrieve", "701"], false));
                pbx.cmd(
                    &mut t,
                    Command::StopMoh {
                        channel: pid.clone(),
                    },
                );
                pbx.cmd(
                    &mut t,
                    Command::Bridge {
                        parked: pid.clone(),
                        other: rid.clone(),
                    },
                );
                pbx.answer_all(&mut t);
                let b = format!("cp-{p}");
                pbx.wire(
                    &mut t,
                    serde_json::json!({"type": "ChannelEnteredBridge",
                    "bridge": {"id": b, "channels": [p, r]}, "channel": chan_json(&r, "", false)}),
                );
                pbx.wire(
                    &mut t,
                    serde_json::json!({"type": "ChannelLeftBridge",
                    "bridge": {"id": b, "channels": [p]}, "channel": chan_json(&r, "", false)}),
                );
                pbx.answer_all(&mut t);
                for v in gone(&r).into_iter().chain(gone(&p)) {
                    pbx.wire(&mut t, v);
                }
                let last = pbx.played.clone();
                pbx.wire(
                    &mut t,
                    serde_json::json!({"type": "PlaybackFinished",
                    "playback": {"id": last, "state": "done"}}),
                );
            }
            // The caller hangs up as it is parked: the core's commands arrive after the end.
            1 => {
                pbx.wire(&mut t, stasis_start(&p, &["park"], true));
                for v in gone(&p) {
                    pbx.wire(&mut t, v);
                }
                pbx.cmd(
                    &mut t,
                    Command::Answer {
                        channel: pid.clone(),
                    },
                );
                pbx.cmd(
                    &mut t,
                    Command::Announce {
                        channel: pid.clone(),
                        orbit,
                    },
                );
                pbx.cmd(
                    &mut t,
                    Command::StartMoh {
                        channel: pid.clone(),
                        moh: music.clone(),
                    },
                );
                pbx.answer_all(&mut t);
            }
            // A ringback the parker answers, then one nobody answers.
            2 => {
                for (leg, answers) in [(&lid, true), (&rid, false)] {
                    pbx.cmd(
                        &mut t,
                        Command::Originate {
                            channel: leg.clone(),
                            target: Target::Endpoint("PJSIP/bob".into()),
                            caller_id: Party {
                                name: "Parked 701".into(),
                                number: "701".into(),
                            },
                            timeout_ms: 20_000,
                            purpose: callpark::park::LegPurpose::Ringback { attempt: 1 },
                        },
                    );
                    pbx.answer_all(&mut t);
                    if answers {
                        pbx.wire(&mut t, stasis_start(leg.as_str(), &["leg"], false));
                    }
                    for v in gone(leg.as_str()) {
                        pbx.wire(&mut t, v);
                    }
                }
            }
            // A retrieve of an empty orbit: told so, then hung up.
            3 => {
                pbx.wire(&mut t, stasis_start(&r, &["retrieve", "702"], false));
                pbx.cmd(
                    &mut t,
                    Command::OrbitEmpty {
                        channel: rid.clone(),
                        orbit,
                    },
                );
                pbx.answer_all(&mut t);
                let told = pbx.played.clone();
                pbx.wire(
                    &mut t,
                    serde_json::json!({"type": "PlaybackFinished",
                    "playback": {"id": told, "state": "done"}}),
                );
                // Then hung up.
                assert!(
                    pbx.pending
                        .iter()
                        .any(|q| q.method == Verb::Delete && q.path == format!("/channels/{r}"))
                );
                pbx.answer_all(&mut t);
                for v in gone(&r) {
                    pbx.wire(&mut t, v);
                }
            }
            // The connection is given up while a park's variables are read; the call has
            // gone by the time callpark is back.
            4 => {
                pbx.wire(&mut t, stasis_start(&p, &["park"], false));
                pbx.reconnect(&mut t, vec![]);
            }
            // A parked call with its music ends while the connection is down.
            _ => {
                pbx.wire(&mut t, stasis_start(&p, &["park"], true));
                pbx.cmd(
                    &mut t,
                    Command::StartMoh {
                        channel: pid.clone(),
                        moh: music.clone(),
                    },
                );
                pbx.cmd(
                    &mut t,
                    Command::Announce {
                        channel: pid.clone(),
                        orbit,
                    },
                );
                pbx.answer_all(&mut t);
                pbx.reconnect(&mut t, vec![]);
            }
        }
        for e in pbx.events.drain(..) {
            match e {
                PbxEvent::Call(Event::Park(_)) => parks += 1,
                PbxEvent::Call(Event::Bridged { .. }) => bridged += 1,
                PbxEvent::Call(Event::Answered { .. }) => answered += 1,
                _ => {}
            }
        }
        if i % 10_000 == 9_999 {
            assert_eq!(t.state_size(), start, "after {} calls", i + 1);
        }
    }
    // The calls took the paths meant for them.
    assert_eq!((parks, bridged, answered), (50_000, 16_667, 16_667));
    assert_eq!(t.state_size(), start);
}

/// A channel whose ChannelDestroyed never reached callpark (it ended as a connection was
/// being made) is reported gone as soon as Asterisk says it does not know it, once.
#[test]
fn a_channel_asterisk_does_not_know_is_reported_gone_once() {
    let mut t = tr();
    let gone = ChannelId::new("1796531281.5013");
    let out = cmd(
        &mut t,
        Command::StartMoh {
            channel: gone.clone(),
            moh: Moh::Class(None),
        },
    );
    let [moh] = &out.requests[..] else {
        panic!("{:?}", reqs(&out))
    };
    let unknown = |path: &str| Failure::status(Verb::Post, path, 404, "Channel not found");
    let out = reply(&mut t, moh.clone(), Err(unknown(&moh.path)));
    assert_eq!(
        calls(&out),
        [Event::Hangup {
            channel: gone.clone()
        }]
    );
    // Said again (the core's hang-up of it): nothing more.
    let out = cmd(
        &mut t,
        Command::Hangup {
            channel: gone.clone(),
        },
    );
    let out = reply(
        &mut t,
        out.requests[0].clone(),
        Err(unknown("/channels/1796531281.5013")),
    );
    assert!(out.events.is_empty());
    // A variable that is not set is no sign of a channel gone.
    let other = ChannelId::new("1796531281.5014");
    let mut out = Output::default();
    t.on_wire(
        event(&stasis_start(other.as_str(), &["park"], false)),
        &mut out,
    );
    let out = reply(
        &mut t,
        out.requests[0].clone(),
        Err(not_found("BLINDTRANSFER")),
    );
    assert!(!calls(&out).contains(&Event::Hangup { channel: other }));
}

/// A connection lost in the middle of a reconnection's adoption (its bridge listing read, its
/// channel listing read and a park's transfer variables being read) leaves nothing of that
/// adoption behind; the next connection's listing finds the park again.
#[test]
fn a_disconnect_during_adoption_leaves_nothing_behind() {
    let mut t = tr();
    let mut pbx = FakeAri {
        pending: Default::default(),
        events: Vec::new(),
        played: String::new(),
    };
    // A parked call the translator knows the channel of.
    pbx.reconnect(&mut t, vec![chan_json("p1", "callpark,park", true)]);
    let start = t.state_size();
    assert!(start > 0);
    let bridges = serde_json::json!([{"id": "cp-x1", "channels": ["x1"]}]).to_string();
    // A park waiting in Stasis, not answered yet, whose transfer variables are to be read.
    let mut waiting = chan_json("q1", "callpark,park", false);
    waiting["state"] = "Ring".into();
    let listing = Value::Array(vec![
        chan_json("p1", "callpark,park", true),
        waiting.clone(),
    ]);
    // Connects and has the listings answered, the channels' only if `channels`; gives back the
    // requests left unanswered.
    let adopt = |t: &mut AriTranslator, channels: bool| -> Vec<Request> {
        t.on_disconnect();
        let mut out = Output::default();
        t.on_connect(Default::default(), &mut out);
        let mut left = Vec::new();
        for r in out.requests {
            let body = match r.tag {
                Tag::Bridges => bridges.clone(),
                Tag::List if channels => listing.to_string(),
                _ => {
                    left.push(r);
                    continue;
                }
            };
            let mut o = Output::default();
            t.on_reply(r, Ok(body), &mut o);
            left.extend(o.requests);
        }
        left
    };
    // Lost between the bridge listing and the channel listing.
    let left = adopt(&mut t, false);
    assert!(t.state_size() > start);
    t.on_disconnect();
    assert_eq!(t.state_size(), start);
    pbx.pending.extend(left);
    pbx.lose_all(&mut t);
    assert_eq!(t.state_size(), start);
    // Lost while the waiting park's transfer variables are read.
    let left = adopt(&mut t, true);
    assert!(
        left.iter()
            .any(|r| matches!(&r.tag, Tag::Var(id, _) if id.as_str() == "q1")),
        "{left:?}"
    );
    assert!(t.state_size() > start);
    t.on_disconnect();
    assert_eq!(t.state_size(), start, "nothing of the adoption is left");
    pbx.events.clear();
    pbx.pending.extend(left);
    pbx.lose_all(&mut t);
    assert!(pbx.events.is_empty(), "{:?}", pbx.events);
    assert_eq!(t.state_size(), start);
    // The next connection finds the park again, and reports it found.
    pbx.reconnect(
        &mut t,
        vec![chan_json("p1", "callpark,park", true), waiting],
    );
    assert!(
        pbx.events.iter().any(|e| matches!(
            e,
            PbxEvent::Found(Event::Park(ParkRequest { channel, .. })) if channel.as_str() == "q1"
        )),
        "{:?}",
        pbx.events
    );
}

/// Park and page: a Local channel into the include's `[callpark-page]`, the destination's
/// dial string in its variables (its far side dials it with the auto-answer headers), never
/// into Stasis; ending it is a DELETE whose 404 (the page was over) is routine.
#[test]
fn a_page_is_a_local_channel_into_the_includes_page_context() {
    let mut t = tr();
    let leg = ChannelId::new("1795360454.4").leg("pg1");
    let out = cmd(
        &mut t,
        Command::Page {
            channel: leg.clone(),
            target: callpark::park::Destination::parse("sip:8000@paging.example.com").unwrap(),
            orbit: "701".parse().unwrap(),
            caller_id: Party {
                name: "Parked 701: Carol".into(),
                number: "701".into(),
            },
            timeout_ms: 15_000,
        },
    );
    assert_eq!(reqs(&out), [format!("POST /channels/{leg}")]);
    let r = &out.requests[0];
    for q in [
        ("endpoint", "Local/page@callpark-page/n"),
        ("context", "callpark-page"),
        ("extension", "say"),
        ("priority", "1"),
        ("callerId", "\"Parked 701: Carol\" <701>"),
        ("timeout", "15"),
    ] {
        assert!(
            r.query.contains(&(q.0, q.1.to_string())),
            "{q:?} in {:?}",
            r.query
        );
    }
    assert!(!r.query.iter().any(|(k, _)| *k == "app"), "not into Stasis");
    assert_eq!(
        r.variables,
        [
            (
                "_CALLPARK_PAGE_DIAL".to_string(),
                "PJSIP/trunk/sip:8000@paging.example.com".to_string()
            ),
            ("_CALLPARK_PAGE_RING".to_string(), "15".to_string()),
            ("CALLPARK_PAGE_ORBIT".to_string(), "701".to_string()),
        ]
    );
    let out = cmd(
        &mut t,
        Command::EndPage {
            channel: leg.clone(),
        },
    );
    assert_eq!(reqs(&out), [format!("DELETE /channels/{leg}")]);
    let path = format!("/channels/{leg}");
    let after = reply(
        &mut t,
        out.requests[0].clone(),
        Err(Failure::status(
            Verb::Delete,
            &path,
            404,
            "Channel not found",
        )),
    );
    assert!(
        after.events.is_empty() && after.requests.is_empty(),
        "{after:?}"
    );
}
