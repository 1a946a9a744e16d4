//! Every park flow end to end on both real testbeds (contrib/testbed/asterisk, a real Asterisk
//! 22, and contrib/testbed/freeswitch, a real FreeSWITCH 1.11), with `callpark run` as a
//! process: each scenario is written once against [`Testbed`] and run on each PBX. Phones are
//! the testbeds' simulated phones; a park "from a call" is the PBX's own blind transfer, so
//! callpark learns the parker as it does from a real phone's transfer.

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

async fn park_by_blind_transfer_music_lamp_then_retrieve(pbx: &impl Testbed) {
    let cp = Callpark::start(&pbx.setup(&Setup::default().park)).await;
    let o1 = pbx.orbit(1);

    let mark = pbx.mark();
    let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
    let call = cp.wait_parked_on(&o1).await;
    assert_eq!(call.channel.as_str(), caller.id);
    assert_eq!(
        call.parker.endpoint.as_deref(),
        Some(pbx.parker("alice").as_str()),
        "the parker is the phone that transferred the caller"
    );
    if let Side::Freeswitch(_) = pbx.side() {
        // Asterisk's Local channel into the phone carries the dialled extension as its number.
        assert_eq!(call.caller.number, "5551234");
    }
    assert!(cp.kinds_of(&caller.id).await.contains(&"parked".into()));
    pbx.wait_music(mark, &caller, Music::Default).await;
    pbx.wait_lamp(mark, &o1, true).await;

    let mark = pbx.mark();
    let retriever = pbx.dial_orbit(&o1, "Dave", "202").await;
    pbx.wait_bridged(
        "the parked call bridged to the retriever",
        &caller.id,
        &retriever.id,
    )
    .await;
    cp.wait_log(&caller.id, "retrieved", S(5)).await;
    let row = cp.log_row(&caller.id, "retrieved").await;
    assert!(row.detail.contains("202"), "who retrieved: {}", row.detail);
    assert!(cp.parked().await.is_empty(), "orbit {o1} is free again");
    pbx.wait_lamp(mark, &o1, false).await;
    if let Side::Asterisk(..) = pbx.side() {
        let stopped = format!("Stopped music on hold on {}", caller.name);
        assert!(
            asterisk_log().contains(&stopped),
            "music stops at the bridge"
        );
    }

    // The next park takes the lowest free orbit again.
    let caller2 = pbx.park_by_transfer("bob", "Eve", "5550000").await;
    let call2 = cp.wait_parked_on(&o1).await;
    assert_eq!(call2.channel.as_str(), caller2.id);
}

#[tokio::test]
async fn asterisk_park_by_blind_transfer_music_lamp_then_retrieve_bridges_and_frees() {
    park_by_blind_transfer_music_lamp_then_retrieve(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_park_by_blind_transfer_music_lamp_then_retrieve_bridges_and_frees() {
    park_by_blind_transfer_music_lamp_then_retrieve(&freeswitch().await).await;
}

async fn timeout_rings_back_the_parker(pbx: &impl Testbed) {
    let cp =
        Callpark::start(&pbx.setup(
            "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"8s\"\n",
        ))
        .await;
    let o1 = pbx.orbit(1);
    let mark = pbx.mark();
    let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
    let call = cp.wait_parked_on(&o1).await;
    let ringback = leg_id(&caller.id, "rb1");
    let rb = pbx.wait_leg(mark, &ringback).await;
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
        rb.caller_name,
        format!("Parked {o1}: Carol"),
        "caller id shows the orbit and whose call it is"
    );
    if let Side::Freeswitch(_) = pbx.side() {
        assert_eq!(rb.caller_number, "5551234");
    }
    assert!(
        pbx.dials(&rb.name, "to-dev-alice"),
        "the ringback dials the parker's own phone: {}",
        rb.name
    );
    pbx.wait_bridged(
        "the parked call bridged to the parker",
        &caller.id,
        &ringback,
    )
    .await;
    let kinds = kinds_until(&cp, &caller.id, "reconnected", S(5)).await;
    assert_eq!(kinds, ["parked", "ringback_started", "reconnected"]);
    assert!(cp.parked().await.is_empty());
}

#[tokio::test]
async fn asterisk_timeout_rings_back_the_parker_showing_the_orbit_and_answer_reconnects() {
    timeout_rings_back_the_parker(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_timeout_rings_back_the_parker_showing_the_orbit_and_answer_reconnects() {
    timeout_rings_back_the_parker(&freeswitch().await).await;
}

async fn missed_ringbacks_then_fallback_answers(pbx: &impl Testbed) {
    let cp = Callpark::start(&pbx.setup(&format!(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 2\nringback_ring_time = \"5s\"\non_timeout = \"{}\"\n",
        pbx.exten("answer")
    )))
    .await;
    let mark = pbx.mark();
    let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
    cp.wait_parked_on(&pbx.orbit(1)).await;
    // From now on alice's phone rings and nobody picks up.
    pbx.set_phone("alice", "noanswer").await;

    let kinds = kinds_until(&cp, &caller.id, "fallback_answered", S(45)).await;
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
    let fallback = leg_id(&caller.id, "fb");
    let leg = pbx.wait_leg(mark, &fallback).await;
    assert!(
        pbx.dials(&leg.name, "answer"),
        "{} is dialled: {}",
        pbx.exten("answer"),
        leg.name
    );
    pbx.wait_bridged(
        "the parked call bridged to the fallback destination",
        &caller.id,
        &fallback,
    )
    .await;
    assert!(cp.parked().await.is_empty(), "the orbit is freed");
}

#[tokio::test]
async fn asterisk_missed_ringbacks_then_fallback_answers() {
    missed_ringbacks_then_fallback_answers(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_missed_ringbacks_then_fallback_answers() {
    missed_ringbacks_then_fallback_answers(&freeswitch().await).await;
}

async fn nobody_answers_anywhere_the_call_is_disconnected(pbx: &impl Testbed) {
    // On FreeSWITCH on_timeout is a dial string of its own, on Asterisk an extension.
    let on_timeout = match pbx.side() {
        Side::Asterisk(..) => pbx.exten("noanswer"),
        Side::Freeswitch(_) => format!("loopback/noanswer/{}", support::fs::fb("CONTEXT")),
    };
    let cp = Callpark::start(&pbx.setup(&format!(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"5s\"\non_timeout = \"{on_timeout}\"\n"
    )))
    .await;
    let o1 = pbx.orbit(1);
    let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
    cp.wait_parked_on(&o1).await;
    pbx.set_phone("alice", "noanswer").await;
    let mark = pbx.mark();
    let kinds = kinds_until(&cp, &caller.id, "disconnected", S(35)).await;
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
    pbx.wait_gone("the parked channel hung up", &caller.id, S(5))
        .await;
    assert!(cp.parked().await.is_empty());
    pbx.wait_lamp(mark, &o1, false).await;
}

#[tokio::test]
async fn asterisk_nobody_answers_anywhere_the_call_is_disconnected() {
    nobody_answers_anywhere_the_call_is_disconnected(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_nobody_answers_anywhere_the_call_is_disconnected() {
    nobody_answers_anywhere_the_call_is_disconnected(&freeswitch().await).await;
}

async fn retrieve_while_the_ringback_rings_cancels_the_ringback(pbx: &impl Testbed) {
    let cp = Callpark::start(&pbx.setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"20s\"\n",
    ))
    .await;
    let o1 = pbx.orbit(1);
    let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
    cp.wait_parked_on(&o1).await;
    pbx.set_phone("alice", "noanswer").await;
    let ringback = leg_id(&caller.id, "rb1");
    pbx.wait_there("the ringback channel", &ringback, S(15))
        .await;
    let retriever = pbx.dial_orbit(&o1, "Dave", "202").await;
    pbx.wait_bridged("bridged to the retriever", &caller.id, &retriever.id)
        .await;
    pbx.wait_gone("the ringback cancelled", &ringback, S(5))
        .await;
    let kinds = kinds_until(&cp, &caller.id, "retrieved", S(5)).await;
    assert_eq!(kinds.first().map(String::as_str), Some("parked"));
    assert!(kinds.contains(&"ringback_started".to_string()));
    assert!(cp.parked().await.is_empty());
}

#[tokio::test]
async fn asterisk_retrieve_while_the_ringback_rings_cancels_the_ringback() {
    retrieve_while_the_ringback_rings_cancels_the_ringback(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_retrieve_while_the_ringback_rings_cancels_the_ringback() {
    retrieve_while_the_ringback_rings_cancels_the_ringback(&freeswitch().await).await;
}

async fn parked_caller_hangs_up_while_parked_and_while_ringback_rings(pbx: &impl Testbed) {
    let cp = Callpark::start(&pbx.setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"20s\"\n",
    ))
    .await;
    let first = pbx.park_by_transfer("alice", "Carol", "5551234").await;
    cp.wait_parked_on(&pbx.orbit(1)).await;
    let second = pbx.park_by_transfer("bob", "Eve", "5550000").await;
    cp.wait_parked_on(&pbx.orbit(2)).await;
    pbx.set_phone("bob", "noanswer").await;

    // The first caller gives up while parked.
    let mark = pbx.mark();
    pbx.hang_up(&first.id).await;
    let kinds = kinds_until(&cp, &first.id, "abandoned", S(5)).await;
    assert_eq!(kinds, ["parked", "abandoned"]);
    pbx.wait_lamp(mark, &pbx.orbit(1), false).await;

    // The second gives up while its parker's phone rings.
    let ringback = leg_id(&second.id, "rb1");
    pbx.wait_there("the ringback channel", &ringback, S(15))
        .await;
    pbx.hang_up(&second.id).await;
    let kinds = kinds_until(&cp, &second.id, "abandoned", S(5)).await;
    assert_eq!(kinds, ["parked", "ringback_started", "abandoned"]);
    pbx.wait_gone("the ringback cancelled", &ringback, S(5))
        .await;
    assert!(cp.parked().await.is_empty(), "both orbits are free");
}

#[tokio::test]
async fn asterisk_parked_caller_hangs_up_while_parked_and_while_ringback_rings() {
    parked_caller_hangs_up_while_parked_and_while_ringback_rings(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_parked_caller_hangs_up_while_parked_and_while_ringback_rings() {
    parked_caller_hangs_up_while_parked_and_while_ringback_rings(&freeswitch().await).await;
}

async fn two_retrieves_of_one_orbit_at_once_exactly_one_wins(pbx: &impl Testbed) {
    let cp = Callpark::start(&pbx.setup(&Setup::default().park)).await;
    let o1 = pbx.orbit(1);
    let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
    cp.wait_parked_on(&o1).await;
    let (a, b) = tokio::join!(
        pbx.dial_orbit(&o1, "Dave", "202"),
        pbx.dial_orbit(&o1, "Fay", "203"),
    );
    cp.wait_log(&caller.id, "retrieved", S(10)).await;
    let a_won = pbx.bridged(&caller.id, &a.id).await;
    let b_won = pbx.bridged(&caller.id, &b.id).await;
    assert!(
        a_won ^ b_won,
        "exactly one retriever is bridged ({a_won}, {b_won})"
    );
    let loser = if a_won { &b } else { &a };
    cp.wait_log(&loser.id, "orbit_empty", S(5)).await;
    wait_for("the loser hears that the orbit is empty", S(5), || async {
        pbx.heard_orbit_empty(loser).then_some(())
    })
    .await;
    pbx.wait_gone("the loser hung up", &loser.id, S(10)).await;
}

#[tokio::test]
async fn asterisk_two_retrieves_of_one_orbit_at_once_exactly_one_wins() {
    two_retrieves_of_one_orbit_at_once_exactly_one_wins(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_two_retrieves_of_one_orbit_at_once_exactly_one_wins() {
    two_retrieves_of_one_orbit_at_once_exactly_one_wins(&freeswitch().await).await;
}

async fn empty_orbit_full_range_and_policy_refusal(pbx: &impl Testbed) {
    // Two orbits only, and park allowed for the `dev-` phones but not for mallory.
    let mut setup = Setup {
        policy: format!(
            "[[policy]]\nname = \"no-mallory\"\nenable_call_park = false\npatterns = [\".*mallory.*\"]\n\n[[policy]]\nname = \"phones\"\nenable_call_park = true\npatterns = [\"{}\"]\n",
            pbx.phones_pattern()
        ),
        ..pbx.setup(&Setup::default().park)
    };
    pbx.limit_orbits(&mut setup, 1, 2);
    let cp = Callpark::start(&setup).await;

    // Nothing is parked on the 50th orbit: the caller hears so and is hung up.
    let empty = pbx.dial_orbit(&pbx.orbit(50), "Dave", "202").await;
    cp.wait_log(&empty.id, "orbit_empty", S(5)).await;
    pbx.wait_gone("the caller of an empty orbit hung up", &empty.id, S(10))
        .await;

    // Fill both orbits; the third park is refused and the call rings its parker again.
    pbx.park_by_transfer("alice", "C1", "5550001").await;
    cp.wait_parked_on(&pbx.orbit(1)).await;
    pbx.park_by_transfer("bob", "C2", "5550002").await;
    cp.wait_parked_on(&pbx.orbit(2)).await;
    let third = pbx.park_by_transfer("carol", "C3", "5550003").await;
    let kinds = kinds_until(&cp, &third.id, "returned", S(10)).await;
    assert_eq!(kinds, ["refused", "returned"]);
    let row = cp.log_row(&third.id, "refused").await;
    assert!(
        row.detail.contains("every orbit is in use"),
        "{}",
        row.detail
    );
    pbx.wait_bridged(
        "the refused call back with its parker",
        &third.id,
        &leg_id(&third.id, "ret"),
    )
    .await;
    assert_eq!(cp.parked().await.len(), 2, "nothing else changed");

    // A parker no policy enables.
    let refused = pbx.park_by_transfer("mallory", "C4", "5550004").await;
    let kinds = kinds_until(&cp, &refused.id, "returned", S(10)).await;
    assert_eq!(kinds, ["refused", "returned"]);
    let row = cp.log_row(&refused.id, "refused").await;
    assert!(row.detail.contains("not enabled"), "{}", row.detail);
}

#[tokio::test]
async fn asterisk_empty_orbit_full_range_and_policy_refusal() {
    empty_orbit_full_range_and_policy_refusal(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_empty_orbit_full_range_and_policy_refusal() {
    empty_orbit_full_range_and_policy_refusal(&freeswitch().await).await;
}

async fn music_on_hold_off_class_and_custom_file(pbx: &impl Testbed) {
    // Each configuration with its own include (`callpark dialplan <pbx>`): the include puts a
    // transferred call on hold with the configured music.
    let own = |park: String| {
        let mut s = pbx.setup(&park);
        s.ast_include_from_config = s.asterisk;
        s.fs_include_from_config = !s.asterisk;
        s
    };
    // music_on_hold = false: silence.
    let cp = Callpark::start(&own(
        "pickup_timeout = \"60s\"\nmusic_on_hold = false\n".into()
    ))
    .await;
    let mark = pbx.mark();
    let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
    cp.wait_parked_on(&pbx.orbit(1)).await;
    tokio::time::sleep(S(2)).await;
    assert!(
        !pbx.any_music(mark, &caller).await,
        "no music on hold when music_on_hold = false"
    );
    drop(cp);
    pbx.reset().await;

    // A class of the PBX (on FreeSWITCH a local_stream of that name).
    let class = match pbx.side() {
        Side::Asterisk(..) => "callpark-custom".to_string(),
        Side::Freeswitch(_) => support::fs::fb("MOH_CUSTOM_CLASS"),
    };
    let cp = Callpark::start(&own(format!(
        "pickup_timeout = \"60s\"\nmusic_on_hold_class = \"{class}\"\n"
    )))
    .await;
    let mark = pbx.mark();
    let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
    cp.wait_parked_on(&pbx.orbit(1)).await;
    pbx.wait_music(mark, &caller, Music::Class(&class)).await;
    drop(cp);
    pbx.reset().await;

    // A custom file, kept in the data directory under its checksum.
    let src = match pbx.side() {
        Side::Asterisk(..) => {
            let src = std::path::Path::new(&tb("ROOT"))
                .join("usr/share/asterisk/moh/macroform-robot_dity.wav");
            assert!(
                src.exists(),
                "{} is shipped by asterisk-moh-opsound-wav",
                src.display()
            );
            src
        }
        Side::Freeswitch(_) => {
            let src = std::path::Path::new(&support::fs::fb("ROOT"))
                .join("run/sounds/music/8000/callpark-hold.wav");
            assert!(src.exists(), "{} is made by testbed.sh", src.display());
            src
        }
    };
    let cp = Callpark::start(&own(format!(
        "pickup_timeout = \"60s\"\nmusic_on_hold_file = \"{}\"\n",
        src.display()
    )))
    .await;
    let mark = pbx.mark();
    let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
    cp.wait_parked_on(&pbx.orbit(1)).await;
    let kept = std::fs::read_dir(cp.dir.path().join("data/moh"))
        .expect("the kept copy")
        .map(|e| e.unwrap().path())
        .next()
        .expect("one kept file");
    match pbx.side() {
        // Played from the kept copy, as the chrooted Asterisk sees it.
        Side::Asterisk(..) => {
            let stem = kept.with_extension("");
            let inside = stem
                .strip_prefix(tb("ROOT"))
                .map(|p| format!("/{}", p.display()))
                .unwrap();
            let heard = format!("<{}> Playing '", caller.name);
            wait_for(
                "the custom file played to the parked call",
                S(5),
                || async {
                    asterisk_log()
                        .lines()
                        .any(|l| {
                            l.contains(&heard)
                                && (l.contains(&stem.display().to_string()) || l.contains(&inside))
                        })
                        .then_some(())
                },
            )
            .await;
        }
        // A transferred call hears the file from the include at once; music callpark starts
        // itself (here after the orbit spoken to a caller who dialled the park code) comes
        // from the kept copy.
        Side::Freeswitch(esl) => {
            let on_hold = |uuid: String, media: String| async move {
                esl.wait_event(
                    mark,
                    &format!("music on hold {media} on {uuid}"),
                    S(5),
                    |e| {
                        e.name() == "PLAYBACK_START"
                            && e.uuid() == uuid
                            && e.get("Playback-File-Path").contains(&media)
                    },
                )
                .await;
            };
            on_hold(caller.id.clone(), src.display().to_string()).await;
            let direct = pbx.dial_park("Zed", "209").await;
            cp.wait_parked_on(&pbx.orbit(2)).await;
            on_hold(direct.id, kept.display().to_string()).await;
        }
    }
}

#[tokio::test]
async fn asterisk_music_on_hold_off_class_and_custom_file() {
    music_on_hold_off_class_and_custom_file(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_music_on_hold_off_class_and_custom_file() {
    music_on_hold_off_class_and_custom_file(&freeswitch().await).await;
}

async fn park_code_dialled_directly_speaks_the_orbit_then_music(pbx: &impl Testbed) {
    let cp = Callpark::start(&pbx.setup(&Setup::default().park)).await;
    let mark = pbx.mark();
    let ch = pbx.dial_park("Zed", "209").await;
    let o1 = pbx.orbit(1);
    let call = cp.wait_parked_on(&o1).await;
    assert_eq!(call.channel.as_str(), ch.id);
    assert_eq!(call.parker.endpoint, None, "nobody else to ring back");
    // The orbit's digits spoken, then music.
    match pbx.side() {
        Side::Asterisk(..) => {
            let spoken: Vec<String> = o1
                .chars()
                .map(|d| format!("<{}> Playing 'digits/{d}.", ch.name))
                .collect();
            let moh = format!(
                "Started music on hold, class 'default', on channel '{}'",
                ch.name
            );
            wait_for("the orbit spoken, then music", S(10), || async {
                let log = asterisk_log();
                let pos: Vec<Option<usize>> = spoken
                    .iter()
                    .chain(std::iter::once(&moh))
                    .map(|s| log.find(s.as_str()))
                    .collect();
                (pos.iter().all(Option::is_some) && pos.windows(2).all(|w| w[0] < w[1]))
                    .then_some(())
            })
            .await;
        }
        Side::Freeswitch(esl) => {
            let said = esl
                .wait_event(mark, "the orbit spoken", S(5), |e| {
                    e.name() == "PLAYBACK_START" && e.uuid() == ch.id
                })
                .await;
            let digits: Vec<String> = o1.chars().map(|d| format!("digits/{d}.wav")).collect();
            assert_eq!(
                said.get("Playback-File-Path"),
                format!("file_string://{}", digits.join("!"))
            );
            let music = esl
                .wait_event(mark, "music after the orbit", S(10), |e| {
                    e.name() == "PLAYBACK_START"
                        && e.uuid() == ch.id
                        && e.get("Playback-File-Path").contains("moh")
                })
                .await;
            let done = esl
                .wait_event(mark, "the orbit's playback done", S(10), |e| {
                    e.name() == "PLAYBACK_STOP"
                        && e.uuid() == ch.id
                        && e.get("Playback-File-Path").starts_with("file_string://")
                })
                .await;
            assert!(
                done.at <= music.at,
                "music starts after the orbit is spoken"
            );
        }
    }
}

#[tokio::test]
async fn asterisk_park_code_dialled_directly_speaks_the_orbit_then_music() {
    park_code_dialled_directly_speaks_the_orbit_then_music(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_park_code_dialled_directly_speaks_the_orbit_then_music() {
    park_code_dialled_directly_speaks_the_orbit_then_music(&freeswitch().await).await;
}
