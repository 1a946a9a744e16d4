//! Music on hold that cannot play never ends a parked call, on either PBX: a music class the
//! PBX does not have, and a music file that is missing. The call stays parked (in silence),
//! callpark says so once in its log, and the call is still retrieved by dialling its orbit.

use callpark_testkit as support;

use std::time::Duration;

use support::fs::{Esl, fb, fs_testbed};
use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

/// How many times callpark's log says that music could not play.
fn silent_music_warnings(cp: &Callpark) -> usize {
    cp.log_text()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("parked calls wait in silence"))
        .count()
}

/// The call on `orbit` is still parked, its channel alive, `wait` after it was parked.
async fn still_parked(cp: &Callpark, orbit: &str, wait: Duration) -> String {
    let call = cp.wait_parked_on(orbit).await;
    tokio::time::sleep(wait).await;
    let now = cp.wait_parked_on(orbit).await;
    assert_eq!(now.channel, call.channel, "still the same call on {orbit}");
    let kinds = cp.kinds_of(call.channel.as_str()).await;
    assert_eq!(kinds, ["parked"], "nothing ended it: {kinds:?}");
    call.channel.as_str().to_string()
}

// ----- FreeSWITCH ------------------------------------------------------------------------

/// A caller transferred to the park code while its `hold_music` names `music`.
async fn fs_park_with_hold_music(esl: &Esl, music: Option<&str>) -> String {
    esl.set_phone("alice", "answer").await;
    let caller = esl.call("to-dev-alice", "Carol", "5551234").await;
    wait_for("the pair bridged", S(10), || async {
        (esl.getvar(&caller, "bridge_uuid").await.len() == 36).then_some(())
    })
    .await;
    if let Some(m) = music {
        let r = esl
            .api(&format!("uuid_setvar {caller} hold_music {m}"))
            .await;
        assert!(r.starts_with("+OK"), "setvar: {r}");
    }
    let r = esl
        .api(&format!(
            "uuid_transfer {caller} park XML {}",
            fb("CONTEXT")
        ))
        .await;
    assert!(r.starts_with("+OK"), "transfer: {r}");
    caller
}

async fn fs_retrieve(esl: &Esl, cp: &Callpark, orbit: &str, parked: &str) {
    esl.call(orbit, "Dave", "202").await;
    cp.wait_log(parked, "retrieved", S(10)).await;
}

#[tokio::test]
async fn freeswitch_a_missing_music_file_leaves_the_call_parked_in_silence() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let cp = Callpark::start(&Setup::freeswitch()).await;
    // The shipped include plays `${hold_music}`: the caller's names a file that is not there.
    let caller = fs_park_with_hold_music(&esl, Some("/nonexistent/callpark-moh.wav")).await;
    let parked = still_parked(&cp, "601", S(3)).await;
    assert_eq!(parked, caller);
    assert!(esl.exists(&caller).await, "the caller is still there");
    assert_eq!(silent_music_warnings(&cp), 1, "{}", cp.log_text());
    // A second such park is not reported again.
    let second = fs_park_with_hold_music(&esl, Some("/nonexistent/callpark-moh.wav")).await;
    let on = still_parked(&cp, "602", S(2)).await;
    assert_eq!(on, second);
    assert_eq!(silent_music_warnings(&cp), 1);
    fs_retrieve(&esl, &cp, "601", &caller).await;
    fs_retrieve(&esl, &cp, "602", &second).await;
}

/// FreeSWITCH's local_stream plays its `default` source for a class it does not have (as
/// callpark's README says: silence, or the PBX's default class): the call stays parked with
/// music, and nothing is reported.
#[tokio::test]
async fn freeswitch_a_missing_music_class_leaves_the_call_parked() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    // The include generated for this configuration plays local_stream://callpark-missing.
    let cp = Callpark::start(&Setup {
        park: "pickup_timeout = \"60s\"\nmusic_on_hold_class = \"callpark-missing\"\n".into(),
        fs_include_from_config: true,
        ..Setup::freeswitch()
    })
    .await;
    let mark = esl.mark();
    let caller = fs_park_with_hold_music(&esl, None).await;
    let parked = still_parked(&cp, "601", S(3)).await;
    assert_eq!(parked, caller);
    assert!(
        esl.events()[mark..]
            .iter()
            .any(|e| e.name() == "PLAYBACK_START"
                && e.uuid() == caller
                && e.get("Playback-File-Path").contains("callpark-missing")),
        "the include asked for the configured class"
    );
    assert!(esl.exists(&caller).await);
    assert_eq!(silent_music_warnings(&cp), 0, "{}", cp.log_text());
    fs_retrieve(&esl, &cp, "601", &caller).await;
}

// ----- Asterisk --------------------------------------------------------------------------

fn own_include(park: String) -> Setup {
    Setup {
        park,
        ast_include_from_config: true,
        ..Setup::default()
    }
}

async fn ast_retrieve(ari: &Ari, cp: &Callpark, orbit: &str, parked: &str) {
    dial_orbit(ari, orbit, "\"Dave\" <202>").await;
    cp.wait_log(parked, "retrieved", S(10)).await;
}

#[tokio::test]
async fn asterisk_a_missing_music_class_leaves_the_call_parked_in_silence() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let cp = Callpark::start(&own_include(
        "pickup_timeout = \"60s\"\nmusic_on_hold_class = \"callpark-missing\"\n".into(),
    ))
    .await;
    let (caller, _) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    let parked = still_parked(&cp, "701", S(3)).await;
    assert_eq!(parked, caller["id"].as_str().unwrap());
    // A call parked by dialling the park code gets callpark's own music (after its orbit),
    // which cannot start either.
    ari.originate_local("park", "park-in", ("answer", "phones"), "\"Erin\" <203>")
        .await;
    let dialled = still_parked(&cp, "702", S(3)).await;
    ast_retrieve(&ari, &cp, "701", &parked).await;
    ast_retrieve(&ari, &cp, "702", &dialled).await;
}

#[tokio::test]
async fn asterisk_a_missing_music_file_leaves_the_call_parked_in_silence() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let src =
        std::path::Path::new(&tb("ROOT")).join("usr/share/asterisk/moh/macroform-robot_dity.wav");
    let cp = Callpark::start(&own_include(format!(
        "pickup_timeout = \"60s\"\nmusic_on_hold_file = \"{}\"\n",
        src.display()
    )))
    .await;
    // The kept copy is gone after callpark checked it at start (a disk cleaned up by hand).
    for f in std::fs::read_dir(cp.dir.path().join("data/moh")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let (caller, _) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    let parked = still_parked(&cp, "701", S(3)).await;
    assert_eq!(parked, caller["id"].as_str().unwrap());
    assert_eq!(silent_music_warnings(&cp), 1, "{}", cp.log_text());
    // Tried once, not over and over.
    let plays = cp
        .log_text()
        .lines()
        .filter(|l| l.contains("/play/cp-") || l.contains("PlaybackFinished"))
        .count();
    assert!(
        plays < 10,
        "the missing file is not played again and again ({plays} lines)"
    );
    ast_retrieve(&ari, &cp, "701", &parked).await;
}
