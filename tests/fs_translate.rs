//! The FreeSWITCH translator without FreeSWITCH: captured events
//! (`tests/data/freeswitch/captured`) and synthetic sequences in, core events and event-socket
//! commands out.

use std::path::PathBuf;

use bytes::BytesMut;
use callpark::config::PbxKind;
use callpark::park::{
    ChannelId, Command, Destination, Event, LampState, LegPurpose, Moh, ParkRequest, Party, Target,
};
use callpark::pbx::freeswitch::codec::{EslCodec, Frame};
use callpark::pbx::freeswitch::model::FsEvent;
use callpark::pbx::freeswitch::translate::{FsSettings, FsTranslator, Reply, Request, Tag};
use callpark::pbx::trunk::Trunks;
use callpark::pbx::{Output, PbxEvent, Translator};
use serde_json::json;
use tokio_util::codec::Decoder;

fn captured_frames() -> Vec<Frame> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/freeswitch/captured/03-main.raw");
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut codec = EslCodec::default();
    let mut buf = BytesMut::from(&bytes[..]);
    let mut out = Vec::new();
    while let Some(f) = codec.decode(&mut buf).unwrap() {
        out.push(f);
    }
    out
}

fn captured_events() -> Vec<FsEvent> {
    captured_frames()
        .iter()
        .filter_map(|f| FsEvent::from_frame(f).ok())
        .collect()
}

fn tr() -> FsTranslator {
    FsTranslator::new(FsSettings {
        pool: "pbx-b".into(),
        sip_profile: Some("internal".into()),
        domain: "example.net".into(),
        // pbx-a, the Asterisk, as the example configuration reaches it.
        trunks: Trunks::default().with_peer(
            "pbx-a",
            PbxKind::Asterisk,
            "{sip_h_X-Callpark-Trunk=freeswitch,absolute_codec_string=PCMU\\,PCMA}sofia/internal/{orbit}@127.0.0.1:5160",
        ),
    })
}

fn wire(t: &mut FsTranslator, ev: FsEvent) -> Output<Request> {
    let mut out = Output::default();
    t.on_wire(ev, &mut out);
    out
}

fn cmd(t: &mut FsTranslator, c: Command) -> Output<Request> {
    let mut out = Output::default();
    t.on_command(c, &mut out);
    out
}

fn lines(out: &Output<Request>) -> Vec<String> {
    out.requests.iter().map(|r| r.out.line.clone()).collect()
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

fn ev(v: serde_json::Value) -> FsEvent {
    FsEvent::from_json(v.to_string().as_bytes()).unwrap()
}

const P: &str = "408eafe2-1686-4d31-ae07-961a32a9f595";

#[test]
fn the_captured_park_and_retrieve_are_taken() {
    let mut t = tr();
    let events = captured_events();
    let park = events
        .iter()
        .find(|e| e.name == "CHANNEL_PARK" && e.callpark_action.as_deref() == Some("park"))
        .unwrap()
        .clone();
    let id = park.uuid.clone().unwrap();
    let out = wire(&mut t, park.clone());
    assert_eq!(
        lines(&out),
        [format!("api sched_del {id}")],
        "the include's fallback is cancelled"
    );
    let [
        Event::Park(ParkRequest {
            channel,
            announce_to,
            parker,
            caller,
            ..
        }),
    ] = &calls(&out)[..]
    else {
        panic!("{:?}", out.events)
    };
    assert_eq!(channel.as_str(), id);
    assert_eq!(
        announce_to.as_ref(),
        Some(channel),
        "dialled directly: the caller hears the orbit"
    );
    assert_eq!(parker.endpoint, None);
    assert_eq!(Some(&caller.number), park.caller_number.as_ref());
    // A second event for a channel already taken changes nothing.
    assert!(wire(&mut t, park).is_empty());

    let retrieve = events
        .iter()
        .find(|e| e.name == "CHANNEL_PARK" && e.callpark_action.as_deref() == Some("retrieve"))
        .unwrap()
        .clone();
    let out = wire(&mut t, retrieve.clone());
    let [Event::Retrieve { orbit, by, .. }] = &calls(&out)[..] else {
        panic!("{:?}", out.events)
    };
    assert_eq!(orbit.to_string(), "701");
    assert_eq!(Some(&by.name), retrieve.caller_name.as_ref());
}

#[test]
fn the_captured_failed_originate_fails_its_leg() {
    let mut t = tr();
    let job = captured_events()
        .into_iter()
        .find(|e| e.name == "BACKGROUND_JOB")
        .unwrap();
    let out = wire(&mut t, job);
    assert_eq!(
        calls(&out),
        [Event::OriginateFailed {
            channel: ChannelId::new("f470cf1a-f331-4045-9ddb-74dfc20e05dc"),
            reason: "NO_ANSWER".into()
        }]
    );
}

#[test]
fn connecting_subscribes_then_lists_channels_and_the_listing_is_the_reconciliation() {
    let mut t = tr();
    let mut out = Output::default();
    t.on_connect(Default::default(), &mut out);
    let l = lines(&out);
    assert!(l[0].starts_with("event json CHANNEL_PARK"));
    assert!(l.iter().any(|x| x == "filter variable_callpark_action /./"));
    assert_eq!(l.last().unwrap(), "api show channels as json");
    let list = out.requests.last().unwrap().clone();
    assert_eq!(list.tag, Tag::List);
    let body = captured_frames()
        .into_iter()
        .find(|f| f.body_text().starts_with("{\"row_count\""))
        .unwrap()
        .body_text()
        .into_owned();
    let mut out = Output::default();
    t.on_reply(list, Reply::Text(body), &mut out);
    let [PbxEvent::Connected { channels }] = &out.events[..] else {
        panic!("{:?}", out.events)
    };
    assert_eq!(channels.len(), 6);
    assert!(channels.contains(&ChannelId::new(P)));
}

#[test]
fn a_call_the_core_holds_parked_is_taken_back_from_its_row_without_reading_it_in_full() {
    let mut t = tr();
    const HELD_PARKED: &str = "77777777-2222-3333-4444-555555555555";
    const HELD_GONE: &str = "88888888-2222-3333-4444-555555555555";
    const OTHER: &str = "99999999-2222-3333-4444-555555555555";
    let held: std::collections::HashSet<ChannelId> = [P, HELD_PARKED, HELD_GONE]
        .into_iter()
        .map(ChannelId::new)
        .collect();
    let mut out = Output::default();
    t.on_connect(held, &mut out);
    let list = out.requests.last().unwrap().clone();
    let row = |uuid: &str, app: &str, data: &str| {
        json!({"uuid": uuid, "name": "loopback/x-a", "application": app,
               "application_data": data, "dest": "park", "callstate": "ACTIVE",
               "state": "CS_EXECUTE"})
    };
    // P on the include's music, one held call in `park`, a parked channel the core does not
    // hold; HELD_GONE is not listed (the reconciliation ends it, not the translator).
    let body = json!({"row_count": 3, "rows": [
        row(P, "playback", "local_stream://moh"),
        row(HELD_PARKED, "park", ""),
        row(OTHER, "park", ""),
    ]});
    let mut out = Output::default();
    t.on_reply(list, Reply::Text(body.to_string()), &mut out);
    // The held call the listing left out is read on its own before anything is reported.
    assert!(out.events.is_empty(), "{:?}", out.events);
    let [verify] = &out.requests[..] else {
        panic!("{:?}", lines(&out))
    };
    assert_eq!(verify.out.line, format!("api uuid_dump {HELD_GONE} json"));
    assert_eq!(verify.tag, Tag::Verify(ChannelId::new(HELD_GONE)));
    let mut out = Output::default();
    t.on_reply(
        verify.clone(),
        Reply::Text("-ERR No such channel!\n".into()),
        &mut out,
    );
    let [PbxEvent::Connected { channels }] = &out.events[..] else {
        panic!("no Found for calls the core holds: {:?}", out.events)
    };
    assert_eq!(channels.len(), 3);
    assert!(!channels.contains(&ChannelId::new(HELD_GONE)));
    assert_eq!(
        lines(&out),
        [
            format!("api sched_del {P}"),
            format!("api sched_del {HELD_PARKED}"),
            format!("api uuid_dump {OTHER} json"),
        ],
        "held calls are taken back at once; only the unknown one is read"
    );
    // Taken back with their states: P's music is the include's, so StartMoh adds none, and
    // the other is answered, so Answer sends nothing either.
    assert!(
        cmd(
            &mut t,
            Command::StartMoh {
                channel: ChannelId::new(P),
                moh: Moh::Class(None),
            }
        )
        .requests
        .is_empty(),
        "P's music plays already"
    );
    assert!(
        cmd(
            &mut t,
            Command::Answer {
                channel: ChannelId::new(HELD_PARKED),
            }
        )
        .requests
        .is_empty(),
        "answered already"
    );
    // What callpark queued on it before the reconnection (the orbit spoken, then music) may
    // still wait in FreeSWITCH: its first bridge flushes it.
    let r = ChannelId::new("11111111-2222-3333-4444-555555555555");
    assert_eq!(
        lines(&cmd(
            &mut t,
            Command::Bridge {
                parked: ChannelId::new(HELD_PARKED),
                other: r.clone(),
            }
        ))[0],
        format!("api uuid_break {HELD_PARKED} all")
    );
    // The held set is used once: a later connection without one reads every channel again.
    t.on_disconnect();
    let mut out = Output::default();
    t.on_connect(Default::default(), &mut out);
    let list = out.requests.last().unwrap().clone();
    let mut out = Output::default();
    t.on_reply(list, Reply::Text(body.to_string()), &mut out);
    assert_eq!(
        lines(&out),
        [
            format!("api uuid_dump {P} json"),
            format!("api uuid_dump {HELD_PARKED} json"),
            format!("api uuid_dump {OTHER} json"),
        ]
    );
}

/// FreeSWITCH's listing is its channel table, filled by an SQL thread after the fact: a
/// parked call it leaves out but that exists (read from its session) is kept, not ended.
#[test]
fn a_held_call_the_listing_leaves_out_is_kept_if_it_exists() {
    let mut t = tr();
    const LATE: &str = "77777777-2222-3333-4444-555555555555";
    const GONE: &str = "88888888-2222-3333-4444-555555555555";
    let held = [LATE, GONE].into_iter().map(ChannelId::new).collect();
    let mut out = Output::default();
    t.on_connect(held, &mut out);
    let list = out.requests.last().unwrap().clone();
    let mut out = Output::default();
    t.on_reply(list, Reply::Text(r#"{"row_count":0}"#.into()), &mut out);
    assert!(out.events.is_empty(), "{:?}", out.events);
    let mut verify: Vec<Request> = out.requests.clone();
    verify.sort_by(|a, b| a.out.line.cmp(&b.out.line));
    assert_eq!(
        verify
            .iter()
            .map(|r| r.out.line.clone())
            .collect::<Vec<_>>(),
        [
            format!("api uuid_dump {LATE} json"),
            format!("api uuid_dump {GONE} json"),
        ]
    );
    // LATE answers first: it is parked, on the include's music. Nothing is reported until
    // GONE is known too.
    let dump = json!({"Event-Name": "CHANNEL_DATA", "Unique-ID": LATE,
        "Channel-Name": "loopback/to-dev-bob-b", "Channel-State": "CS_EXECUTE",
        "Channel-Call-State": "ACTIVE", "Answer-State": "answered",
        "variable_current_application": "playback", "variable_callpark_action": "park"});
    let mut out = Output::default();
    t.on_reply(verify[0].clone(), Reply::Text(dump.to_string()), &mut out);
    assert!(out.events.is_empty() && out.requests.is_empty(), "{out:?}");
    // A second answer for the same channel (a stray) changes nothing.
    t.on_reply(verify[0].clone(), Reply::Text(dump.to_string()), &mut out);
    assert!(out.events.is_empty() && out.requests.is_empty(), "{out:?}");
    let mut out = Output::default();
    t.on_reply(
        verify[1].clone(),
        Reply::Text("-ERR No such channel!\n".into()),
        &mut out,
    );
    let [PbxEvent::Connected { channels }] = &out.events[..] else {
        panic!("{:?}", out.events)
    };
    assert!(
        channels.len() == 1 && channels.contains(&ChannelId::new(LATE)),
        "{channels:?}"
    );
    // Taken back as a held call on its music: the fallback transfer cancelled, no music added.
    assert_eq!(lines(&out), [format!("api sched_del {LATE}")]);
    assert!(
        cmd(
            &mut t,
            Command::StartMoh {
                channel: ChannelId::new(LATE),
                moh: Moh::Class(None),
            }
        )
        .requests
        .is_empty(),
        "its music plays already"
    );
    assert_eq!(t.state_size(), 1, "only LATE is held");

    // A connection lost while waiting leaves nothing behind, and a late answer is ignored.
    let mut t = tr();
    let mut out = Output::default();
    t.on_connect([ChannelId::new(GONE)].into_iter().collect(), &mut out);
    let list = out.requests.last().unwrap().clone();
    let mut out = Output::default();
    t.on_reply(list, Reply::Text(r#"{"row_count":0}"#.into()), &mut out);
    let verify = out.requests[0].clone();
    t.on_disconnect();
    assert_eq!(t.state_size(), 0);
    let mut out = Output::default();
    t.on_reply(verify, Reply::Text(dump.to_string()), &mut out);
    assert!(out.events.is_empty() && out.requests.is_empty(), "{out:?}");
}

#[test]
fn a_reconnection_adopts_what_sits_in_callparks_hands() {
    let mut t = tr();
    let mut out = Output::default();
    t.on_connect(Default::default(), &mut out);
    let list = out.requests.last().unwrap().clone();
    let row = |uuid: &str, app: &str, data: &str| {
        json!({"uuid": uuid, "name": "loopback/x-a", "application": app,
               "application_data": data, "dest": "park"})
    };
    const LEG: &str = "11111111-2222-3333-4444-555555555555";
    const R: &str = "22222222-2222-3333-4444-555555555555";
    const DOWN: &str = "33333333-2222-3333-4444-555555555555";
    const RINGING: &str = "44444444-2222-3333-4444-555555555555";
    let body = json!({"row_count": 6, "rows": [
        row(P, "playback", "local_stream://moh"),
        row(LEG, "park", ""),
        row(R, "uuid_bridge", "55555555-2222-3333-4444-555555555555"),
        row(DOWN, "playback", "ivr/ivr-call_cannot_be_completed_as_dialed.wav"),
        row(RINGING, "", ""),
        row("66666666-2222-3333-4444-555555555555", "sleep", "1000"),
    ]});
    let mut out = Output::default();
    t.on_reply(list, Reply::Text(body.to_string()), &mut out);
    let [
        PbxEvent::Connected { channels },
        PbxEvent::Found(Event::Bridged { channel }),
    ] = &out.events[..]
    else {
        panic!("{:?}", out.events)
    };
    assert_eq!(channels.len(), 6);
    assert_eq!(channel.as_str(), R, "a uuid_bridge is reported bridged");
    assert_eq!(
        lines(&out),
        [
            format!("api uuid_dump {P} json"),
            format!("api uuid_dump {LEG} json"),
            format!("api uuid_dump {DOWN} json"),
        ],
        "only parked channels and channels on music may be callpark's: those are read"
    );
    let dumps = out.requests.clone();
    let dump = |t: &mut FsTranslator, i: usize, v: serde_json::Value| {
        let mut out = Output::default();
        t.on_reply(dumps[i].clone(), Reply::Text(v.to_string()), &mut out);
        out
    };
    // A transferred call on the include's music that callpark never took (it was frozen).
    let out = dump(
        &mut t,
        0,
        json!({"Event-Name": "CHANNEL_DATA", "Unique-ID": P, "Answer-State": "answered",
               "Caller-Caller-ID-Name": "Carol", "Caller-Caller-ID-Number": "5551234",
               "Caller-Context": "callpark-test", "Caller-Destination-Number": "park",
               "variable_current_application": "playback",
               "variable_callpark_action": "park",
               "variable_bridge_channel": "sofia/internal/alice@192.0.2.7:5060",
               "variable_transfer_source": "1795433982:88c7:bl_xfer:park/callpark-test/XML"}),
    );
    assert_eq!(lines(&out), [format!("api sched_del {P}")], "taken");
    let [
        PbxEvent::Found(Event::Park(ParkRequest {
            channel, parker, ..
        })),
    ] = &out.events[..]
    else {
        panic!("{:?}", out.events)
    };
    assert_eq!(channel.as_str(), P);
    assert_eq!(
        parker.endpoint.as_deref(),
        Some("sofia/internal/alice@192.0.2.7:5060")
    );
    // Its music plays already: the core's StartMoh adds none.
    assert!(
        cmd(
            &mut t,
            Command::StartMoh {
                channel: ChannelId::new(P),
                moh: Moh::Class(None)
            }
        )
        .is_empty()
    );
    // A ringback leg answered and parked by its originate while callpark was down.
    let out = dump(
        &mut t,
        1,
        json!({"Event-Name": "CHANNEL_DATA", "Unique-ID": LEG, "Answer-State": "answered",
               "variable_current_application": "park", "variable_callpark_leg": LEG}),
    );
    assert!(out.requests.is_empty());
    assert_eq!(
        &out.events[..],
        [PbxEvent::Found(Event::Answered {
            channel: ChannelId::new(LEG)
        })]
    );
    // On the include's "callpark is down" path already: left to it.
    let out = dump(
        &mut t,
        2,
        json!({"Event-Name": "CHANNEL_DATA", "Unique-ID": DOWN, "Answer-State": "answered",
               "Caller-Destination-Number": "callpark-down-park",
               "variable_current_application": "playback", "variable_callpark_action": "park"}),
    );
    assert!(out.is_empty(), "{:?}", out.events);
    // Gone before its dump: nothing to adopt.
    let mut out = Output::default();
    t.on_reply(
        dumps[2].clone(),
        Reply::Text("-ERR No such channel!\n".into()),
        &mut out,
    );
    assert!(out.is_empty());
}

#[test]
fn a_call_transferred_to_this_orbit_on_the_other_pbx_parks_and_rings_its_transferer_back() {
    let mut t = tr();
    // What FreeSWITCH sends when the include starts the music of a call that Asterisk sent
    // over the trunk with X-Callpark-Park: no transfer here, not answered yet.
    let out = wire(
        &mut t,
        ev(json!({
            "Event-Name": "CHANNEL_EXECUTE",
            "Unique-ID": P,
            "Application": "playback",
            "Answer-State": "early",
            "Caller-Caller-ID-Name": "Carol",
            "Caller-Caller-ID-Number": "5551234",
            "Caller-Context": "callpark-test",
            "variable_callpark_action": "park",
            "variable_callpark_orbit": "601",
            "variable_sip_h_X-Callpark-Park": "pbx-a/Local/to-dev-alice@calls-00000003;2",
        })),
    );
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
    assert_eq!(orbit.map(|o| o.to_string()).as_deref(), Some("601"));
    let back = "{sip_h_X-Callpark-Trunk=freeswitch,absolute_codec_string=PCMU\\,PCMA}sofia/internal/to-dev-alice@127.0.0.1:5160";
    assert_eq!(parker.endpoint.as_deref(), Some(back));
    assert_eq!(
        *announce_to, None,
        "the caller parked nobody: not told the orbit"
    );
    // Not answered: callpark answers it.
    let p = ChannelId::new(P);
    assert_eq!(
        lines(&cmd(&mut t, Command::Answer { channel: p.clone() })),
        [format!("api uuid_answer {p}")]
    );
    // The ringback: the route's own variables join callpark's in one block.
    let leg = p.leg("rb1");
    let out = cmd(
        &mut t,
        Command::Originate {
            channel: leg.clone(),
            target: Target::Endpoint(back.into()),
            caller_id: Party {
                name: "Parked 601".into(),
                number: "5551234".into(),
            },
            timeout_ms: 20_000,
            purpose: LegPurpose::Ringback { attempt: 1 },
        },
    );
    assert_eq!(
        out.requests[0].out.line,
        format!(
            "bgapi originate {{origination_uuid={leg},callpark_leg={leg},origination_caller_id_name='Parked 601',origination_caller_id_number='5551234',originate_timeout=20,hangup_after_bridge=true,rdnis=callpark-return,sip_h_X-Callpark-Trunk=freeswitch,absolute_codec_string=PCMU\\,PCMA}}sofia/internal/to-dev-alice@127.0.0.1:5160 &park()"
        )
    );
}

#[test]
fn a_blind_transfer_names_the_transferer_and_the_include_music_is_kept() {
    let mut t = tr();
    // What FreeSWITCH sends when the include starts the hold music of a transferred call.
    let out = wire(
        &mut t,
        ev(json!({
            "Event-Name": "CHANNEL_EXECUTE",
            "Unique-ID": P,
            "Application": "playback",
            "Answer-State": "answered",
            "Caller-Caller-ID-Name": "Carol",
            "Caller-Caller-ID-Number": "5551234",
            "Caller-Context": "callpark-test",
            "variable_callpark_action": "park",
            "variable_bridge_channel": "sofia/internal/alice@192.0.2.7:5060",
            "variable_transfer_source": "1795433982:88c7:bl_xfer:park/callpark-test/XML",
        })),
    );
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
    assert_eq!(
        parker.endpoint.as_deref(),
        Some("sofia/internal/alice@192.0.2.7:5060")
    );
    assert!(parker.ids.contains(&"alice".to_string()));
    assert_eq!(*announce_to, None, "the transferer has left");
    let p = ChannelId::new(P);
    // Answered already, and on hold by the include: neither is asked again.
    assert!(cmd(&mut t, Command::Answer { channel: p.clone() }).is_empty());
    assert!(
        cmd(
            &mut t,
            Command::StartMoh {
                channel: p.clone(),
                moh: Moh::Class(None)
            }
        )
        .is_empty()
    );
    // Breaking the include's music would run the include's hang-up: the bridge ends it.
    assert!(cmd(&mut t, Command::StopMoh { channel: p.clone() }).is_empty());
    let r = ChannelId::new("11111111-2222-3333-4444-555555555555");
    assert_eq!(
        lines(&cmd(
            &mut t,
            Command::Bridge {
                parked: p.clone(),
                other: r.clone()
            }
        )),
        [
            format!("api uuid_setvar {p} transfer_after_bridge callpark-return"),
            format!("api uuid_bridge {p} {r}")
        ]
    );
    let out = wire(
        &mut t,
        ev(json!({"Event-Name": "CHANNEL_BRIDGE", "Unique-ID": P,
                  "variable_callpark_action": "park"})),
    );
    assert_eq!(calls(&out), [Event::Bridged { channel: p.clone() }]);
    // Started, the bridge's end ends the call: its way back into `park` is disarmed, once.
    assert_eq!(
        lines(&out),
        [format!("api uuid_setvar {p} transfer_after_bridge")]
    );
    let again = wire(
        &mut t,
        ev(json!({"Event-Name": "CHANNEL_BRIDGE", "Unique-ID": P,
                  "variable_callpark_action": "park"})),
    );
    assert!(lines(&again).is_empty(), "{:?}", lines(&again));
    // After the bridge the include's music is gone: music is callpark's again.
    let out = cmd(
        &mut t,
        Command::StartMoh {
            channel: p.clone(),
            moh: Moh::Class(Some("jazz".into())),
        },
    );
    assert_eq!(lines(&out), [format!("sendmsg {p}")]);
    assert!(
        out.requests[0]
            .out
            .headers
            .contains(&("execute-app-arg".into(), "local_stream://jazz".into()))
    );
}

#[test]
fn a_held_call_sent_back_to_park_by_a_failed_bridge_is_a_park_again() {
    // FreeSWITCH sends a held call whose bridge lost its other side to `callpark-return`
    // (the include parks it there): reported as a park, which the core ignores while it holds
    // the call and takes anew if that bridge had started and ended meanwhile.
    let mut t = tr();
    let p = ChannelId::new(P);
    let parked = json!({"Event-Name": "CHANNEL_PARK", "Unique-ID": P,
                        "Caller-Caller-ID-Name": "Carol", "Caller-Caller-ID-Number": "5551234",
                        "Caller-Destination-Number": "park", "Caller-Context": "default",
                        "variable_callpark_action": "park"});
    let first = wire(&mut t, ev(parked.clone()));
    assert!(matches!(calls(&first).as_slice(), [Event::Park(r)] if r.channel == p));
    // Known now: the same park again is nothing new.
    assert!(calls(&wire(&mut t, ev(parked.clone()))).is_empty());
    let mut back = parked;
    back["Caller-Destination-Number"] = json!("callpark-return");
    let out = wire(&mut t, ev(back));
    assert!(
        matches!(calls(&out).as_slice(), [Event::Park(r)] if r.channel == p),
        "{:?}",
        calls(&out)
    );
}

#[test]
fn after_a_restart_a_parked_call_is_bridged_without_breaking_its_music() {
    // A call the translator has not met (no listing has shown it yet) has nothing callpark
    // knows to be queued on it: the bridge alone interrupts whatever plays. Calls the listing
    // shows are flushed first (see the test above).
    let mut t = tr();
    let p = ChannelId::new(P);
    let r = ChannelId::new("11111111-2222-3333-4444-555555555555");
    assert!(cmd(&mut t, Command::StopMoh { channel: p.clone() }).is_empty());
    assert_eq!(
        lines(&cmd(
            &mut t,
            Command::Bridge {
                parked: p.clone(),
                other: r.clone()
            }
        )),
        [
            format!("api uuid_setvar {p} transfer_after_bridge callpark-return"),
            format!("api uuid_bridge {p} {r}")
        ]
    );
}

#[test]
fn commands_become_event_socket_commands() {
    let mut t = tr();
    let p = ChannelId::new(P);
    let leg = p.leg("rb1");
    assert_eq!(leg.as_str().len(), 36, "a leg id fits origination_uuid");
    let out = cmd(
        &mut t,
        Command::Originate {
            channel: leg.clone(),
            target: Target::Endpoint("sofia/internal/alice@192.0.2.7:5060".into()),
            caller_id: Party {
                name: "Parked 601".into(),
                number: "5551234".into(),
            },
            timeout_ms: 19_500,
            purpose: LegPurpose::Ringback { attempt: 1 },
        },
    );
    let r = &out.requests[0];
    assert_eq!(
        r.out.line,
        format!(
            "bgapi originate {{origination_uuid={leg},callpark_leg={leg},origination_caller_id_name='Parked 601',origination_caller_id_number='5551234',originate_timeout=20,hangup_after_bridge=true,rdnis=callpark-return}}sofia/internal/alice@192.0.2.7:5060 &park()"
        )
    );
    assert_eq!(r.out.headers, [("Job-UUID".to_string(), leg.to_string())]);
    // A name with a colon (the core's `Parked 601: Carol`), which sofia would cut, goes whole
    // into the From display, without the Remote-Party-ID that would carry the cut one.
    let out = cmd(
        &mut t,
        Command::Originate {
            channel: leg.clone(),
            target: Target::Endpoint("sofia/internal/alice@192.0.2.7:5060".into()),
            caller_id: Party {
                name: "Parked 601: Carol".into(),
                number: "5551234".into(),
            },
            timeout_ms: 19_500,
            purpose: LegPurpose::Ringback { attempt: 1 },
        },
    );
    let line = &out.requests[0].out.line;
    assert!(
        line.contains(",sip_from_display='Parked 601: Carol',sip_cid_type=none}"),
        "{line}"
    );
    // Destinations of on_timeout.
    let dial = |t: &mut FsTranslator, d: Destination| {
        lines(&cmd(
            t,
            Command::Originate {
                channel: p.leg("fb"),
                target: Target::Destination(d),
                caller_id: Party::default(),
                timeout_ms: 5_000,
                purpose: LegPurpose::Fallback,
            },
        ))[0]
            .clone()
    };
    assert!(
        dial(
            &mut t,
            Destination::Exten {
                exten: "0".into(),
                context: "from-internal".into()
            }
        )
        .ends_with("}loopback/0/from-internal &park()")
    );
    assert!(
        dial(&mut t, Destination::Sip("sip:op@example.com".into()))
            .ends_with("}sofia/internal/op@example.com &park()")
    );
    // Each of the others.
    assert_eq!(
        lines(&cmd(&mut t, Command::Hangup { channel: p.clone() })),
        [format!("api uuid_kill {p}")]
    );
    assert_eq!(
        lines(&cmd(
            &mut t,
            Command::OrbitEmpty {
                channel: p.clone(),
                orbit: "601".parse().unwrap()
            }
        )),
        [format!(
            "api uuid_transfer {p} answer,playback:ivr/ivr-that_was_an_invalid_entry.wav,hangup inline"
        )]
    );
    assert_eq!(
        lines(&cmd(
            &mut t,
            Command::Notify {
                endpoint: "sofia/internal/alice@192.0.2.7:5060".into(),
                text: "Call parked on 601 | x".into()
            }
        )),
        ["api chat sip|callpark@example.net|internal/alice@192.0.2.7|Call parked on 601  x"]
    );
    assert!(
        cmd(
            &mut t,
            Command::Notify {
                endpoint: "loopback/dev-alice/x".into(),
                text: "t".into()
            }
        )
        .is_empty(),
        "only sofia endpoints take a SIP MESSAGE"
    );
    let lamp = cmd(
        &mut t,
        Command::Lamp {
            orbit: "601".parse().unwrap(),
            state: LampState::InUse,
        },
    );
    assert_eq!(lines(&lamp), ["sendevent PRESENCE_IN"]);
    let h = &lamp.requests[0].out.headers;
    assert!(h.contains(&("from".into(), "601@example.net".into())));
    assert!(h.contains(&("answer-state".into(), "confirmed".into())));
    // A directly dialled park: answered, orbit spoken, then music, in that order.
    let direct = ChannelId::new("aaaaaaaa-2222-3333-4444-555555555555");
    wire(
        &mut t,
        ev(
            json!({"Event-Name": "CHANNEL_PARK", "Unique-ID": direct.as_str(),
                  "Answer-State": "ringing", "variable_callpark_action": "park",
                  "Caller-Context": "c"}),
        ),
    );
    let mut all = Vec::new();
    for c in [
        Command::Answer {
            channel: direct.clone(),
        },
        Command::Announce {
            channel: direct.clone(),
            orbit: "*601".parse().unwrap(),
        },
        Command::StartMoh {
            channel: direct.clone(),
            moh: Moh::File("/srv/hold.wav".into()),
        },
    ] {
        all.extend(cmd(&mut t, c).requests);
    }
    assert_eq!(all[0].out.line, format!("api uuid_answer {direct}"));
    let arg = |r: &Request| {
        r.out
            .headers
            .iter()
            .find(|(k, _)| k == "execute-app-arg")
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(
        arg(&all[1]),
        "file_string://digits/star.wav!digits/6.wav!digits/0.wav!digits/1.wav"
    );
    assert_eq!(arg(&all[2]), "/srv/hold.wav");
}

#[test]
fn legs_answer_when_parked_fail_when_they_end_unanswered() {
    let mut t = tr();
    let leg = ChannelId::new(P).leg("rb1");
    // The loopback half that inherits callpark_leg is not the leg.
    let other = wire(
        &mut t,
        ev(
            json!({"Event-Name": "CHANNEL_PARK", "Unique-ID": "bbbbbbbb-2222-3333-4444-555555555555",
                  "variable_callpark_leg": leg.as_str()}),
        ),
    );
    assert!(other.is_empty());
    let out = wire(
        &mut t,
        ev(
            json!({"Event-Name": "CHANNEL_PARK", "Unique-ID": leg.as_str(),
                  "variable_callpark_leg": leg.as_str()}),
        ),
    );
    assert_eq!(
        calls(&out),
        [Event::Answered {
            channel: leg.clone()
        }]
    );
    let out = wire(
        &mut t,
        ev(
            json!({"Event-Name": "CHANNEL_HANGUP", "Unique-ID": leg.as_str(),
                  "Caller-Channel-Answered-Time": "1795433981097858",
                  "variable_callpark_leg": leg.as_str()}),
        ),
    );
    assert_eq!(calls(&out), [Event::Hangup { channel: leg }]);
    let leg2 = ChannelId::new(P).leg("rb2");
    let out = wire(
        &mut t,
        ev(
            json!({"Event-Name": "CHANNEL_HANGUP", "Unique-ID": leg2.as_str(),
                  "Caller-Channel-Answered-Time": "0", "Hangup-Cause": "NO_ANSWER",
                  "variable_callpark_leg": leg2.as_str()}),
        ),
    );
    assert_eq!(
        calls(&out),
        [Event::OriginateFailed {
            channel: leg2.clone(),
            reason: "NO_ANSWER".into()
        }]
    );
    // A bgapi refused at once fails its leg too; a dropped connection as well.
    let req = cmd(
        &mut t,
        Command::Originate {
            channel: leg2.clone(),
            target: Target::Endpoint("user/1000@example.net".into()),
            caller_id: Party::default(),
            timeout_ms: 5_000,
            purpose: LegPurpose::Ringback { attempt: 2 },
        },
    )
    .requests
    .remove(0);
    let mut out = Output::default();
    t.on_reply(
        req.clone(),
        Reply::Text("-ERR USER_NOT_REGISTERED\n".into()),
        &mut out,
    );
    assert!(
        matches!(&calls(&out)[..], [Event::OriginateFailed { channel, .. }] if *channel == leg2)
    );
    // One whose connection dropped before the answer may have been placed: left to the next
    // connection's listing (the reconciliation ends it if it is not there), not failed here,
    // which would ring the parker a second time beside it.
    let mut out = Output::default();
    t.on_reply(req, Reply::Lost("connection dropped".into()), &mut out);
    assert!(out.is_empty(), "{:?}", out.events);
}

#[test]
fn a_bad_orbit_is_told_and_hung_up_without_the_core() {
    let mut t = tr();
    let out = wire(
        &mut t,
        ev(json!({"Event-Name": "CHANNEL_PARK", "Unique-ID": P,
                  "variable_callpark_action": "retrieve", "variable_callpark_orbit": "7x"})),
    );
    assert!(calls(&out).is_empty());
    assert_eq!(
        lines(&out),
        [
            format!("api sched_del {P}"),
            format!(
                "api uuid_transfer {P} answer,playback:ivr/ivr-that_was_an_invalid_entry.wav,hangup inline"
            )
        ]
    );
}

/// FreeSWITCH's `switch_separate_string` (src/switch_utils.c) as far as callpark's originate
/// meets it: split at `delim` (a blank: `separate_string_blank_delim`) outside single quotes,
/// a backslash protecting the next character, at most `max` parts; then each part cleaned up
/// (`cleanup_separated_string`): blanks trimmed, quotes dropped, escapes undone.
fn fs_separate(s: &str, delim: char, max: usize) -> Vec<String> {
    let c: Vec<char> = s.chars().collect();
    let mut parts = vec![];
    let (mut start, mut i, mut quoted) = (0, 0, false);
    while i < c.len() && parts.len() + 1 < max {
        match c[i] {
            '\\' => i += 1,
            '\'' if delim == ' ' || quoted || c[i + 1..].contains(&'\'') => quoted = !quoted,
            ch if ch == delim && !quoted => {
                parts.push(c[start..i].iter().collect::<String>());
                start = i + 1;
                if delim == ' ' {
                    while start < c.len() && c[start] == ' ' {
                        start += 1;
                    }
                    i = start;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(c[start.min(c.len())..].iter().collect());
    let cleanup = |p: &str| -> String {
        let c: Vec<char> = p.trim_start_matches(' ').chars().collect();
        let (mut out, mut end, mut quoted) = (String::new(), 0, false);
        let mut i = 0;
        while i < c.len() {
            let esc = c[i] == '\\'
                && c.get(i + 1).is_some_and(|&e| {
                    matches!(e, '\'' | '"' | '\\' | 'n' | 'r' | 't' | 's')
                        || (delim != ' ' && e == delim)
                });
            if esc {
                i += 1;
                out.push(match c[i] {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    's' => ' ',
                    e => e,
                });
                end = out.len();
            } else if c[i] == '\'' && (quoted || c[i + 1..].contains(&'\'')) {
                quoted = !quoted;
                if quoted {
                    end = out.len();
                }
            } else {
                out.push(c[i]);
                if c[i] != ' ' || quoted {
                    end = out.len();
                }
            }
            i += 1;
        }
        out.truncate(end);
        out
    };
    parts.iter().map(|p| cleanup(p)).collect()
}

/// The caller id name FreeSWITCH reads from a `bgapi originate` line: mod_commands' arguments
/// (split at blanks), the originate's `{}` block (split at commas), the variable (its first
/// `=`).
fn fs_reads_caller_id_name(line: &str) -> Option<String> {
    let args = line.strip_prefix("bgapi originate ")?;
    let first = fs_separate(args, ' ', 7).into_iter().next()?;
    let block = first.strip_prefix('{')?;
    let block = &block[..block.rfind('}')?];
    fs_separate(block, ',', 1024).into_iter().find_map(|v| {
        let kv = fs_separate(&v, '=', 2);
        (kv.len() == 2 && kv[0] == "origination_caller_id_name").then(|| kv[1].clone())
    })
}

/// Issue 11.5: the core's ringback caller id (`Parked 601: O'Brien, Zoë` once the caller's name
/// is in it) survives FreeSWITCH's three passes over an originate line (the same strings were
/// read back from the real FreeSWITCH 1.11, tests/caller_id.rs); it used to lose its commas and
/// apostrophes.
#[test]
fn ringback_caller_id_survives_freeswitchs_originate_parsing() {
    let line = |name: &str| {
        let mut t = tr();
        let leg = ChannelId::new(P).leg("rb1");
        lines(&cmd(
            &mut t,
            Command::Originate {
                channel: leg,
                target: Target::Endpoint("sofia/internal/alice@192.0.2.7:5060".into()),
                caller_id: Party {
                    name: name.into(),
                    number: "5551234".into(),
                },
                timeout_ms: 19_500,
                purpose: LegPurpose::Ringback { attempt: 1 },
            },
        ))[0]
            .clone()
    };
    let l = line("Parked 601: O'Brien, Zoë");
    assert!(
        l.contains(r"origination_caller_id_name='Parked 601: O\\\\\\\'Brien\\, Zoë',"),
        "{l}"
    );
    for name in [
        "Parked 601: O'Brien, Zoë",
        "Parked 601",
        "Parked 601: 'Quoted', \"double\" \\ back\\slash \\n = ; | [x] <y> ~!@#$%^&*",
        "Parked 601: a,,b  two  blanks",
    ] {
        assert_eq!(
            fs_reads_caller_id_name(&line(name)).as_deref(),
            Some(name),
            "{}",
            line(name)
        );
    }
    // Braces cannot be escaped (the `{}` block ends at the first unbalanced `}`).
    assert_eq!(
        fs_reads_caller_id_name(&line("Parked 601: {x}")).as_deref(),
        Some("Parked 601: (x)")
    );
}

/// A phone's SUBSCRIBE to an orbit makes sofia send an idle NOTIFY and a PRESENCE_PROBE (it
/// keeps none of the PRESENCE_IN sent before, as seen on FreeSWITCH 1.11): callpark answers
/// the probe of a lit orbit with its last lamp, and leaves every other probe alone.
#[test]
fn presence_probes_of_lit_orbits_are_answered_with_the_last_lamp() {
    let mut t = tr();
    let mut out = Output::default();
    t.on_connect(Default::default(), &mut out);
    let l = lines(&out);
    assert!(l[0].starts_with("event json ") && l[0].ends_with(" PRESENCE_PROBE"));
    assert!(l.iter().any(|x| x == "filter Event-Name PRESENCE_PROBE"));

    let probe = |to: &str| {
        ev(
            json!({"Event-Name": "PRESENCE_PROBE", "proto": "sip", "login": "internal",
                  "from": "alice@example.net", "to": to, "probe-type": "dialog",
                  "event_type": "presence", "alt_event_type": "dialog",
                  "sub-call-id": "sub-601-1", "expires": "600"}),
        )
    };
    let answer_state = |out: &Output<Request>| -> Vec<String> {
        out.requests
            .iter()
            .map(|r| {
                assert_eq!(r.out.line, "sendevent PRESENCE_IN");
                assert!(
                    r.out
                        .headers
                        .contains(&("from".into(), "601@example.net".into()))
                );
                r.out
                    .headers
                    .iter()
                    .find(|(k, _)| k == "answer-state")
                    .map(|(_, v)| v.clone())
                    .unwrap()
            })
            .collect()
    };
    // Nothing parked yet: sofia's own idle NOTIFY is the answer.
    assert!(wire(&mut t, probe("601@example.net")).is_empty());
    for (state, want) in [
        (LampState::InUse, "confirmed"),
        (LampState::Ringing, "early"),
        (LampState::InUse, "confirmed"),
    ] {
        let sent = cmd(
            &mut t,
            Command::Lamp {
                orbit: "601".parse().unwrap(),
                state,
            },
        );
        assert_eq!(answer_state(&sent), [want]);
        let out = wire(&mut t, probe("601@example.net"));
        assert_eq!(answer_state(&out), [want], "probe while {state:?}");
        assert!(calls(&out).is_empty());
    }
    // Another domain's 601, a phone, another orbit: not callpark's lamps.
    for to in [
        "601@other.example",
        "alice@example.net",
        "602@example.net",
        "601",
    ] {
        assert!(wire(&mut t, probe(to)).is_empty(), "{to}");
    }
    // A reconnection keeps what was sent.
    t.on_disconnect();
    assert_eq!(
        answer_state(&wire(&mut t, probe("601@EXAMPLE.NET"))),
        ["confirmed"]
    );
    let sent = cmd(
        &mut t,
        Command::Lamp {
            orbit: "601".parse().unwrap(),
            state: LampState::Idle,
        },
    );
    assert_eq!(answer_state(&sent), ["terminated"]);
    assert!(wire(&mut t, probe("601@example.net")).is_empty());
}

/// Events captured on the testbed while PJSIP's pjsua2 did a gesture (tests/data/freeswitch).
fn gesture(name: &str) -> Vec<FsEvent> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/freeswitch")
        .join(name);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| FsEvent::from_json(l.as_bytes()).unwrap())
        .collect()
}

#[test]
fn an_attended_transfer_hands_the_consultations_place_to_the_caller() {
    // The phone called the park code (the consultation), then sent REFER with Replaces:
    // FreeSWITCH ends the consultation (`replaced`) and blind-transfers the caller to the park
    // code with the consultation's Call-ID in its Refer-To.
    let [park, hangup, caller] = &gesture("attended-transfer-to-park.jsonl")[..] else {
        panic!("three events")
    };
    let mut t = tr();
    let k = ChannelId::new(park.uuid.clone().unwrap());
    let out = wire(&mut t, park.clone());
    let [
        Event::Park(ParkRequest {
            announce_to,
            replaces: None,
            ..
        }),
    ] = &calls(&out)[..]
    else {
        panic!("{:?}", out.events)
    };
    assert_eq!(
        announce_to.as_ref(),
        Some(&k),
        "the consultation hears its orbit"
    );
    let out = wire(&mut t, hangup.clone());
    assert_eq!(
        calls(&out),
        [Event::Replaced { channel: k.clone() }],
        "not a hang-up: its caller follows"
    );
    let out = wire(&mut t, caller.clone());
    let [
        Event::Park(ParkRequest {
            parker,
            announce_to,
            replaces,
            ..
        }),
    ] = &calls(&out)[..]
    else {
        panic!("{:?}", out.events)
    };
    assert_eq!(replaces.as_ref(), Some(&k));
    assert_eq!(*announce_to, None, "the phone has left");
    assert_eq!(
        parker.endpoint.as_deref(),
        Some("sofia/internal/alice@127.0.0.1:5270"),
        "the phone that transferred"
    );
}

#[test]
fn a_deflected_call_names_the_phone_that_sent_it() {
    let [ev] = &gesture("deflect-to-park.jsonl")[..] else {
        panic!("one event")
    };
    let out = wire(&mut tr(), ev.clone());
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
    assert_eq!(*announce_to, None, "the caller is not the parker");
    assert_eq!(
        parker.endpoint.as_deref(),
        Some("sofia/internal/alice%127.0.0.1"),
        "the deflecting phone's registration"
    );
    assert!(parker.ids.contains(&"alice".to_string()));
    // It is told the orbit by a SIP MESSAGE through its profile.
    let out = cmd(
        &mut tr(),
        Command::Notify {
            endpoint: parker.endpoint.clone().unwrap(),
            text: "parked on 601".into(),
        },
    );
    assert_eq!(
        lines(&out),
        ["api chat sip|callpark@example.net|internal/alice@127.0.0.1|parked on 601"]
    );
}

#[test]
fn music_that_stops_is_reported_once_and_the_call_stays() {
    let mut t = tr();
    let mut park = FsEvent {
        name: "CHANNEL_EXECUTE".into(),
        uuid: Some("p1".into()),
        callpark_action: Some("park".into()),
        application: Some("playback".into()),
        application_data: Some("/nonexistent.wav".into()),
        transfer_source: Some("1:x:bl_xfer:park".into()),
        ..FsEvent::default()
    };
    wire(&mut t, park.clone());
    let mut done = park.clone();
    done.name = "CHANNEL_EXECUTE_COMPLETE".into();
    done.application_response = Some("FILE NOT FOUND".into());
    let out = wire(&mut t, done.clone());
    assert!(out.is_empty(), "nothing ends the call: {:?}", out.events);
    // A second call on the same music: the same, without a second warning (see the log).
    park.uuid = Some("p2".into());
    wire(&mut t, park);
    done.uuid = Some("p2".into());
    assert!(wire(&mut t, done).is_empty());
    // Music interrupted by callpark's own bridge is not reported: it is the bridge.
    let out = cmd(
        &mut t,
        Command::Bridge {
            parked: ChannelId::new("p2"),
            other: ChannelId::new("r"),
        },
    );
    assert_eq!(
        lines(&out),
        [
            "api uuid_setvar p2 transfer_after_bridge callpark-return",
            "api uuid_bridge p2 r"
        ]
    );
}

/// Only a playback's end is the music's end. The include's other applications (`set`,
/// `sched_transfer`, `socket`) can complete after callpark holds the call: a dialled orbit
/// held as a park has its outbound connection read before the event stream brings their
/// ends. Taken as the music stopping, they would warn of silence and start the music again.
#[test]
fn only_a_playback_ending_is_the_music_ending() {
    let mut t = tr();
    let park = FsEvent {
        name: "CHANNEL_EXECUTE".into(),
        uuid: Some("p1".into()),
        callpark_action: Some("park".into()),
        application: Some("playback".into()),
        application_data: Some("${hold_music}".into()),
        transfer_source: Some("1:x:bl_xfer:park".into()),
        ..FsEvent::default()
    };
    wire(&mut t, park.clone());
    for (app, data) in [
        ("set", "callpark_action=park"),
        ("sched_transfer", "+3 callpark-down-park XML default"),
        ("socket", "127.0.0.1:8041"),
    ] {
        let mut done = park.clone();
        done.name = "CHANNEL_EXECUTE_COMPLETE".into();
        done.application = Some(app.into());
        done.application_data = Some(data.into());
        assert!(wire(&mut t, done).is_empty());
    }
    // The include's music still plays: callpark does not start it a second time.
    let start = Command::StartMoh {
        channel: ChannelId::new("p1"),
        moh: Moh::Class(None),
    };
    assert!(lines(&cmd(&mut t, start.clone())).is_empty());
    // Once the playback itself has ended, the music is callpark's to start.
    let mut done = park.clone();
    done.name = "CHANNEL_EXECUTE_COMPLETE".into();
    done.application_response = Some("FILE NOT FOUND".into());
    wire(&mut t, done);
    assert_eq!(lines(&cmd(&mut t, start)).len(), 1);
}

/// A call retrieved while it still hears its orbit: `uuid_bridge` ends the announcement, but
/// the music callpark queued behind it would run next, before the bridge takes the channel
/// (seen on the testbed: the held call heard music, its retriever silence). The queue is
/// flushed first, once; a call on the include's music alone has nothing queued.
#[test]
fn a_bridge_flushes_what_callpark_queued_on_the_held_call() {
    let mut t = tr();
    let dialled = FsEvent {
        name: "CHANNEL_PARK".into(),
        uuid: Some("p1".into()),
        callpark_action: Some("park".into()),
        caller_number: Some("201".into()),
        channel_name: Some("sofia/internal/201@127.0.0.1".into()),
        ..FsEvent::default()
    };
    assert_eq!(calls(&wire(&mut t, dialled)).len(), 1);
    let p1 = ChannelId::new("p1");
    cmd(
        &mut t,
        Command::Announce {
            channel: p1.clone(),
            orbit: "605".parse().unwrap(),
        },
    );
    cmd(
        &mut t,
        Command::StartMoh {
            channel: p1.clone(),
            moh: Moh::Class(None),
        },
    );
    let bridge = Command::Bridge {
        parked: p1.clone(),
        other: ChannelId::new("r"),
    };
    assert_eq!(
        lines(&cmd(&mut t, bridge.clone())),
        [
            "api uuid_break p1 all",
            "api uuid_setvar p1 transfer_after_bridge callpark-return",
            "api uuid_bridge p1 r"
        ]
    );
    // Asked again (the bridge did not start): nothing new was queued, nothing to flush.
    assert_eq!(
        lines(&cmd(&mut t, bridge)),
        [
            "api uuid_setvar p1 transfer_after_bridge callpark-return",
            "api uuid_bridge p1 r"
        ]
    );
}

/// Months of calls in one go: 100,000 calls through every path that creates state in the
/// translator (parks on the include's music and on callpark's, parks placed through a
/// loopback, retrieves and their bridges, ringbacks answered and not, an attended transfer's
/// replaced call, a caller gone before the core's commands reach it, calls that end while the
/// connection is down). Once they have all ended, the translator holds what it held before
/// the first.
#[test]
fn a_hundred_thousand_calls_leave_no_state_behind() {
    let mut t = tr();
    let mut events = Vec::new();
    let run = |t: &mut FsTranslator, out: Output<Request>, events: &mut Vec<PbxEvent>| {
        // Every command is answered +OK, as FreeSWITCH does; a loopback's placer is a phone.
        for r in out.requests {
            let body = match r.tag {
                Tag::PlacedBy(_) => "sofia/internal/alice@192.0.2.7:5060",
                Tag::List => r#"{"row_count": 0}"#,
                _ => "+OK",
            };
            let mut o = Output::default();
            t.on_reply(r, Reply::Text(body.into()), &mut o);
            assert!(o.requests.is_empty());
            events.extend(o.events);
        }
        events.extend(out.events);
    };
    let uuid = |kind: u32, i: u32| format!("{kind:08x}-0000-4000-8000-{i:012x}");
    let park = |id: &str, extra: serde_json::Value| {
        let mut v = json!({"Event-Name": "CHANNEL_EXECUTE", "Unique-ID": id,
               "Answer-State": "answered", "Application": "playback",
               "Application-Data": "local_stream://moh", "Caller-Context": "default",
               "Caller-Destination-Number": "park", "variable_callpark_action": "park",
               "variable_sip_call_id": format!("call-{id}"),
               "variable_transfer_source": "1795433982:88c7:bl_xfer:park/default/XML"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        ev(v)
    };
    let hangup = |id: &str, extra: serde_json::Value| {
        let mut v = json!({"Event-Name": "CHANNEL_HANGUP", "Unique-ID": id,
                           "Caller-Channel-Answered-Time": "1795433981097858"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        ev(v)
    };
    let mut out = Output::default();
    t.on_connect(Default::default(), &mut out);
    run(&mut t, out, &mut events);
    let start = t.state_size();
    let orbit: callpark::orbit::Orbit = "601".parse().unwrap();
    let (mut parks, mut bridged, mut answered, mut replaced) = (0, 0, 0, 0);
    for i in 0..100_000u32 {
        let (p, r, l) = (uuid(1, i), uuid(2, i), uuid(3, i));
        let (pid, rid, lid) = (
            ChannelId::new(p.clone()),
            ChannelId::new(r.clone()),
            ChannelId::new(l.clone()),
        );
        match i % 6 {
            // Parked on the include's music, retrieved, the bridge ends with a hang-up.
            0 => {
                let o = wire(&mut t, park(&p, json!({})));
                run(&mut t, o, &mut events);
                for c in [
                    Command::Answer {
                        channel: pid.clone(),
                    },
                    Command::StartMoh {
                        channel: pid.clone(),
                        moh: Moh::Class(None),
                    },
                    Command::Lamp {
                        orbit,
                        state: callpark::park::LampState::InUse,
                    },
                ] {
                    let o = cmd(&mut t, c);
                    run(&mut t, o, &mut events);
                }
                let o = wire(
                    &mut t,
                    ev(json!({"Event-Name": "CHANNEL_PARK", "Unique-ID": r,
                    "Answer-State": "answered", "Caller-Context": "default",
                    "Caller-Destination-Number": "601", "variable_callpark_action": "retrieve",
                    "variable_callpark_orbit": "601"})),
                );
                run(&mut t, o, &mut events);
                for c in [
                    Command::StopMoh {
                        channel: pid.clone(),
                    },
                    Command::Bridge {
                        parked: pid.clone(),
                        other: rid.clone(),
                    },
                    Command::Lamp {
                        orbit,
                        state: callpark::park::LampState::Idle,
                    },
                ] {
                    let o = cmd(&mut t, c);
                    run(&mut t, o, &mut events);
                }
                let o = wire(
                    &mut t,
                    ev(json!({"Event-Name": "CHANNEL_BRIDGE", "Unique-ID": p,
                    "Other-Leg-Unique-ID": r})),
                );
                run(&mut t, o, &mut events);
                for id in [&r, &p] {
                    let o = wire(&mut t, hangup(id, json!({})));
                    run(&mut t, o, &mut events);
                }
            }
            // Placed through a loopback (a phone's attended transfer to the park code), then
            // the consultation is replaced and the caller takes its place.
            1 => {
                let o = wire(
                    &mut t,
                    park(
                        &p,
                        json!({"variable_transfer_source": null,
                    "variable_other_loopback_from_uuid": l}),
                    ),
                );
                run(&mut t, o, &mut events);
                let o = wire(
                    &mut t,
                    hangup(&p, json!({"variable_transfer_disposition": "replaced"})),
                );
                run(&mut t, o, &mut events);
                let o = wire(
                    &mut t,
                    park(
                        &r,
                        json!({
                    "variable_sip_refer_to": format!("<sip:park@example.net?Replaces=call-{p}%3Bto-tag%3Da%3Bfrom-tag%3Db>")}),
                    ),
                );
                run(&mut t, o, &mut events);
                let o = wire(&mut t, hangup(&r, json!({})));
                run(&mut t, o, &mut events);
            }
            // A ringback the parker answers, then one nobody answers.
            2 => {
                for (leg, answers) in [(&lid, true), (&rid, false)] {
                    let o = cmd(
                        &mut t,
                        Command::Originate {
                            channel: leg.clone(),
                            target: Target::Endpoint("user/1000@example.net".into()),
                            caller_id: Party {
                                name: "Parked 601".into(),
                                number: "601".into(),
                            },
                            timeout_ms: 20_000,
                            purpose: LegPurpose::Ringback { attempt: 1 },
                        },
                    );
                    run(&mut t, o, &mut events);
                    if answers {
                        let o = wire(
                            &mut t,
                            ev(json!({"Event-Name": "CHANNEL_PARK",
                            "Unique-ID": leg.as_str(), "variable_callpark_leg": leg.as_str()})),
                        );
                        run(&mut t, o, &mut events);
                    }
                    let time = if answers { "1795433981097858" } else { "0" };
                    let o = wire(
                        &mut t,
                        hangup(
                            leg.as_str(),
                            json!({
                        "variable_callpark_leg": leg.as_str(),
                        "Caller-Channel-Answered-Time": time}),
                        ),
                    );
                    run(&mut t, o, &mut events);
                }
            }
            // The caller hangs up as it is parked: the core's commands arrive after the end.
            3 => {
                let o = wire(&mut t, park(&p, json!({})));
                run(&mut t, o, &mut events);
                let o = wire(&mut t, hangup(&p, json!({})));
                run(&mut t, o, &mut events);
                for c in [
                    Command::Answer {
                        channel: pid.clone(),
                    },
                    Command::Announce {
                        channel: pid.clone(),
                        orbit,
                    },
                    Command::StartMoh {
                        channel: pid.clone(),
                        moh: Moh::File("/m/hold.wav".into()),
                    },
                ] {
                    let o = cmd(&mut t, c);
                    run(&mut t, o, &mut events);
                }
            }
            // A parked call ends while the connection is down; the reconnection finds nothing.
            _ => {
                let o = wire(&mut t, park(&p, json!({})));
                run(&mut t, o, &mut events);
                let o = cmd(
                    &mut t,
                    Command::StartMoh {
                        channel: pid.clone(),
                        moh: Moh::Class(None),
                    },
                );
                run(&mut t, o, &mut events);
                t.on_disconnect();
                let mut o = Output::default();
                t.on_connect(Default::default(), &mut o);
                run(&mut t, o, &mut events);
            }
        }
        for e in events.drain(..) {
            match e {
                PbxEvent::Call(Event::Park(_)) => parks += 1,
                PbxEvent::Call(Event::Bridged { .. }) => bridged += 1,
                PbxEvent::Call(Event::Answered { .. }) => answered += 1,
                PbxEvent::Call(Event::Replaced { .. }) => replaced += 1,
                _ => {}
            }
        }
        if i % 10_000 == 9_999 {
            assert_eq!(t.state_size(), start, "after {} calls", i + 1);
        }
    }
    // The calls took the paths meant for them: every variant but the ringbacks parks (the
    // attended transfer twice: the consultation, then the caller in its place).
    assert_eq!(
        (parks, bridged, answered, replaced),
        (16_667 * 3 + 16_667 + 16_666 * 2, 16_667, 16_667, 16_667)
    );
    assert_eq!(t.state_size(), start);
}

/// A channel listed while it hangs up sent its CHANNEL_HANGUP perhaps before this connection
/// subscribed: it is not among the live ones (the reconciliation ends its call) and is not
/// adopted.
#[test]
fn a_channel_listed_as_it_hangs_up_is_not_live() {
    let mut t = tr();
    let mut out = Output::default();
    t.on_connect(Default::default(), &mut out);
    let list = out.requests.last().unwrap().clone();
    const GOING: &str = "77777777-2222-3333-4444-555555555555";
    let body = json!({"row_count": 2, "rows": [
        {"uuid": P, "application": "playback", "dest": "park", "state": "CS_EXECUTE",
         "callstate": "ACTIVE"},
        {"uuid": GOING, "application": "playback", "dest": "park", "state": "CS_HANGUP",
         "callstate": "HANGUP"},
    ]});
    let mut out = Output::default();
    t.on_reply(list, Reply::Text(body.to_string()), &mut out);
    let PbxEvent::Connected { channels } = &out.events[0] else {
        panic!("{:?}", out.events)
    };
    assert_eq!(channels.iter().collect::<Vec<_>>(), [&ChannelId::new(P)]);
    assert_eq!(lines(&out), [format!("api uuid_dump {P} json")]);
}

/// A parked channel whose hang-up callpark never heard (it ended as a connection was being
/// made) is reported gone as soon as FreeSWITCH says it does not know it, once.
#[test]
fn a_channel_freeswitch_does_not_know_is_reported_gone_once() {
    let mut t = tr();
    let out = cmd(
        &mut t,
        Command::Bridge {
            parked: ChannelId::new(P),
            other: ChannelId::new("88888888-2222-3333-4444-555555555555"),
        },
    );
    let mut events = Vec::new();
    for r in out.requests {
        let mut o = Output::default();
        let text = if r.out.line.contains("uuid_setvar") {
            "-ERR No such channel!\n"
        } else {
            "-ERR Invalid uuid\n"
        };
        t.on_reply(r, Reply::Text(text.into()), &mut o);
        events.extend(calls(&o));
    }
    assert_eq!(
        events,
        [Event::Hangup {
            channel: ChannelId::new(P)
        }]
    );
    // Told again: nothing more.
    let out = cmd(
        &mut t,
        Command::Hangup {
            channel: ChannelId::new(P),
        },
    );
    let mut o = Output::default();
    t.on_reply(
        out.requests[0].clone(),
        Reply::Text("-ERR No such channel!\n".into()),
        &mut o,
    );
    assert!(o.is_empty());
}

#[test]
fn a_retrieve_read_from_the_outbound_connection_is_released_behind_its_bridge() {
    let mut t = tr();
    // As the include's outbound connection reads it: the channel's data, marked outbound.
    let mut retrieve = ev(json!({
        "Event-Name": "CHANNEL_PARK",
        "Unique-ID": "r-1",
        "Caller-Caller-ID-Name": "Dave",
        "Caller-Caller-ID-Number": "202",
        "Caller-Context": "default",
        "Caller-Destination-Number": "701",
        "variable_callpark_action": "retrieve",
        "variable_callpark_orbit": "701",
    }));
    retrieve.outbound = true;
    let out = wire(&mut t, retrieve.clone());
    let [Event::Retrieve { channel, orbit, .. }] = &calls(&out)[..] else {
        panic!("{:?}", out.events)
    };
    assert_eq!(
        (channel.as_str(), orbit.to_string().as_str()),
        ("r-1", "701")
    );
    assert!(
        !out.requests
            .iter()
            .any(|r| matches!(r.tag, Tag::Release(_))),
        "held until callpark acts on it"
    );
    // The same channel's CHANNEL_PARK, should callpark have let it go into `park`: nothing new.
    let mut again = retrieve.clone();
    again.outbound = false;
    assert!(wire(&mut t, again).is_empty());
    // Answered from callpark's side first: FreeSWITCH needs no thread of the channel for that.
    let out = cmd(
        &mut t,
        Command::Answer {
            channel: ChannelId::new("r-1"),
        },
    );
    assert_eq!(lines(&out), ["api uuid_answer r-1"]);
    assert!(
        !out.requests
            .iter()
            .any(|r| matches!(r.tag, Tag::Release(_)))
    );

    let out = cmd(
        &mut t,
        Command::Bridge {
            parked: ChannelId::new(P),
            other: ChannelId::new("r-1"),
        },
    );
    let tags: Vec<&Tag> = out.requests.iter().map(|r| &r.tag).collect();
    let bridge = lines(&out)
        .iter()
        .position(|l| l.starts_with("api uuid_bridge"))
        .expect("the bridge is asked for");
    let release = tags
        .iter()
        .position(|t| matches!(t, Tag::Release(c) if c.as_str() == "r-1"))
        .expect("the retriever is released");
    assert!(release > bridge, "released behind its bridge: {tags:?}");
    // Released once: a later command for it releases nothing more.
    let out = cmd(
        &mut t,
        Command::OrbitEmpty {
            channel: ChannelId::new("r-1"),
            orbit: "701".parse().unwrap(),
        },
    );
    assert!(
        !out.requests
            .iter()
            .any(|r| matches!(r.tag, Tag::Release(_)))
    );
}

#[test]
fn a_retrieve_from_the_event_stream_is_never_released() {
    let mut t = tr();
    let retrieve = ev(json!({
        "Event-Name": "CHANNEL_PARK",
        "Unique-ID": "r-2",
        "Caller-Destination-Number": "701",
        "variable_callpark_action": "retrieve",
        "variable_callpark_orbit": "701",
    }));
    wire(&mut t, retrieve);
    let out = cmd(
        &mut t,
        Command::OrbitEmpty {
            channel: ChannelId::new("r-2"),
            orbit: "701".parse().unwrap(),
        },
    );
    assert!(
        !out.requests
            .iter()
            .any(|r| matches!(r.tag, Tag::Release(_)))
    );
}

/// A retrieve through the outbound connection can reach callpark before the reconnection's
/// listing does: the bridge it starts is not undone by the listing's older row, and its way
/// back to park is disarmed once the bridge starts.
#[test]
fn a_bridge_started_before_the_listing_arrives_keeps_its_way_back_disarmed() {
    let mut t = tr();
    let mut out = Output::default();
    t.on_connect([ChannelId::new(P)].into_iter().collect(), &mut out);
    let list = out.requests.last().unwrap().clone();
    let p = ChannelId::new(P);
    let r = ChannelId::new("22222222-2222-3333-4444-555555555555");
    assert_eq!(
        lines(&cmd(
            &mut t,
            Command::Bridge {
                parked: p.clone(),
                other: r.clone()
            }
        )),
        [
            format!("api uuid_setvar {p} transfer_after_bridge callpark-return"),
            format!("api uuid_bridge {p} {r}"),
        ]
    );
    // The listing was taken before the bridge: it shows the held call still parked.
    let body = json!({"row_count": 1, "rows": [
        {"uuid": P, "name": "loopback/605-b", "application": "park",
         "application_data": "", "dest": "605", "callstate": "ACTIVE"},
    ]});
    let mut out = Output::default();
    t.on_reply(list, Reply::Text(body.to_string()), &mut out);
    assert!(
        matches!(&out.events[..], [PbxEvent::Connected { channels }] if channels.contains(&p)),
        "{:?}",
        out.events
    );
    assert_eq!(lines(&out), [format!("api sched_del {p}")]);
    let out = wire(
        &mut t,
        ev(json!({"Event-Name": "CHANNEL_BRIDGE", "Unique-ID": P,
                  "Other-Leg-Unique-ID": r.as_str(), "variable_callpark_action": "park"})),
    );
    assert_eq!(calls(&out), [Event::Bridged { channel: p.clone() }]);
    assert_eq!(
        lines(&out),
        [format!("api uuid_setvar {p} transfer_after_bridge")],
        "the bridge's end must end the call, not send it back to park"
    );
}

/// A connection lost in the middle of a reconnection's adoption (a held call taken back, a
/// park read in full and its parker being asked) leaves nothing of that adoption behind; the
/// next connection's listing finds the park again.
#[test]
fn a_disconnect_during_adoption_leaves_nothing_behind() {
    let mut t = tr();
    const HELD: &str = "99999999-2222-3333-4444-555555555555";
    const LOOP: &str = "aaaaaaaa-2222-3333-4444-555555555555";
    let row = |uuid: &str| {
        json!({"uuid": uuid, "name": "loopback/x-a", "application": "park",
               "application_data": "", "dest": "park", "callstate": "ACTIVE"})
    };
    let listing = json!({"row_count": 2, "rows": [row(HELD), row(P)]}).to_string();
    // Parked through a loopback call a phone placed: its parker is asked for by name.
    let dump = json!({"Event-Name": "CHANNEL_DATA", "Unique-ID": P, "Answer-State": "answered",
        "Caller-Caller-ID-Name": "Carol", "Caller-Caller-ID-Number": "5551234",
        "Caller-Destination-Number": "park", "variable_current_application": "park",
        "variable_callpark_action": "park", "variable_other_loopback_from_uuid": LOOP})
    .to_string();
    // Connects with HELD held, and has the listing and P's dump answered; gives back the
    // requests left unanswered.
    let adopt = |t: &mut FsTranslator| -> Vec<Request> {
        let mut out = Output::default();
        t.on_connect([ChannelId::new(HELD)].into_iter().collect(), &mut out);
        let list = out.requests.last().unwrap().clone();
        let mut out = Output::default();
        t.on_reply(list, Reply::Text(listing.clone()), &mut out);
        let mut left = Vec::new();
        for r in out.requests {
            if matches!(r.tag, Tag::Dump(_)) {
                let mut o = Output::default();
                t.on_reply(r, Reply::Text(dump.clone()), &mut o);
                assert!(o.events.is_empty(), "{:?}", o.events);
                left.extend(o.requests);
            } else {
                left.push(r);
            }
        }
        left
    };
    let left = adopt(&mut t);
    assert!(
        left.iter().any(|r| matches!(r.tag, Tag::PlacedBy(_))),
        "{:?}",
        left.iter().map(|r| &r.out.line).collect::<Vec<_>>()
    );
    assert!(t.state_size() > 0);
    t.on_disconnect();
    assert_eq!(t.state_size(), 0, "nothing of the adoption is left");
    for r in left {
        let mut out = Output::default();
        t.on_reply(
            r,
            Reply::Lost("the event socket connection dropped".into()),
            &mut out,
        );
        assert!(out.is_empty(), "{:?}", out.events);
    }
    assert_eq!(t.state_size(), 0);
    // The next connection finds the park again, and reports it found once its parker is known.
    let left = adopt(&mut t);
    let placed_by = left
        .into_iter()
        .find(|r| matches!(r.tag, Tag::PlacedBy(_)))
        .unwrap();
    let mut out = Output::default();
    t.on_reply(
        placed_by,
        Reply::Text("sofia/internal/alice@192.0.2.7:5060".into()),
        &mut out,
    );
    assert!(
        matches!(&out.events[..], [PbxEvent::Found(Event::Park(ParkRequest { channel, .. }))] if channel.as_str() == P),
        "{:?}",
        out.events
    );
}

/// Park and page: one `bgapi originate` with sofia's auto-answer and the orbit spoken twice,
/// nothing that would bring the page's events to callpark, and its end a quiet `uuid_kill`.
#[test]
fn a_page_is_an_auto_answered_originate_that_speaks_the_orbit() {
    let mut t = tr();
    let leg = ChannelId::new(P).leg("pg1");
    let out = cmd(
        &mut t,
        Command::Page {
            channel: leg.clone(),
            target: Destination::parse("user/8000@example.com").unwrap(),
            orbit: "*601".parse().unwrap(),
            caller_id: Party {
                name: "Parked *601: Carol".into(),
                number: "*601".into(),
            },
            timeout_ms: 15_000,
        },
    );
    let r = &out.requests[0];
    assert_eq!(
        r.out.line,
        format!(
            "bgapi originate {{origination_uuid={leg},origination_caller_id_name='Parked *601: Carol',\
             origination_caller_id_number='*601',originate_timeout=15,sip_auto_answer=true,\
             alert_info=info=alert-autoanswer,ignore_early_media=true}}user/8000@example.com \
             &playback(file_string://silence_stream://1000!digits/star.wav!digits/6.wav!digits/0.wav\
             !digits/1.wav!silence_stream://700!digits/star.wav!digits/6.wav!digits/0.wav!digits/1.wav)"
        )
    );
    assert!(
        !r.out.line.contains("callpark_"),
        "no event of the page is callpark's"
    );
    assert!(out.events.is_empty());
    // Its job failing is the log's, not the core's: the core knows no page leg. (The
    // captured failed originate, its id made the page's.)
    let mut job = captured_events()
        .into_iter()
        .find(|e| e.name == "BACKGROUND_JOB")
        .unwrap();
    job.job_uuid = Some(leg.to_string());
    assert!(job.body.as_deref().unwrap().starts_with("-ERR"));
    assert!(wire(&mut t, job.clone()).is_empty());
    // A second answer for it (or any other job) is a leg's again.
    assert_eq!(
        calls(&wire(&mut t, job)),
        [Event::OriginateFailed {
            channel: leg.clone(),
            reason: "NO_ANSWER".into()
        }]
    );
    let out = cmd(
        &mut t,
        Command::EndPage {
            channel: leg.clone(),
        },
    );
    assert_eq!(lines(&out), [format!("api uuid_kill {leg}")]);
    // Already over: no hang-up is made of it.
    let mut after = Output::default();
    t.on_reply(
        out.requests[0].clone(),
        Reply::Text("-ERR No such channel!\n".into()),
        &mut after,
    );
    assert!(after.is_empty(), "{:?}", after.events);
}
