//! One orbit table across an Asterisk and a FreeSWITCH, both testbeds up, with a SIP trunk
//! between them on loopback: pool pbx-a (Asterisk) owns 701-799, pool pbx-b (FreeSWITCH) owns
//! 601-699, and each PBX's include (the shipped ones, for contrib/callpark.example.toml) routes
//! the other pool's orbits to it. A call parked on one PBX is retrieved by dialling its orbit
//! on the other: Lync's "retrieve from any site".

use callpark_testkit as support;

use std::time::Duration;

use support::fs::*;
use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn both() -> Setup {
    Setup {
        ranges: vec![("701", "799")],
        fs_ranges: vec![("601", "699")],
        ..Setup::default()
    }
}

/// Carol's call to the simulated phone `dev-alice` on Asterisk, up and bridged: the phone's
/// channel (the transferer) and Carol's id.
async fn asterisk_call(ari: &Ari, ami: &Ami) -> (serde_json::Value, String) {
    ami.set_phone("alice", "answer").await;
    ari.originate_local(
        "to-dev-alice",
        "calls",
        ("answer", "phones"),
        "\"Carol\" <5551234>",
    )
    .await;
    let (transferer, caller) = wait_for("the Asterisk call up", S(10), || async {
        let t = ari.channel_named("Local/to-dev-alice@calls-", ";2").await?;
        let c = ari.channel_named("Local/dev-alice@phones-", ";1").await?;
        (t["state"] == "Up" && c["state"] == "Up").then_some((t, c))
    })
    .await;
    let (tid, cid) = (
        transferer["id"].as_str().unwrap().to_string(),
        caller["id"].as_str().unwrap().to_string(),
    );
    wait_for("bridged", S(5), || async {
        ari.bridge_with(&tid, &cid).await
    })
    .await;
    (transferer, cid)
}

#[tokio::test]
async fn parked_on_asterisk_retrieved_from_a_freeswitch_phone() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let esl = fs_testbed().await;
    let cp = Callpark::start(&both()).await;

    // A call on Asterisk, blind-transferred to the park code there: orbit 701 of pbx-a.
    let (transferer, cid) = asterisk_call(&ari, &ami).await;
    ami.blind_transfer(transferer["name"].as_str().unwrap(), "park", "park-in")
        .await;
    let call = cp.wait_parked_on("701").await;
    assert_eq!(call.channel.as_str(), cid);

    // A FreeSWITCH phone dials 701: FreeSWITCH sends it over the trunk to Asterisk.
    let retriever = esl.call("701", "Dave", "202").await;
    let trunk_leg = wait_for(
        "the parked call bridged to the trunk from FreeSWITCH",
        S(10),
        || async {
            // callpark's bridge for a parked call is `cp-<channel>`.
            let ours = format!("cp-{cid}");
            let bridges = ari.bridges().await;
            bridges
                .into_iter()
                .filter(|b| b["id"] == ours.as_str())
                .find_map(|b| {
                    let chs: Vec<String> = b["channels"]
                        .as_array()?
                        .iter()
                        .filter_map(|c| c.as_str().map(String::from))
                        .collect();
                    if !chs.contains(&cid) {
                        return None;
                    }
                    chs.into_iter().find(|c| c != &cid)
                })
        },
    )
    .await;
    let leg = ari.get(&format!("/channels/{trunk_leg}")).await;
    assert!(
        leg["name"]
            .as_str()
            .unwrap()
            .starts_with("PJSIP/freeswitch-"),
        "retrieved over the trunk: {}",
        leg["name"]
    );
    cp.wait_log(&cid, "retrieved", S(5)).await;
    // On FreeSWITCH the phone is bridged to its SIP leg towards Asterisk.
    wait_for(
        "the FreeSWITCH phone bridged to the trunk",
        S(5),
        || async {
            let peer = esl.getvar(&retriever, "bridge_channel").await;
            peer.starts_with("sofia/internal/701@127.0.0.1:5160")
                .then_some(())
        },
    )
    .await;
    assert!(cp.parked().await.is_empty());
}

#[tokio::test]
async fn parked_on_freeswitch_retrieved_from_an_asterisk_phone() {
    let _turn = exclusive().await;
    let (ari, _ami) = testbed().await;
    let esl = fs_testbed().await;
    let cp = Callpark::start(&both()).await;

    // A call on FreeSWITCH, blind-transferred to the park code there: orbit 601 of pbx-b.
    esl.set_phone("alice", "answer").await;
    let caller = esl.call("to-dev-alice", "Carol", "5551234").await;
    wait_for("the FreeSWITCH pair bridged", S(10), || async {
        (esl.getvar(&caller, "bridge_uuid").await.len() == 36).then_some(())
    })
    .await;
    esl.api(&format!(
        "uuid_transfer {caller} park XML {}",
        fb("CONTEXT")
    ))
    .await;
    let call = cp.wait_parked_on("601").await;
    assert_eq!(call.channel.as_str(), caller);

    // An Asterisk phone dials 601: Asterisk sends it over the trunk to FreeSWITCH.
    let mark = esl.mark();
    ari.originate_local("601", "park-in", ("answer", "phones"), "\"Dave\" <202>")
        .await;
    let bridge = esl
        .wait_event(mark, "the parked call bridged to the trunk", S(10), |e| {
            e.name() == "CHANNEL_BRIDGE"
                && (e.uuid() == caller || e.get("Other-Leg-Unique-ID") == caller)
        })
        .await;
    let peer = if bridge.uuid() == caller {
        bridge.get("Other-Leg-Unique-ID").to_string()
    } else {
        bridge.uuid().to_string()
    };
    let name = esl.getvar(&peer, "channel_name").await;
    assert!(
        name.starts_with("sofia/internal/"),
        "retrieved over the trunk: {name}"
    );
    cp.wait_log(&caller, "retrieved", S(5)).await;
    let pj = wait_for("Asterisk's leg to FreeSWITCH up", S(5), || async {
        ari.channel_named("PJSIP/freeswitch-", "").await
    })
    .await;
    assert_eq!(pj["state"], "Up");
    assert!(cp.parked().await.is_empty());
}

/// Each pool's `reach` as the example configuration (and the shipped includes) have them:
/// callpark rings a parker on the other PBX back through them.
const AST_REACH: &str = "reach = { freeswitch = \"{sip_h_X-Callpark-Trunk=freeswitch,absolute_codec_string=PCMU\\\\,PCMA}sofia/internal/{orbit}@127.0.0.1:5160\" }\n";
const FS_REACH: &str = "reach = { asterisk = \"PJSIP/{orbit}@freeswitch\" }\n";

fn both_with_trunks() -> Setup {
    Setup {
        pbx_extra: AST_REACH,
        fs_extra: FS_REACH,
        ..both()
    }
}

#[tokio::test]
async fn transferred_on_freeswitch_to_an_asterisk_orbit_parks_there_and_rings_back_over_the_trunk()
{
    let _turn = exclusive().await;
    let (ari, _ami) = testbed().await;
    let esl = fs_testbed().await;
    let cp = Callpark::start(&both_with_trunks()).await;
    let mark = esl.mark();

    // A call on FreeSWITCH, blind-transferred by alice's phone to 701, Asterisk's orbit:
    // FreeSWITCH sends it over the trunk marked X-Callpark-Park, and Asterisk parks it there.
    let caller = support::fs::park_by_transfer_to(&esl, "alice", "Carol", "5551234", "701").await;
    let call = cp.wait_parked_on("701").await;
    let parked = call.channel.as_str().to_string();
    let leg = ari.get(&format!("/channels/{parked}")).await;
    assert!(
        leg["name"]
            .as_str()
            .unwrap()
            .starts_with("PJSIP/freeswitch-"),
        "the trunk's leg is parked: {}",
        leg["name"]
    );
    assert_eq!(
        call.parker.endpoint.as_deref(),
        Some("PJSIP/dev-alice@freeswitch"),
        "the transferer, rung back over the trunk"
    );
    assert_eq!(call.parker.display, "dev-alice@pbx-b");
    cp.wait_log(&parked, "parked", S(5)).await;
    // Asterisk's lamp of 701.
    wait_for("the busy lamp of 701 in use", S(5), || async {
        (ari.device_state("Stasis:callpark-701").await == "INUSE").then_some(())
    })
    .await;
    // And on FreeSWITCH, whose phones may have a key for 701 too: callpark shows every pool's
    // lamps on every PBX it drives.
    let fs_lamp = |mark: usize, state: &'static str| {
        let esl = &esl;
        async move {
            wait_for(
                &format!("FreeSWITCH's lamp of 701 {state}"),
                S(5),
                || async {
                    esl.events_since(mark)
                        .iter()
                        .rfind(|e| e.name() == "PRESENCE_IN" && e.get("from") == "701@127.0.0.1")
                        .is_some_and(|e| e.get("answer-state") == state)
                        .then_some(())
                },
            )
            .await
        }
    };
    fs_lamp(mark, "confirmed").await;
    // The caller waits on FreeSWITCH, bridged to its leg towards Asterisk.
    wait_for("the caller bridged to the trunk", S(5), || async {
        let peer = esl.getvar(&caller, "bridge_channel").await;
        peer.starts_with("sofia/internal/701@127.0.0.1:5160")
            .then_some(())
    })
    .await;

    // Nobody picks it up in 10 s: Asterisk rings alice's phone on FreeSWITCH back, over the
    // trunk, and her answer takes the call back.
    let ringback = support::testbed::leg_id(&parked, "rb1");
    cp.wait_log(&parked, "ringback_started", S(15)).await;
    let rb = wait_for("the ringback leg", S(5), || async {
        ari.channel(&ringback).await
    })
    .await;
    assert!(
        rb["name"]
            .as_str()
            .unwrap()
            .starts_with("PJSIP/freeswitch-"),
        "the ringback goes over the trunk: {}",
        rb["name"]
    );
    wait_for("the parked call bridged to the ringback", S(10), || async {
        ari.bridge_with(&parked, &ringback).await
    })
    .await;
    cp.wait_log(&parked, "reconnected", S(5)).await;
    assert!(cp.parked().await.is_empty());
    fs_lamp(mark, "terminated").await;
}

#[tokio::test]
async fn transferred_on_asterisk_to_a_freeswitch_orbit_parks_there() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let esl = fs_testbed().await;
    let cp = Callpark::start(&both_with_trunks()).await;

    // A call on Asterisk, blind-transferred to 601, FreeSWITCH's orbit: Asterisk's pre-dial
    // handler marks the trunk leg X-Callpark-Park, and FreeSWITCH parks it there.
    let (transferer, cid) = asterisk_call(&ari, &ami).await;
    let mark = esl.mark();
    ami.blind_transfer(transferer["name"].as_str().unwrap(), "601", "park-in")
        .await;
    let call = cp.wait_parked_on("601").await;
    let parked = call.channel.as_str().to_string();
    let name = esl.getvar(&parked, "channel_name").await;
    assert!(
        name.starts_with("sofia/internal/"),
        "the trunk's leg is parked: {name}"
    );
    assert_eq!(
        esl.getvar(&parked, "sip_h_X-Callpark-Park").await,
        format!("pbx-a/{}", transferer["name"].as_str().unwrap()),
        "the header names the pool and the transferer"
    );
    assert_eq!(call.parker.display, "to-dev-alice@pbx-a");
    assert_eq!(
        call.parker.endpoint.as_deref(),
        Some(
            "{sip_h_X-Callpark-Trunk=freeswitch,absolute_codec_string=PCMU\\,PCMA}sofia/internal/to-dev-alice@127.0.0.1:5160"
        ),
        "the transferer, rung back through Asterisk's reach"
    );
    cp.wait_log(&parked, "parked", S(5)).await;
    // FreeSWITCH's lamp of 601.
    wait_for("the busy lamp of 601 in use", S(5), || async {
        esl.events_since(mark)
            .iter()
            .rfind(|e| {
                e.name() == "PRESENCE_IN"
                    && e.get("unique-id") == "callpark-601"
                    && e.get("from") == "601@127.0.0.1"
            })
            .is_some_and(|e| e.get("answer-state") == "confirmed")
            .then_some(())
    })
    .await;
    // And on Asterisk, behind the include's hint for FreeSWITCH's orbits.
    wait_for("Asterisk's lamp of 601 in use", S(5), || async {
        (ari.device_state("Stasis:callpark-601").await == "INUSE").then_some(())
    })
    .await;
    // The caller waits on Asterisk, in Dial towards FreeSWITCH.
    let pj = wait_for("Asterisk's leg to FreeSWITCH up", S(5), || async {
        ari.channel_named("PJSIP/freeswitch-", "").await
    })
    .await;
    assert_eq!(pj["state"], "Up");
    assert!(ari.channel_exists(&cid).await, "the caller is still there");
}

/// A SIP phone on FreeSWITCH (PJSIP's pjsua2) consults an Asterisk orbit over the trunk and
/// completes an attended transfer (REFER with Replaces): the consultation is held on that
/// orbit as a dialled free orbit, and the caller takes its place on FreeSWITCH, bridged to the
/// trunk leg held there. It waits on the orbit, and dialling the orbit retrieves it.
#[tokio::test]
async fn attended_transfer_on_freeswitch_to_an_asterisk_orbit_parks_the_caller_there() {
    use support::gesture::*;
    use support::testbed::{FreeswitchTestbed, Testbed};
    let fs = FreeswitchTestbed::take().await;
    let (ari, _ami) = testbed().await;
    let cp = Callpark::start(&both_with_trunks()).await;
    let alice = alice(&fs).await;
    alice.auto("answer").await;
    let c1 = alice_talks_to_carol(&fs, &alice).await;
    alice.hold(c1).await;
    let mark = alice.mark();
    let c2 = alice.call(&fs.sip_uri("705")).await;
    alice.wait_state_since(mark, c2, "CONFIRMED", S(10)).await;
    let held = cp.wait_parked_on("705").await;
    let trunk_leg = held.channel.as_str().to_string();
    let name = ari.get(&format!("/channels/{trunk_leg}")).await["name"].clone();
    // (Asterisk names the trunk's call by its From user when it matches an endpoint of its
    // own, as `alice` does on the testbed.)
    assert!(
        name.as_str().unwrap().starts_with("PJSIP/"),
        "the consultation's trunk leg is held on 705: {name}"
    );
    alice.xfer_replaces(c1, c2).await;
    for c in [c1, c2] {
        alice.wait_state_since(mark, c, "DISCONNECTED", S(10)).await;
    }
    let carol = wait_for("Carol's channel on FreeSWITCH", S(5), || async {
        fs.channels()
            .await
            .into_iter()
            .find(|(_, name)| name == "loopback/to-user-alice-b")
            .map(|(id, _)| id)
    })
    .await;
    wait_for(
        "Carol bridged to the trunk leg held on 705",
        S(10),
        || async {
            let peer = fs.esl.getvar(&carol, "bridge_channel").await;
            peer.starts_with("sofia/internal/705@127.0.0.1:5160")
                .then_some(())
        },
    )
    .await;
    let parked = cp.parked().await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].channel.as_str(), trunk_leg);
    assert_eq!(
        parked[0].orbit.map(|o| o.to_string()).as_deref(),
        Some("705")
    );
    // Dialled from FreeSWITCH, the orbit gives Carol back.
    let r = fs.dial_orbit("705", "Dave", "202").await;
    cp.wait_log(&trunk_leg, "retrieved", S(10)).await;
    assert!(fs.exists(&carol).await, "Carol is there");
    assert!(fs.exists(&r.id).await, "the retriever is there");
    alice.quit().await;
}
