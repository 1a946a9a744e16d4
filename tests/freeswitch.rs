//! Every park flow end to end on the real FreeSWITCH testbed (contrib/testbed/freeswitch), with
//! `callpark run` as a process: the same flows as tests/asterisk.rs. Phones are loopback
//! channels into the testbed's `callpark-test` context; a park "from a call" is FreeSWITCH's
//! own blind transfer (`uuid_transfer` of the caller, as a REFER from a phone does it), so
//! callpark learns the parker from the channel the caller was bridged to.

use callpark_testkit as support;

use std::time::Duration;

use support::fs::*;
use support::fs::{dial_orbit, park_by_transfer};
use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

/// The presence event callpark sends for an orbit's busy lamp, after `mark`.
async fn lamp(esl: &Esl, mark: usize, orbit: &str, in_use: bool) {
    let from = format!("{orbit}@127.0.0.1");
    let state = if in_use { "confirmed" } else { "terminated" };
    esl.wait_event(mark, &format!("busy lamp of {orbit} {state}"), S(5), |e| {
        e.name() == "PRESENCE_IN"
            && e.get("unique-id") == format!("callpark-{orbit}")
            && e.get("from") == from
            && e.get("answer-state") == state
    })
    .await;
}

/// Music on hold starts on `uuid` (a broadcast of the hold music), after `mark`.
async fn on_hold(esl: &Esl, mark: usize, uuid: &str, media: &str) {
    esl.wait_event(
        mark,
        &format!("music on hold {media} on {uuid}"),
        S(5),
        |e| {
            e.name() == "PLAYBACK_START"
                && e.uuid() == uuid
                && e.get("Playback-File-Path").contains(media)
        },
    )
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
    esl.wait_event(
        mark,
        "the parked call bridged to the retriever",
        S(10),
        |e| {
            e.name() == "CHANNEL_BRIDGE"
                && [e.uuid(), e.get("Other-Leg-Unique-ID")].contains(&caller.as_str())
                && [e.uuid(), e.get("Other-Leg-Unique-ID")].contains(&retriever.as_str())
        },
    )
    .await;
    cp.wait_log(&caller, "retrieved", S(5)).await;
    let row = cp.log_row(&caller, "retrieved").await;
    assert!(row.detail.contains("202"), "who retrieved: {}", row.detail);
    assert!(cp.parked().await.is_empty(), "orbit 601 is free again");
    lamp(&esl, mark, "601", false).await;

    // The next park takes the lowest free orbit: 601 again.
    let caller2 = park_by_transfer(&esl, "bob", "Eve", "5550000").await;
    let call2 = cp.wait_parked_on("601").await;
    assert_eq!(call2.channel.as_str(), caller2);
}

fn setup(park: &str) -> Setup {
    Setup {
        park: park.into(),
        ..Setup::freeswitch()
    }
}

/// The log kinds of a channel, waiting until the last one is `last`.
async fn kinds_until(cp: &Callpark, channel: &str, last: &str, timeout: Duration) -> Vec<String> {
    cp.wait_log(channel, last, timeout).await;
    cp.kinds_of(channel).await
}

/// The id callpark gives a leg it originates for `parked`.
fn leg(parked: &str, tag: &str) -> String {
    callpark::park::ChannelId::new(parked).leg(tag).to_string()
}

/// Whether `a` and `b` are bridged to each other now.
async fn bridged(esl: &Esl, a: &str, b: &str) -> bool {
    esl.getvar(a, "bridge_uuid").await == b || esl.getvar(b, "bridge_uuid").await == a
}

async fn wait_bridged(esl: &Esl, what: &str, a: &str, b: &str) {
    wait_for(what, S(10), || async {
        bridged(esl, a, b).await.then_some(())
    })
    .await;
}

async fn wait_gone(esl: &Esl, what: &str, uuid: &str, timeout: Duration) {
    wait_for(what, timeout, || async {
        (!esl.exists(uuid).await).then_some(())
    })
    .await;
}

#[tokio::test]
async fn timeout_rings_back_the_parker_showing_the_orbit_and_answer_reconnects() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let cp = Callpark::start(&setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"8s\"\n",
    ))
    .await;
    let mark = esl.mark();
    let caller = park_by_transfer(&esl, "alice", "Carol", "5551234").await;
    let call = cp.wait_parked_on("601").await;
    let ringback = leg(&caller, "rb1");
    let created = esl
        .wait_event(mark, "the ringback channel", S(15), |e| {
            e.name() == "CHANNEL_CREATE" && e.uuid() == ringback
        })
        .await;
    let at = cp
        .log_rows()
        .await
        .into_iter()
        .find(|r| r.kind == "ringback_started")
        .expect("ringback logged")
        .at;
    assert!(
        (at - call.deadline).abs() < 1_500,
        "ringback at its deadline: {at} vs {}",
        call.deadline
    );
    assert_eq!(
        created.get("Caller-Caller-ID-Name"),
        "Parked 601: Carol",
        "caller id shows the orbit and whose call it is"
    );
    assert_eq!(created.get("Caller-Caller-ID-Number"), "5551234");
    assert_eq!(
        created.channel(),
        "loopback/dev-alice-a",
        "the ringback dials the parker's own phone"
    );
    wait_bridged(
        &esl,
        "the parked call bridged to the parker",
        &caller,
        &ringback,
    )
    .await;
    let kinds = kinds_until(&cp, &caller, "reconnected", S(5)).await;
    assert_eq!(kinds, ["parked", "ringback_started", "reconnected"]);
    assert!(cp.parked().await.is_empty());
}

#[tokio::test]
async fn missed_ringbacks_then_fallback_answers() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let ctx = fb("CONTEXT");
    let cp = Callpark::start(&setup(&format!(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 2\nringback_ring_time = \"5s\"\non_timeout = \"exten:answer@{ctx}\"\n"
    )))
    .await;
    let caller = park_by_transfer(&esl, "alice", "Carol", "5551234").await;
    cp.wait_parked_on("601").await;
    // From now on alice's phone rings and nobody picks up.
    esl.set_phone("alice", "noanswer").await;
    let kinds = kinds_until(&cp, &caller, "fallback_answered", S(45)).await;
    assert_eq!(
        kinds,
        [
            "parked",
            "ringback_started",
            "ringback_missed",
            "ringback_started",
            "ringback_missed",
            "fallback_started",
            "fallback_answered"
        ]
    );
    let fallback = leg(&caller, "fb");
    assert_eq!(
        esl.getvar(&fallback, "channel_name").await,
        "loopback/answer-a",
        "exten:answer@{ctx} is dialled"
    );
    wait_bridged(&esl, "bridged to the fallback", &caller, &fallback).await;
    assert!(cp.parked().await.is_empty(), "the orbit is freed");
}

#[tokio::test]
async fn nobody_answers_anywhere_the_call_is_disconnected() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let ctx = fb("CONTEXT");
    let cp = Callpark::start(&setup(&format!(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"5s\"\non_timeout = \"loopback/noanswer/{ctx}\"\n"
    )))
    .await;
    let caller = park_by_transfer(&esl, "alice", "Carol", "5551234").await;
    cp.wait_parked_on("601").await;
    esl.set_phone("alice", "noanswer").await;
    let mark = esl.mark();
    let kinds = kinds_until(&cp, &caller, "disconnected", S(35)).await;
    assert_eq!(
        kinds,
        [
            "parked",
            "ringback_started",
            "ringback_missed",
            "fallback_started",
            "fallback_missed",
            "disconnected"
        ]
    );
    wait_gone(&esl, "the parked channel hung up", &caller, S(5)).await;
    assert!(cp.parked().await.is_empty());
    lamp(&esl, mark, "601", false).await;
}

#[tokio::test]
async fn retrieve_while_the_ringback_rings_cancels_the_ringback() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let cp = Callpark::start(&setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"20s\"\n",
    ))
    .await;
    let caller = park_by_transfer(&esl, "alice", "Carol", "5551234").await;
    cp.wait_parked_on("601").await;
    esl.set_phone("alice", "noanswer").await;
    let ringback = leg(&caller, "rb1");
    wait_for("the ringback channel", S(15), || async {
        esl.exists(&ringback).await.then_some(())
    })
    .await;
    let retriever = dial_orbit(&esl, "601", "Dave", "202").await;
    wait_bridged(&esl, "bridged to the retriever", &caller, &retriever).await;
    wait_gone(&esl, "the ringback cancelled", &ringback, S(5)).await;
    let kinds = kinds_until(&cp, &caller, "retrieved", S(5)).await;
    assert_eq!(kinds.first().map(String::as_str), Some("parked"));
    assert!(kinds.contains(&"ringback_started".to_string()));
    assert!(cp.parked().await.is_empty());
}

#[tokio::test]
async fn parked_caller_hangs_up_while_parked_and_while_ringback_rings() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let cp = Callpark::start(&setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"20s\"\n",
    ))
    .await;
    let first = park_by_transfer(&esl, "alice", "Carol", "5551234").await;
    cp.wait_parked_on("601").await;
    let second = park_by_transfer(&esl, "bob", "Eve", "5550000").await;
    cp.wait_parked_on("602").await;
    esl.set_phone("bob", "noanswer").await;

    // The first caller gives up while parked.
    let mark = esl.mark();
    esl.api(&format!("uuid_kill {first}")).await;
    let kinds = kinds_until(&cp, &first, "abandoned", S(5)).await;
    assert_eq!(kinds, ["parked", "abandoned"]);
    lamp(&esl, mark, "601", false).await;

    // The second gives up while its parker's phone rings.
    let ringback = leg(&second, "rb1");
    wait_for("the ringback channel", S(15), || async {
        esl.exists(&ringback).await.then_some(())
    })
    .await;
    esl.api(&format!("uuid_kill {second}")).await;
    let kinds = kinds_until(&cp, &second, "abandoned", S(5)).await;
    assert_eq!(kinds, ["parked", "ringback_started", "abandoned"]);
    wait_gone(&esl, "the ringback cancelled", &ringback, S(5)).await;
    assert!(cp.parked().await.is_empty(), "both orbits are free");
}

#[tokio::test]
async fn two_retrieves_of_one_orbit_at_once_exactly_one_wins() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let cp = Callpark::start(&Setup::freeswitch()).await;
    let caller = park_by_transfer(&esl, "alice", "Carol", "5551234").await;
    cp.wait_parked_on("601").await;
    let (a, b) = tokio::join!(
        dial_orbit(&esl, "601", "Dave", "202"),
        dial_orbit(&esl, "601", "Fay", "203"),
    );
    cp.wait_log(&caller, "retrieved", S(10)).await;
    let a_won = bridged(&esl, &caller, &a).await;
    let b_won = bridged(&esl, &caller, &b).await;
    assert!(
        a_won ^ b_won,
        "exactly one retriever is bridged ({a_won}, {b_won})"
    );
    let loser = if a_won { &b } else { &a };
    cp.wait_log(loser, "orbit_empty", S(5)).await;
    wait_for("the loser hears that the orbit is empty", S(5), || async {
        fs_log()
            .lines()
            .any(|l| l.starts_with(loser.as_str()) && l.contains("ivr-that_was_an_invalid_entry"))
            .then_some(())
    })
    .await;
    wait_gone(&esl, "the loser hung up", loser, S(10)).await;
}

/// A retriever that hangs up just as callpark bridges it. FreeSWITCH's `uuid_bridge`, finding
/// an answered other side gone as the bridge starts, hangs the held call up unless that side
/// names an `rdnis` to send it to; the include names `callpark-return`, which parks it again.
/// The hang-ups are swept over the bridge's first tens of milliseconds, so some land before,
/// some after and some inside that window: each parked call is either retrieved (and ends
/// with its retriever, as any call, or is parked anew when that bridge ended before callpark
/// disarmed its way back) or stays parked with its music again, never hung up.
#[tokio::test]
async fn a_retriever_gone_as_callpark_bridges_never_takes_the_parked_call_with_it() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let cp = Callpark::start(&setup("pickup_timeout = \"10m\"\n")).await;
    let (mut kept, mut retrieved, mut reparked) = (0, 0, 0);
    let mut caller: Option<String> = None;
    for i in 0..60u64 {
        let c = match caller.take() {
            Some(c) => c,
            None => {
                let c = park_by_transfer(&esl, "alice", "Carol", "5551234").await;
                cp.wait_parked_on("601").await;
                c
            }
        };
        let before = cp.kinds_of(&c).await.len();
        let mark = esl.mark();
        // Not `dial_orbit`, which waits for the other half: the hang-up must follow at once.
        let a = esl.start_call("601", "Dave", "202").await;
        // callpark answers the retriever, then bridges: hang up from that moment on.
        let answered = esl
            .wait_event(mark, "the retriever answered by callpark", S(10), |e| {
                e.name() == "CHANNEL_ANSWER"
                    && e.get("variable_callpark_action") == "retrieve"
                    && e.get("Other-Leg-Unique-ID") != c
            })
            .await;
        tokio::time::sleep(Duration::from_millis(i % 10 * 4)).await;
        esl.api(&format!("uuid_kill {}", answered.uuid())).await;
        esl.api(&format!("uuid_kill {a}")).await;
        let outcome = wait_for("callpark's account of the retrieve", S(10), || async {
            let kinds = cp.kinds_of(&c).await;
            kinds[before..]
                .iter()
                .find(|k| ["retrieved", "retrieve_abandoned", "abandoned"].contains(&k.as_str()))
                .cloned()
        })
        .await;
        match outcome.as_str() {
            "retrieved" => {
                retrieved += 1;
                // Bridged, the call ends with its retriever, as any call does; a bridge that
                // ended before callpark disarmed its way back into `park` parks it anew.
                let parked_anew = wait_for(
                    "the retrieved call ended, or parked anew",
                    S(10),
                    || async {
                        if !esl.exists(&c).await {
                            return Some(false);
                        }
                        let kinds = cp.kinds_of(&c).await;
                        let after = kinds.iter().rposition(|k| k == "retrieved")?;
                        kinds[after..].iter().any(|k| k == "parked").then_some(true)
                    },
                )
                .await;
                if parked_anew {
                    reparked += 1;
                    cp.wait_parked_on("601").await;
                    caller = Some(c);
                }
            }
            "retrieve_abandoned" => {
                kept += 1;
                esl.wait_event(mark, "the parked call's music again", S(10), |e| {
                    e.name() == "PLAYBACK_START" && e.uuid() == c
                })
                .await;
                assert!(esl.exists(&c).await, "the parked call is still up");
                let call = cp.wait_parked_on("601").await;
                assert_eq!(call.channel.as_str(), c);
                caller = Some(c);
            }
            _ => panic!(
                "attempt {i}: the parked call was hung up with its retriever: {:?}",
                cp.kinds_of(&c).await
            ),
        }
    }
    eprintln!("{retrieved} retrieved ({reparked} of them parked anew), {kept} kept parked");
    assert!(
        retrieved > 0 && kept > 0,
        "the sweep reached both sides of the race ({retrieved} retrieved, {kept} kept)"
    );
}

#[tokio::test]
async fn empty_orbit_full_range_and_policy_refusal() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    // Two orbits only, and park allowed for the `dev-` phones but not for mallory.
    let cp = Callpark::start(&Setup {
        policy: "[[policy]]\nname = \"no-mallory\"\nenable_call_park = false\npatterns = [\".*mallory.*\"]\n\n[[policy]]\nname = \"phones\"\nenable_call_park = true\npatterns = [\"loopback/dev-.*\"]\n".into(),
        fs_ranges: vec![("601", "602")],
        ..Setup::freeswitch()
    })
    .await;

    // Nothing is parked on 650: the caller hears so and is hung up.
    let empty = dial_orbit(&esl, "650", "Dave", "202").await;
    cp.wait_log(&empty, "orbit_empty", S(5)).await;
    wait_gone(&esl, "the caller of an empty orbit hung up", &empty, S(10)).await;

    // Fill both orbits; the third park is refused and the call rings its parker again.
    park_by_transfer(&esl, "alice", "C1", "5550001").await;
    cp.wait_parked_on("601").await;
    park_by_transfer(&esl, "bob", "C2", "5550002").await;
    cp.wait_parked_on("602").await;
    let third = park_by_transfer(&esl, "carol", "C3", "5550003").await;
    let kinds = kinds_until(&cp, &third, "returned", S(10)).await;
    assert_eq!(kinds, ["refused", "returned"]);
    let row = cp.log_row(&third, "refused").await;
    assert!(
        row.detail.contains("every orbit is in use"),
        "{}",
        row.detail
    );
    wait_bridged(
        &esl,
        "the refused call back with its parker",
        &third,
        &leg(&third, "ret"),
    )
    .await;
    assert_eq!(cp.parked().await.len(), 2, "nothing else changed");

    // A parker no policy enables.
    let refused = park_by_transfer(&esl, "mallory", "C4", "5550004").await;
    let kinds = kinds_until(&cp, &refused, "returned", S(10)).await;
    assert_eq!(kinds, ["refused", "returned"]);
    let row = cp.log_row(&refused, "refused").await;
    assert!(row.detail.contains("not enabled"), "{}", row.detail);
}

#[tokio::test]
async fn music_on_hold_off_class_and_custom_file() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;

    // Each configuration with its own include (`callpark dialplan freeswitch`): the include
    // puts a transferred call on hold with the configured music.
    let own = |park: String| Setup {
        park,
        fs_include_from_config: true,
        ..Setup::freeswitch()
    };
    // music_on_hold = false: silence.
    let cp = Callpark::start(&own(
        "pickup_timeout = \"60s\"\nmusic_on_hold = false\n".into()
    ))
    .await;
    let mark = esl.mark();
    let caller = park_by_transfer(&esl, "alice", "Carol", "5551234").await;
    cp.wait_parked_on("601").await;
    tokio::time::sleep(S(2)).await;
    assert!(
        !esl.events()[mark..]
            .iter()
            .any(|e| e.name() == "PLAYBACK_START" && e.uuid() == caller),
        "no music on hold when music_on_hold = false"
    );
    drop(cp);
    esl.reset().await;

    // A class of the PBX: a local_stream of that name.
    let class = fb("MOH_CUSTOM_CLASS");
    let cp = Callpark::start(&own(format!(
        "pickup_timeout = \"60s\"\nmusic_on_hold_class = \"{class}\"\n"
    )))
    .await;
    let mark = esl.mark();
    let caller = park_by_transfer(&esl, "alice", "Carol", "5551234").await;
    cp.wait_parked_on("601").await;
    on_hold(&esl, mark, &caller, &format!("local_stream://{class}")).await;
    drop(cp);
    esl.reset().await;

    // A custom file. A transferred call hears it from the include at once; music callpark
    // starts itself (here after the orbit spoken to a caller who dialled the park code) comes
    // from the copy callpark keeps in its data directory under its checksum.
    let src = std::path::Path::new(&fb("ROOT")).join("run/sounds/music/8000/callpark-hold.wav");
    assert!(src.exists(), "{} is made by testbed.sh", src.display());
    let cp = Callpark::start(&own(format!(
        "pickup_timeout = \"60s\"\nmusic_on_hold_file = \"{}\"\n",
        src.display()
    )))
    .await;
    let mark = esl.mark();
    let caller = park_by_transfer(&esl, "alice", "Carol", "5551234").await;
    cp.wait_parked_on("601").await;
    on_hold(&esl, mark, &caller, &src.display().to_string()).await;
    let kept = std::fs::read_dir(cp.dir.path().join("data/moh"))
        .expect("the kept copy")
        .map(|e| e.unwrap().path())
        .next()
        .expect("one kept file");
    let direct = esl.call("park", "Zed", "209").await;
    cp.wait_parked_on("602").await;
    on_hold(&esl, mark, &direct, &kept.display().to_string()).await;
}

#[tokio::test]
async fn park_code_dialled_directly_speaks_the_orbit_then_music() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let cp = Callpark::start(&Setup::freeswitch()).await;
    let mark = esl.mark();
    let ch = esl.call("park", "Zed", "209").await;
    let call = cp.wait_parked_on("601").await;
    assert_eq!(call.channel.as_str(), ch);
    assert_eq!(call.parker.endpoint, None, "nobody else to ring back");
    // 6, 0, 1 spoken, then music.
    let said = esl
        .wait_event(mark, "the orbit spoken", S(5), |e| {
            e.name() == "PLAYBACK_START" && e.uuid() == ch
        })
        .await;
    assert_eq!(
        said.get("Playback-File-Path"),
        "file_string://digits/6.wav!digits/0.wav!digits/1.wav"
    );
    let music = esl
        .wait_event(mark, "music after the orbit", S(10), |e| {
            e.name() == "PLAYBACK_START"
                && e.uuid() == ch
                && e.get("Playback-File-Path").contains("moh")
        })
        .await;
    let done = esl
        .wait_event(mark, "the orbit's playback done", S(10), |e| {
            e.name() == "PLAYBACK_STOP"
                && e.uuid() == ch
                && e.get("Playback-File-Path").starts_with("file_string://")
        })
        .await;
    assert!(
        done.at <= music.at,
        "music starts after the orbit is spoken"
    );
}

#[tokio::test]
async fn sigkill_with_20_parked_calls_loses_nothing_and_timers_keep_their_deadlines() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let mut cp = Callpark::start(&setup(
        "pickup_timeout = \"25s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"10s\"\n",
    ))
    .await;
    let mut callers = Vec::new();
    for i in 1..=20 {
        let caller = park_by_transfer(
            &esl,
            &format!("p{i}"),
            &format!("C{i}"),
            &format!("55500{i:02}"),
        )
        .await;
        cp.wait_parked_on(&format!("{}", 600 + i)).await;
        callers.push(caller);
    }
    let mut before = cp.parked().await;
    before.sort_by_key(|c| c.orbit);
    assert_eq!(before.len(), 20);

    cp.kill();
    tokio::time::sleep(S(2)).await;
    for c in &callers {
        assert!(esl.exists(c).await, "FreeSWITCH keeps the parked channel");
    }
    cp.spawn().await;
    let mut after = cp.parked().await;
    after.sort_by_key(|c| c.orbit);
    assert_eq!(
        before, after,
        "same calls, same orbits, same deadlines after the restart"
    );

    // Retrievable after the restart.
    let retriever = dial_orbit(&esl, "605", "Dave", "202").await;
    wait_bridged(
        &esl,
        "orbit 605 retrieved after the restart",
        &callers[4],
        &retriever,
    )
    .await;

    // Every other call rings its parker back at the deadline stored before the kill.
    let pending: Vec<_> = before
        .iter()
        .filter(|c| c.channel.as_str() != callers[4])
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
async fn event_socket_cut_and_back_without_restart_loses_nothing() {
    outage_loses_nothing(Outage::Cut).await;
}

/// While callpark is not connected (or stuck), the include's scheduled transfer fires: a park
/// goes to on_timeout (the operator, `0@from-internal` in the example configuration) after
/// "parking failed", and a retriever hears the orbit is empty. Nobody waits in silence.
#[tokio::test]
async fn while_callpark_is_down_parks_go_to_the_operator_and_retrieves_hear_empty() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let mut cp = Callpark::start(&Setup::freeswitch()).await;
    cp.kill();
    let caller = park_by_transfer(&esl, "alice", "Carol", "5551234").await;
    wait_for("the park sent to the operator", S(10), || async {
        (esl.getvar(&caller, "destination_number").await == "0"
            || fs_log().lines().any(|l| {
                l.starts_with(caller.as_str())
                    && l.contains("Transfer")
                    && l.contains("to XML[0@from-internal]")
            }))
        .then_some(())
    })
    .await;
    assert!(
        fs_log().lines().any(|l| l.starts_with(caller.as_str())
            && l.contains("ivr-call_cannot_be_completed_as_dialed")),
        "the caller heard that parking failed"
    );
    assert!(
        esl.exists(&caller).await,
        "the call is alive at the operator"
    );

    let retriever = dial_orbit(&esl, "601", "Dave", "202").await;
    wait_gone(&esl, "the retriever told and hung up", &retriever, S(15)).await;
    assert!(
        fs_log()
            .lines()
            .any(|l| l.starts_with(retriever.as_str())
                && l.contains("ivr-that_was_an_invalid_entry")),
        "the retriever heard that the orbit is empty"
    );
}

/// A call from a caller to alice, the tests' own SIP phone (registered with FreeSWITCH), which
/// she answers and then blind-transfers to the park code with a SIP REFER.
async fn sip_park(esl: &Esl, phone: &sip::SipPhone, name: &str) -> String {
    let caller = esl.call("to-user-alice", name, "5551234").await;
    wait_for("alice's phone answered", S(10), || async {
        let peer = esl.getvar(&caller, "bridge_channel").await;
        peer.starts_with("sofia/").then_some(())
    })
    .await;
    let sip = fb("SIP_BIND");
    let r = phone
        .refer_last_call(&sip, &format!("sip:park@{sip}"))
        .await;
    assert!(r.starts_with("SIP/2.0 202"), "REFER: {r}");
    caller
}

#[tokio::test]
async fn sip_phone_refer_parks_learns_orbit_and_retrieve_by_message_lamp_and_ringback() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let sip = fb("SIP_BIND");
    let phone = sip::SipPhone::start(&fb("SIP_ALICE_CONTACT")).await;
    let r = phone.register(&sip, "alice", "127.0.0.1").await;
    assert!(r.starts_with("SIP/2.0 200"), "REGISTER: {r}");
    let cp = Callpark::start(&setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"8s\"\n",
    ))
    .await;
    // A busy-lamp key for orbit 601.
    let r = phone.subscribe(&sip, "601", "127.0.0.1").await;
    assert!(r.starts_with("SIP/2.0 20"), "SUBSCRIBE: {r}");
    let notified = |state: &'static str, from: usize| {
        let phone = &phone;
        async move {
            wait_for(&format!("a NOTIFY of 601 {state}"), S(5), || async {
                phone.notifies.lock().unwrap()[from..]
                    .iter()
                    .any(|n| n.contains("601@") && n.contains(&format!("<state>{state}</state>")))
                    .then_some(())
            })
            .await
        }
    };

    let notes = phone.notifies.lock().unwrap().len();
    let caller = sip_park(&esl, &phone, "Carol").await;
    let call = cp.wait_parked_on("601").await;
    assert_eq!(call.channel.as_str(), caller);
    // What FreeSWITCH sets on the transferred call, which is how callpark knows who parked.
    let source = esl.getvar(&caller, "transfer_source").await;
    assert!(
        source.contains(":bl_xfer:park/"),
        "transfer_source {source}"
    );
    let transferer = esl.getvar(&caller, "bridge_channel").await;
    assert!(
        transferer.starts_with("sofia/internal/alice@"),
        "bridge_channel {transferer}"
    );
    let referred_by = esl.getvar(&caller, "sip_h_Referred-By").await;
    assert!(
        referred_by.contains("sip:alice@"),
        "Referred-By {referred_by}"
    );
    assert_eq!(call.parker.endpoint.as_deref(), Some(transferer.as_str()));
    assert!(call.parker.ids.contains(&"alice".to_string()));
    wait_for("a SIP MESSAGE with the orbit", S(5), || async {
        phone
            .messages
            .lock()
            .unwrap()
            .iter()
            .find(|m| m.contains("parked on 601"))
            .cloned()
    })
    .await;
    notified("confirmed", notes).await;

    let notes = phone.notifies.lock().unwrap().len();
    let retriever = dial_orbit(&esl, "601", "Dave", "202").await;
    wait_bridged(&esl, "601 retrieved", &caller, &retriever).await;
    let msg = wait_for("a SIP MESSAGE saying who retrieved", S(5), || async {
        phone
            .messages
            .lock()
            .unwrap()
            .iter()
            .find(|m| m.contains("retrieved by"))
            .cloned()
    })
    .await;
    assert!(msg.contains("Dave"), "{msg}");
    notified("terminated", notes).await;
    esl.reset().await;

    // The next one times out: alice's phone rings showing the orbit, and she answers.
    let invites_before = phone.invites.lock().unwrap().len();
    let caller = sip_park(&esl, &phone, "Eve").await;
    cp.wait_parked_on("601").await;
    let invite = wait_for("the ringback INVITE to alice", S(15), || async {
        phone
            .invites
            .lock()
            .unwrap()
            .get(invites_before + 1)
            .cloned()
    })
    .await;
    let from = invite
        .lines()
        .find(|l| l.starts_with("From:"))
        .unwrap_or("")
        .to_string();
    assert!(
        from.contains("Parked 601"),
        "caller id on the phone: {from}"
    );
    cp.wait_log(&caller, "reconnected", S(10)).await;
}

#[tokio::test]
async fn on_timeout_sip_uri_is_dialled_through_the_sofia_profile() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let phone = sip::SipPhone::start(&fb("SIP_ALICE_CONTACT")).await;
    let cp = Callpark::start(&Setup {
        park: format!(
            "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"5s\"\non_timeout = \"sip:operator@{}\"\n",
            fb("SIP_ALICE_CONTACT")
        ),
        fs_extra: "sip_endpoint = \"internal\"\n",
        ..Setup::freeswitch()
    })
    .await;
    let caller = park_by_transfer(&esl, "alice", "Carol", "5551234").await;
    cp.wait_parked_on("601").await;
    esl.set_phone("alice", "noanswer").await;
    let kinds = kinds_until(&cp, &caller, "fallback_answered", S(30)).await;
    assert_eq!(
        kinds,
        [
            "parked",
            "ringback_started",
            "ringback_missed",
            "fallback_started",
            "fallback_answered"
        ]
    );
    let invite = phone.invites.lock().unwrap().last().cloned().unwrap();
    assert!(
        invite.starts_with("INVITE sip:operator@"),
        "the SIP phone got the fallback: {}",
        invite.lines().next().unwrap_or("")
    );
    wait_bridged(
        &esl,
        "bridged to the fallback",
        &caller,
        &leg(&caller, "fb"),
    )
    .await;
}

/// The channel's row in `show channels`.
async fn row(esl: &Esl, uuid: &str) -> Option<serde_json::Value> {
    esl.channels().await.into_iter().find(|c| c["uuid"] == uuid)
}

/// A park callpark took (it cancelled the include's fallback transfer, as it does first) and
/// then lost: it froze and was killed before the park was in its store. The call would wait on
/// the include's music forever; the restarted callpark finds it and parks it.
#[tokio::test]
async fn a_park_taken_then_lost_by_a_frozen_and_killed_callpark_is_adopted_on_restart() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let mut cp = Callpark::start(&setup("pickup_timeout = \"60s\"\n")).await;
    cp.freeze();
    let caller = park_by_transfer(&esl, "alice", "Carol", "5551234").await;
    wait_for("the include's hold music", S(5), || async {
        let r = row(&esl, &caller).await?;
        (r["application"] == "playback").then_some(())
    })
    .await;
    // What callpark's take does first; it froze right after.
    let r = esl.api(&format!("sched_del {caller}")).await;
    assert!(r.starts_with("+OK"), "sched_del: {r}");
    cp.kill();
    tokio::time::sleep(S(5)).await;
    let r = row(&esl, &caller).await.expect("the call is still there");
    assert_eq!(r["application"], "playback", "on the include's music: {r}");
    assert!(cp.parked().await.is_empty(), "and unknown to the store");

    cp.spawn().await;
    let call = cp.wait_parked_on("601").await;
    assert_eq!(call.channel.as_str(), caller);
    assert_eq!(
        call.parker.endpoint.as_deref(),
        Some("loopback/dev-alice/callpark-test"),
        "the parker read from the channel, as for a park seen arriving"
    );
    assert!(
        cp.log_text()
            .contains("found in callpark's hands on connecting; adopting it")
    );
    let retriever = dial_orbit(&esl, "601", "Dave", "202").await;
    wait_bridged(&esl, "the adopted call retrieved", &caller, &retriever).await;
    cp.wait_log(&caller, "retrieved", S(5)).await;
}

/// A ringback answered (and parked by its originate) while callpark is frozen, then killed:
/// after the restart it is bridged to the parked call at once.
#[tokio::test]
async fn a_ringback_answered_while_callpark_was_down_is_bridged_after_the_restart() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let mut cp = Callpark::start(&setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"60s\"\n",
    ))
    .await;
    let caller = park_by_transfer(&esl, "alice", "Carol", "5551234").await;
    cp.wait_parked_on("601").await;
    // The parker's phone rings for 3 s before it answers: callpark is frozen by then.
    esl.set_phone("alice", "answerafter3").await;
    let rb = leg(&caller, "rb1");
    wait_for("the ringback ringing", S(15), || async {
        row(&esl, &rb).await.map(|_| ())
    })
    .await;
    cp.freeze();
    wait_for("the ringback answered and parked", S(10), || async {
        let r = row(&esl, &rb).await?;
        (r["application"] == "park").then_some(())
    })
    .await;
    cp.kill();
    assert!(!bridged(&esl, &caller, &rb).await, "nobody bridged it");
    let started = std::time::Instant::now();
    cp.spawn().await;
    wait_bridged(&esl, "the answered ringback bridged", &caller, &rb).await;
    cp.wait_log(&caller, "reconnected", S(5)).await;
    assert!(
        started.elapsed() < S(20),
        "bridged at once, not after the ring time ran out"
    );
    assert!(cp.parked().await.is_empty());
}

/// An event socket that goes silent without closing (a hung FreeSWITCH, a path that drops
/// everything) is noticed within a bounded time by a probe nobody answers, and reconnected
/// once it answers again, with the calls reconciled.
#[tokio::test]
async fn a_silent_event_socket_is_noticed_and_reconnected_with_the_calls_reconciled() {
    outage_loses_nothing(Outage::Silence).await;
}

/// Two calls parked; the event socket lost (cut, or silent); one parked caller hangs up
/// meanwhile; the socket back: reconciliation ends the call that vanished and frees its orbit,
/// the other is untouched.
async fn outage_loses_nothing(outage: Outage) {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let cutter = Cutter::start(esl_addr()).await;
    let cp = Callpark::start(&Setup {
        park: "pickup_timeout = \"60s\"\n".into(),
        esl_addr: Some(format!("127.0.0.1:{}", cutter.port)),
        ..Setup::freeswitch()
    })
    .await;
    let stays = park_by_transfer(&esl, "alice", "C1", "5550001").await;
    cp.wait_parked_on("601").await;
    let leaves = park_by_transfer(&esl, "bob", "C2", "5550002").await;
    cp.wait_parked_on("602").await;

    let connects = cp.log_text().matches("connected to FreeSWITCH").count();
    let began = std::time::Instant::now();
    match outage {
        Outage::Cut => {
            cutter.cut();
            wait_for("callpark to notice the lost connection", S(10), || async {
                cp.log_text()
                    .contains("FreeSWITCH connection lost")
                    .then_some(())
            })
            .await;
        }
        Outage::Silence => {
            cutter.freeze();
            let bound = callpark::pbx::QUIET + callpark::pbx::PROBE_TIMEOUT;
            wait_for("callpark to notice the silence", bound + S(3), || async {
                cp.log_text()
                    .contains("FreeSWITCH did not answer for")
                    .then_some(())
            })
            .await;
            assert!(
                began.elapsed() >= callpark::pbx::QUIET,
                "not before it was quiet"
            );
        }
    }
    // While callpark cannot hear FreeSWITCH, one parked caller hangs up.
    esl.api(&format!("uuid_kill {leaves}")).await;
    tokio::time::sleep(S(2)).await;
    let mark = esl.mark();
    cutter.restore();
    wait_for("callpark to reconnect", S(15), || async {
        (cp.log_text().matches("connected to FreeSWITCH").count() > connects).then_some(())
    })
    .await;

    // Reconciliation ended the call that vanished and freed its orbit; the other is untouched.
    cp.wait_log(&leaves, "abandoned", S(5)).await;
    let parked = cp.parked().await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].channel.as_str(), stays);
    lamp(&esl, mark, "602", false).await;
    let retriever = dial_orbit(&esl, "601", "Dave", "202").await;
    wait_bridged(
        &esl,
        "601 retrieved after the reconnect",
        &stays,
        &retriever,
    )
    .await;
}
