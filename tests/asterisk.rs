//! Every park flow end to end on the real Asterisk 22 testbed (contrib/testbed/asterisk), with
//! `callpark run` as a process. Phones are Local channels into the testbed's `phones` context;
//! a park "from a call" is Asterisk's own blind transfer (AMI BlindTransfer of a bridged pair),
//! so callpark learns the parker from the BLINDTRANSFER variable Asterisk sets.

use callpark_testkit as support;

use std::time::Duration;

use serde_json::Value;
use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn id(v: &Value) -> &str {
    v["id"].as_str().expect("channel id")
}

fn name(v: &Value) -> &str {
    v["name"].as_str().expect("channel name")
}

#[tokio::test]
async fn park_by_blind_transfer_music_lamp_then_retrieve_bridges_and_frees() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let cp = Callpark::start(&Setup::default()).await;

    let (caller, _transferer) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    let call = cp.wait_parked_on("701").await;
    assert_eq!(call.channel.as_str(), id(&caller));
    assert_eq!(
        call.parker.endpoint.as_deref(),
        Some("Local/to-dev-alice@calls"),
        "the parker is the transferer Asterisk named in BLINDTRANSFER"
    );
    assert!(cp.kinds_of(id(&caller)).await.contains(&"parked".into()));

    let moh = format!(
        "Started music on hold, class 'default', on channel '{}'",
        name(&caller)
    );
    wait_for("music on hold on the parked call", S(5), || async {
        asterisk_log().contains(&moh).then_some(())
    })
    .await;
    wait_for("busy lamp of 701 in use", S(5), || async {
        (ari.device_state("Stasis:callpark-701").await == "INUSE").then_some(())
    })
    .await;

    let retriever = dial_orbit(&ari, "701", "\"Dave\" <202>").await;
    let bridge = wait_for(
        "the parked call bridged to the retriever",
        S(10),
        || async { ari.bridge_with(id(&caller), id(&retriever)).await },
    )
    .await;
    assert_eq!(bridge["channels"].as_array().unwrap().len(), 2);
    cp.wait_log(id(&caller), "retrieved", S(5)).await;
    let row = cp.log_row(id(&caller), "retrieved").await;
    assert!(
        row.detail.contains("202"),
        "the log says who retrieved: {}",
        row.detail
    );
    assert!(cp.parked().await.is_empty(), "orbit 701 is free again");
    wait_for("busy lamp of 701 off", S(5), || async {
        (ari.device_state("Stasis:callpark-701").await == "NOT_INUSE").then_some(())
    })
    .await;
    let stopped = format!("Stopped music on hold on {}", name(&caller));
    assert!(
        asterisk_log().contains(&stopped),
        "music stops at the bridge"
    );

    // The next park takes the lowest free orbit: 701 again.
    let (caller2, _) = park_by_transfer(&ari, &ami, "bob", "\"Eve\" <5550000>").await;
    let call2 = cp.wait_parked_on("701").await;
    assert_eq!(call2.channel.as_str(), id(&caller2));
}

fn setup(park: &str) -> Setup {
    Setup {
        park: park.into(),
        ..Setup::default()
    }
}

/// The log kinds of a channel, waiting until the last one is `last`.
async fn kinds_until(cp: &Callpark, channel: &str, last: &str, timeout: Duration) -> Vec<String> {
    cp.wait_log(channel, last, timeout).await;
    cp.kinds_of(channel).await
}

#[tokio::test]
async fn timeout_rings_back_the_parker_showing_the_orbit_and_answer_reconnects() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let cp = Callpark::start(&setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"8s\"\n",
    ))
    .await;
    let (caller, _) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    let call = cp.wait_parked_on("701").await;

    let ringback = callpark::park::ChannelId::new(id(&caller))
        .leg("rb1")
        .to_string();
    let rb = wait_for("the ringback channel", S(15), || async {
        ari.channels()
            .await
            .into_iter()
            .find(|c| c["id"] == ringback.as_str())
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
        rb["caller"]["name"], "Parked 701: Carol",
        "caller id shows the orbit and whose call it is"
    );
    assert!(
        name(&rb).starts_with("Local/to-dev-alice@calls-"),
        "the ringback dials the parker's own endpoint: {}",
        name(&rb)
    );
    wait_for("the parked call bridged to the parker", S(10), || async {
        ari.bridge_with(id(&caller), &ringback).await
    })
    .await;
    let kinds = kinds_until(&cp, id(&caller), "reconnected", S(5)).await;
    assert_eq!(kinds, ["parked", "ringback_started", "reconnected"]);
    assert!(cp.parked().await.is_empty());
}

#[tokio::test]
async fn missed_ringbacks_then_fallback_answers() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let cp = Callpark::start(&setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 2\nringback_ring_time = \"5s\"\non_timeout = \"exten:answer@phones\"\n",
    ))
    .await;
    let (caller, _) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    cp.wait_parked_on("701").await;
    // From now on alice's phone rings and nobody picks up.
    ami.set_phone("alice", "noanswer").await;

    let kinds = kinds_until(&cp, id(&caller), "fallback_answered", S(45)).await;
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
    let fallback = callpark::park::ChannelId::new(id(&caller))
        .leg("fb")
        .to_string();
    let leg = wait_for("the fallback leg", S(5), || async {
        ari.channels()
            .await
            .into_iter()
            .find(|c| c["id"] == fallback.as_str())
    })
    .await;
    assert!(
        name(&leg).starts_with("Local/answer@phones-"),
        "{}",
        name(&leg)
    );
    wait_for(
        "the parked call bridged to the fallback destination",
        S(5),
        || async { ari.bridge_with(id(&caller), id(&leg)).await },
    )
    .await;
    assert!(cp.parked().await.is_empty(), "the orbit is freed");
}

#[tokio::test]
async fn nobody_answers_anywhere_the_call_is_disconnected() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let cp = Callpark::start(&setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"5s\"\non_timeout = \"exten:noanswer@phones\"\n",
    ))
    .await;
    let (caller, _) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    cp.wait_parked_on("701").await;
    ami.set_phone("alice", "noanswer").await;
    let kinds = kinds_until(&cp, id(&caller), "disconnected", S(35)).await;
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
    wait_for("the parked channel hung up", S(5), || async {
        (!ari.channel_exists(id(&caller)).await).then_some(())
    })
    .await;
    assert!(cp.parked().await.is_empty());
    wait_for("busy lamp of 701 off", S(5), || async {
        (ari.device_state("Stasis:callpark-701").await == "NOT_INUSE").then_some(())
    })
    .await;
}

#[tokio::test]
async fn retrieve_while_the_ringback_rings_cancels_the_ringback() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let cp = Callpark::start(&setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"20s\"\n",
    ))
    .await;
    let (caller, _) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    cp.wait_parked_on("701").await;
    ami.set_phone("alice", "noanswer").await;
    let ringback = callpark::park::ChannelId::new(id(&caller))
        .leg("rb1")
        .to_string();
    wait_for("the ringback channel", S(15), || async {
        ari.channel_exists(&ringback).await.then_some(())
    })
    .await;
    let retriever = dial_orbit(&ari, "701", "\"Dave\" <202>").await;
    wait_for("bridged to the retriever", S(10), || async {
        ari.bridge_with(id(&caller), id(&retriever)).await
    })
    .await;
    wait_for("the ringback cancelled", S(5), || async {
        (!ari.channel_exists(&ringback).await).then_some(())
    })
    .await;
    let kinds = kinds_until(&cp, id(&caller), "retrieved", S(5)).await;
    assert_eq!(kinds.first().map(String::as_str), Some("parked"));
    assert!(kinds.contains(&"ringback_started".to_string()));
    assert!(cp.parked().await.is_empty());
}

#[tokio::test]
async fn parked_caller_hangs_up_while_parked_and_while_ringback_rings() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let cp = Callpark::start(&setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"20s\"\n",
    ))
    .await;
    let (first, _) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    cp.wait_parked_on("701").await;
    let (second, _) = park_by_transfer(&ari, &ami, "bob", "\"Eve\" <5550000>").await;
    cp.wait_parked_on("702").await;
    ami.set_phone("bob", "noanswer").await;

    // The first caller gives up while parked.
    ari.delete(&format!("/channels/{}", id(&first))).await;
    let kinds = kinds_until(&cp, id(&first), "abandoned", S(5)).await;
    assert_eq!(kinds, ["parked", "abandoned"]);
    wait_for("busy lamp of 701 off", S(5), || async {
        (ari.device_state("Stasis:callpark-701").await == "NOT_INUSE").then_some(())
    })
    .await;

    // The second gives up while its parker's phone rings.
    let ringback = callpark::park::ChannelId::new(id(&second))
        .leg("rb1")
        .to_string();
    wait_for("the ringback channel", S(15), || async {
        ari.channel_exists(&ringback).await.then_some(())
    })
    .await;
    ari.delete(&format!("/channels/{}", id(&second))).await;
    let kinds = kinds_until(&cp, id(&second), "abandoned", S(5)).await;
    assert_eq!(kinds, ["parked", "ringback_started", "abandoned"]);
    wait_for("the ringback cancelled", S(5), || async {
        (!ari.channel_exists(&ringback).await).then_some(())
    })
    .await;
    assert!(cp.parked().await.is_empty(), "both orbits are free");
}

#[tokio::test]
async fn two_retrieves_of_one_orbit_at_once_exactly_one_wins() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let cp = Callpark::start(&Setup::default()).await;
    let (caller, _) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    cp.wait_parked_on("701").await;
    let (a, b) = tokio::join!(
        ari.originate_local("701", "park-in", ("answer", "phones"), "\"Dave\" <202>"),
        ari.originate_local("701", "park-in", ("answer", "phones"), "\"Fay\" <203>"),
    );
    let _ = (a, b);
    let retrievers: Vec<Value> = wait_for("two retrievers", S(5), || async {
        let v: Vec<Value> = ari
            .channels()
            .await
            .into_iter()
            .filter(|c| {
                let n = c["name"].as_str().unwrap_or("");
                n.starts_with("Local/701@park-in-") && n.ends_with(";2")
            })
            .collect();
        (v.len() == 2).then_some(v)
    })
    .await;
    cp.wait_log(id(&caller), "retrieved", S(10)).await;
    let winners: Vec<&Value> = {
        let mut w = Vec::new();
        for r in &retrievers {
            if ari.bridge_with(id(&caller), id(r)).await.is_some() {
                w.push(r);
            }
        }
        w
    };
    assert_eq!(winners.len(), 1, "exactly one retriever is bridged");
    let loser = retrievers
        .iter()
        .find(|r| r["id"] != winners[0]["id"])
        .unwrap();
    cp.wait_log(id(loser), "orbit_empty", S(5)).await;
    let heard = format!("<{}> Playing 'pbx-invalidpark", name(loser));
    wait_for("the loser hears that the orbit is empty", S(5), || async {
        asterisk_log().contains(&heard).then_some(())
    })
    .await;
    wait_for("the loser hung up", S(10), || async {
        (!ari.channel_exists(id(loser)).await).then_some(())
    })
    .await;
}

#[tokio::test]
async fn empty_orbit_full_range_and_policy_refusal() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    // Two orbits only, and park allowed for the `dev-` phones but not for `to-dev-mallory`.
    let cp = Callpark::start(&Setup {
        policy: "[[policy]]\nname = \"no-mallory\"\nenable_call_park = false\npatterns = [\".*mallory.*\"]\n\n[[policy]]\nname = \"phones\"\nenable_call_park = true\npatterns = [\"Local/to-dev-.*\"]\n".into(),
        ranges: vec![("701", "702")],
        ..Setup::default()
    })
    .await;

    // Nothing is parked on 750: the caller hears so and is hung up.
    let empty = dial_orbit(&ari, "750", "\"Dave\" <202>").await;
    cp.wait_log(id(&empty), "orbit_empty", S(5)).await;
    wait_for("the caller of an empty orbit hung up", S(10), || async {
        (!ari.channel_exists(id(&empty)).await).then_some(())
    })
    .await;

    // Fill both orbits; the third park is refused and the call rings its parker again.
    park_by_transfer(&ari, &ami, "alice", "\"C1\" <5550001>").await;
    cp.wait_parked_on("701").await;
    park_by_transfer(&ari, &ami, "bob", "\"C2\" <5550002>").await;
    cp.wait_parked_on("702").await;
    let (third, _) = park_by_transfer(&ari, &ami, "carol", "\"C3\" <5550003>").await;
    let kinds = kinds_until(&cp, id(&third), "returned", S(10)).await;
    assert_eq!(kinds, ["refused", "returned"]);
    let row = cp.log_row(id(&third), "refused").await;
    assert!(
        row.detail.contains("every orbit is in use"),
        "{}",
        row.detail
    );
    let back = callpark::park::ChannelId::new(id(&third))
        .leg("ret")
        .to_string();
    wait_for("the refused call back with its parker", S(5), || async {
        ari.bridge_with(id(&third), &back).await
    })
    .await;
    assert_eq!(cp.parked().await.len(), 2, "nothing else changed");

    // A parker no policy enables.
    let (refused, _) = park_by_transfer(&ari, &ami, "mallory", "\"C4\" <5550004>").await;
    let kinds = kinds_until(&cp, id(&refused), "returned", S(10)).await;
    assert_eq!(kinds, ["refused", "returned"]);
    let row = cp.log_row(id(&refused), "refused").await;
    assert!(row.detail.contains("not enabled"), "{}", row.detail);
}

#[tokio::test]
async fn music_on_hold_off_class_and_custom_file() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;

    // Each configuration with its own include (`callpark dialplan asterisk`): the include
    // puts a blind-transferred call on hold with the configured class.
    let own = |park: &str| Setup {
        park: park.into(),
        ast_include_from_config: true,
        ..Setup::default()
    };
    // music_on_hold = false: silence.
    let cp = Callpark::start(&own("pickup_timeout = \"60s\"\nmusic_on_hold = false\n")).await;
    let (caller, _) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    cp.wait_parked_on("701").await;
    tokio::time::sleep(S(2)).await;
    assert!(
        !asterisk_log().contains(&format!("on channel '{}'", name(&caller))),
        "no music on hold when music_on_hold = false"
    );
    drop(cp);
    ari.reset().await;

    // A class of the PBX.
    let cp = Callpark::start(&own(
        "pickup_timeout = \"60s\"\nmusic_on_hold_class = \"callpark-custom\"\n",
    ))
    .await;
    let (caller, _) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    cp.wait_parked_on("701").await;
    let want = format!(
        "Started music on hold, class 'callpark-custom', on channel '{}'",
        name(&caller)
    );
    wait_for("the configured class", S(5), || async {
        asterisk_log().contains(&want).then_some(())
    })
    .await;
    drop(cp);
    ari.reset().await;

    // A custom file: kept in the data directory under its checksum and played from there.
    let src =
        std::path::Path::new(&tb("ROOT")).join("usr/share/asterisk/moh/macroform-robot_dity.wav");
    assert!(
        src.exists(),
        "{} is shipped by asterisk-moh-opsound-wav",
        src.display()
    );
    let cp = Callpark::start(&own(&format!(
        "pickup_timeout = \"60s\"\nmusic_on_hold_file = \"{}\"\n",
        src.display()
    )))
    .await;
    let (caller, _) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    cp.wait_parked_on("701").await;
    let kept = std::fs::read_dir(cp.dir.path().join("data/moh"))
        .expect("the kept copy")
        .map(|e| e.unwrap().path())
        .next()
        .expect("one kept file");
    let stem = kept.with_extension("");
    let inside = stem
        .strip_prefix(tb("ROOT"))
        .map(|p| format!("/{}", p.display()))
        .unwrap();
    let heard = format!("<{}> Playing '", name(&caller));
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

#[tokio::test]
async fn sigkill_with_20_parked_calls_loses_nothing_and_timers_keep_their_deadlines() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let mut cp = Callpark::start(&setup(
        "pickup_timeout = \"25s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"10s\"\n",
    ))
    .await;
    let mut callers = Vec::new();
    for i in 1..=20 {
        let (caller, _) = park_by_transfer(
            &ari,
            &ami,
            &format!("p{i}"),
            &format!("\"C{i}\" <55500{i:02}>"),
        )
        .await;
        cp.wait_parked_on(&format!("{}", 700 + i)).await;
        callers.push(caller);
    }
    let mut before = cp.parked().await;
    before.sort_by_key(|c| c.orbit);
    assert_eq!(before.len(), 20);

    cp.kill();
    tokio::time::sleep(S(2)).await;
    for c in &callers {
        assert!(
            ari.channel_exists(id(c)).await,
            "Asterisk keeps the parked channel"
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
    let retriever = dial_orbit(&ari, "705", "\"Dave\" <202>").await;
    wait_for("orbit 705 retrieved after the restart", S(10), || async {
        ari.bridge_with(id(&callers[4]), id(&retriever)).await
    })
    .await;

    // Every other call rings its parker back at the deadline stored before the kill.
    let pending: Vec<_> = before
        .iter()
        .filter(|c| c.channel.as_str() != id(&callers[4]))
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
async fn ari_connection_lost_and_back_without_restart_loses_nothing() {
    outage_loses_nothing(Outage::Cut).await;
}

#[tokio::test]
async fn park_code_dialled_directly_speaks_the_orbit_then_music() {
    let _turn = exclusive().await;
    let (ari, _ami) = testbed().await;
    let cp = Callpark::start(&Setup::default()).await;
    ari.originate_local("park", "park-in", ("answer", "phones"), "\"Zed\" <209>")
        .await;
    let ch = wait_for("the caller in Stasis", S(5), || async {
        ari.channel_named("Local/park@park-in-", ";2").await
    })
    .await;
    let call = cp.wait_parked_on("701").await;
    assert_eq!(call.channel.as_str(), id(&ch));
    assert_eq!(call.parker.endpoint, None, "nobody else to ring back");
    let spoken: Vec<String> = ["7", "0", "1"]
        .iter()
        .map(|d| format!("<{}> Playing 'digits/{d}.", name(&ch)))
        .collect();
    let moh = format!(
        "Started music on hold, class 'default', on channel '{}'",
        name(&ch)
    );
    wait_for("7, 0, 1 spoken, then music", S(10), || async {
        let log = asterisk_log();
        let pos: Vec<Option<usize>> = spoken
            .iter()
            .chain(std::iter::once(&moh))
            .map(|s| log.find(s.as_str()))
            .collect();
        (pos.iter().all(Option::is_some) && pos.windows(2).all(|w| w[0] < w[1])).then_some(())
    })
    .await;
}

#[tokio::test]
async fn attended_transfer_to_the_park_code_tells_the_parker_and_parks_the_caller() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let cp = Callpark::start(&setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"8s\"\n",
    ))
    .await;
    ami.set_phone("alice", "answer").await;
    ari.originate_local(
        "to-dev-alice",
        "calls",
        ("answer", "phones"),
        "\"Carol\" <5551234>",
    )
    .await;
    let (transferer, transferee) = wait_for("alice's call up", S(10), || async {
        let t = ari.channel_named("Local/to-dev-alice@calls-", ";2").await?;
        let c = ari.channel_named("Local/dev-alice@phones-", ";1").await?;
        ari.bridge_with(id(&t), id(&c)).await.map(|_| (t, c))
    })
    .await;
    // Alice presses her attended-transfer key and dials the numeric park code (tried again
    // when Asterisk loses the digits AMI feeds it, as a person would).
    let consult = atxfer(&ari, &ami, &transferer, "6000").await;
    let call = cp.wait_parked_on("701").await;
    assert_eq!(call.channel.as_str(), id(&consult));
    assert_eq!(
        call.parker.endpoint.as_deref(),
        Some("Local/to-dev-alice@calls"),
        "ATTENDEDTRANSFER names the parker, so ringbacks can reach her"
    );
    let spoken = format!("<{}> Playing 'digits/1.", name(&consult));
    wait_for("alice hears the orbit", S(10), || async {
        asterisk_log().contains(&spoken).then_some(())
    })
    .await;

    // Alice hangs up: the transfer completes and her caller waits on 701.
    ari.delete(&format!("/channels/{}", id(&transferer))).await;
    tokio::time::sleep(S(1)).await;
    assert!(
        ari.channel_exists(id(&transferee)).await,
        "the caller is still there"
    );
    assert!(ari.channel_exists(id(&consult)).await, "and still parked");
    let retriever = dial_orbit(&ari, "701", "\"Dave\" <202>").await;
    wait_for("701 retrieved", S(10), || async {
        ari.bridge_with(id(&consult), id(&retriever)).await
    })
    .await;
    assert!(
        ari.channel_exists(id(&transferee)).await,
        "the caller talks to Dave"
    );
}

/// A real SIP phone call from `alice` (PJSIP) to a caller, blind transferred to the park code.
async fn sip_park(ari: &Ari, ami: &Ami) -> Value {
    ari.post(
        "/channels",
        &[
            ("endpoint", "PJSIP/alice"),
            ("extension", "bob"),
            ("context", "calls"),
            ("priority", "1"),
            ("callerId", "\"Carol\" <5551234>"),
            ("timeout", "10"),
        ],
    )
    .await;
    let (alice, caller) = wait_for("alice's SIP call up", S(10), || async {
        let a = ari.channel_named("PJSIP/alice-", "").await?;
        let c = ari.channel_named("Local/answer@phones-", ";1").await?;
        ari.bridge_with(id(&a), id(&c)).await.map(|_| (a, c))
    })
    .await;
    ami.blind_transfer(name(&alice), "park", "park-in").await;
    caller
}

#[tokio::test]
async fn sip_parker_learns_orbit_and_retrieve_by_sip_message_and_rings_back_with_the_orbit() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let phone = sip::SipPhone::start(&tb("SIP_ALICE_CONTACT")).await;
    let cp = Callpark::start(&setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"8s\"\n",
    ))
    .await;

    let caller = sip_park(&ari, &ami).await;
    let call = cp.wait_parked_on("701").await;
    assert_eq!(call.channel.as_str(), id(&caller));
    assert_eq!(call.parker.endpoint.as_deref(), Some("PJSIP/alice"));
    wait_for("a SIP MESSAGE with the orbit", S(5), || async {
        phone
            .messages
            .lock()
            .unwrap()
            .iter()
            .find(|m| m.contains("parked on 701"))
            .cloned()
    })
    .await;
    let retriever = dial_orbit(&ari, "701", "\"Dave\" <202>").await;
    wait_for("701 retrieved", S(10), || async {
        ari.bridge_with(id(&caller), id(&retriever)).await
    })
    .await;
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
    ari.reset().await;

    // The next one times out: alice's phone rings showing the orbit, and she answers.
    let invites_before = phone.invites.lock().unwrap().len();
    let caller = sip_park(&ari, &ami).await;
    cp.wait_parked_on("701").await;
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
        from.contains("Parked 701"),
        "caller id on the phone: {from}"
    );
    cp.wait_log(id(&caller), "reconnected", S(10)).await;
}

/// The testbed's ari.conf lists BLINDTRANSFER and ATTENDEDTRANSFER in `channelvars`, so the
/// adapter reads them from the event; an Asterisk without that line is asked over REST. This
/// checks that path on the same real transfer.
#[tokio::test]
async fn transfer_variables_over_rest_for_an_asterisk_without_channelvars() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let cp = Callpark::start(&Setup::default()).await;
    let (caller, transferer) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    cp.wait_parked_on("701").await;
    let rest = callpark::pbx::asterisk::rest::Ari::new(
        &tb("ARI_URL"),
        &tb("ARI_USER"),
        &tb("ARI_PASSWORD"),
    );
    let var = |v: &'static str| {
        let rest = rest.clone();
        let path = format!("/channels/{}/variable", id(&caller));
        async move {
            rest.call(reqwest::Method::GET, &path, &[("variable", v)])
                .await
        }
    };
    let blind: Value = serde_json::from_str(&var("BLINDTRANSFER").await.unwrap()).unwrap();
    assert_eq!(blind["value"], name(&transferer));
    let attended = var("ATTENDEDTRANSFER").await;
    assert!(
        attended.as_ref().is_err_and(|e| e.is_not_found()),
        "ATTENDEDTRANSFER is not set on a blind transfer: {attended:?}"
    );
    let event_vars = ari.get(&format!("/channels/{}", id(&caller))).await["channelvars"].clone();
    assert_eq!(
        event_vars["BLINDTRANSFER"],
        name(&transferer),
        "channelvars is on here"
    );
}

/// While callpark is not connected (a restart, say), Stasis() fails at once: the generated
/// include sends a park to on_timeout (the operator, `0@from-internal` in the example
/// configuration) instead of hanging it up, and tells a retriever the orbit is empty.
#[tokio::test]
async fn while_callpark_is_down_parks_go_to_the_operator_and_retrieves_hear_empty() {
    let _turn = exclusive().await;
    let (ari, _ami) = testbed().await;
    ari.originate_local("park", "park-in", ("answer", "phones"), "\"Zed\" <209>")
        .await;
    let ch = wait_for("the caller", S(5), || async {
        ari.channel_named("Local/park@park-in-", ";2").await
    })
    .await;
    let heard = format!("<{}> Playing 'pbx-parkingfailed", name(&ch));
    let at_operator = format!("Executing [0@from-internal:1] Goto(\"{}\"", name(&ch));
    wait_for("told, then sent to the operator", S(10), || async {
        let log = asterisk_log();
        (log.contains(&heard) && log.contains(&at_operator)).then_some(())
    })
    .await;
    let now = ari.get(&format!("/channels/{}", id(&ch))).await;
    assert_eq!(
        now["dialplan"]["context"], "phones",
        "the operator answered: {now}"
    );

    let r = dial_orbit(&ari, "701", "\"Dave\" <202>").await;
    let empty = format!("<{}> Playing 'pbx-invalidpark", name(&r));
    wait_for("the retriever hears the orbit is empty", S(10), || async {
        asterisk_log().contains(&empty).then_some(())
    })
    .await;
}

/// OnTimeoutURI as a SIP URI: dialled through the pool's `sip_endpoint`, here the real SIP
/// phone of the testbed, which answers.
#[tokio::test]
async fn on_timeout_sip_uri_is_dialled_through_the_sip_endpoint() {
    let _turn = exclusive().await;
    let (ari, _ami) = testbed().await;
    let phone = sip::SipPhone::start(&tb("SIP_ALICE_CONTACT")).await;
    let uri = format!("sip:operator@{}", tb("SIP_ALICE_CONTACT"));
    let park =
        format!("pickup_timeout = \"10s\"\nringback_ring_time = \"8s\"\non_timeout = \"{uri}\"\n");
    let cp = Callpark::start(&Setup {
        park,
        pbx_extra: "sip_endpoint = \"alice\"",
        ..Setup::default()
    })
    .await;
    // Dialled directly: nobody to ring back, so the timeout goes to on_timeout at once.
    ari.originate_local("park", "park-in", ("answer", "phones"), "\"Zed\" <209>")
        .await;
    let ch = wait_for("the caller in Stasis", S(5), || async {
        ari.channel_named("Local/park@park-in-", ";2").await
    })
    .await;
    cp.wait_parked_on("701").await;
    let invite = wait_for("the INVITE to the SIP URI", S(15), || async {
        phone.invites.lock().unwrap().first().cloned()
    })
    .await;
    assert!(
        invite.starts_with(&format!("INVITE {uri}")),
        "request line: {}",
        invite.lines().next().unwrap_or("")
    );
    let kinds = kinds_until(&cp, id(&ch), "fallback_answered", S(10)).await;
    assert_eq!(kinds, ["parked", "fallback_started", "fallback_answered"]);
    let leg = callpark::park::ChannelId::new(id(&ch))
        .leg("fb")
        .to_string();
    wait_for("bridged to the SIP destination", S(5), || async {
        ari.bridge_with(id(&ch), &leg).await
    })
    .await;
}

/// Issue 9's report: callpark frozen while a call is blind-transferred to the park code, then
/// killed and started again. The call sat in the Stasis application, in no orbit; now the
/// restarted callpark finds it there and parks it as if it had just arrived.
#[tokio::test]
async fn a_park_handed_over_while_callpark_was_frozen_then_killed_is_adopted_on_restart() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let mut cp = Callpark::start(&setup("pickup_timeout = \"60s\"\n")).await;
    cp.freeze();
    let (caller, _) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    wait_for(
        "the call handed to the Stasis application",
        S(10),
        || async {
            let c = ari.get(&format!("/channels/{}", id(&caller))).await;
            (c["dialplan"]["app_name"] == "Stasis").then_some(())
        },
    )
    .await;
    cp.kill();
    tokio::time::sleep(S(2)).await;
    let c = ari.get(&format!("/channels/{}", id(&caller))).await;
    assert_eq!(
        c["dialplan"]["app_data"], "callpark,park,,,moh",
        "still in callpark's hands: {c}"
    );
    assert!(cp.parked().await.is_empty(), "and unknown to the store");

    cp.spawn().await;
    let call = cp.wait_parked_on("701").await;
    assert_eq!(call.channel.as_str(), id(&caller));
    assert_eq!(
        call.parker.endpoint.as_deref(),
        Some("Local/to-dev-alice@calls"),
        "the parker read from BLINDTRANSFER, as for a park seen arriving"
    );
    assert!(
        cp.log_text()
            .contains("found in callpark's hands on connecting; adopting it"),
        "the log says the call was adopted"
    );
    let retriever = dial_orbit(&ari, "701", "\"Dave\" <202>").await;
    wait_for("the adopted call retrieved", S(10), || async {
        ari.bridge_with(id(&caller), id(&retriever)).await
    })
    .await;
    cp.wait_log(id(&caller), "retrieved", S(5)).await;
}

/// A ringback answered while callpark is frozen, then killed: after the restart the answered
/// leg is bridged to the parked call at once, not left ringing out to "missed".
#[tokio::test]
async fn a_ringback_answered_while_callpark_was_down_is_bridged_after_the_restart() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let mut cp = Callpark::start(&setup(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"60s\"\n",
    ))
    .await;
    let (caller, _) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    cp.wait_parked_on("701").await;
    // The parker's phone rings for 3 s before it answers: callpark is frozen by then.
    ami.set_phone("alice", "answerafter3").await;
    // Due pickup_timeout (10 s) after the park, which was seen only just now: 10 s to wait
    // for it left no room for its commit on a loaded machine.
    cp.wait_log(id(&caller), "ringback_started", S(20)).await;
    let leg = callpark::park::ChannelId::new(id(&caller))
        .leg("rb1")
        .to_string();
    wait_for("the ringback ringing", S(5), || async {
        let c = ari
            .channels()
            .await
            .into_iter()
            .find(|c| c["id"] == leg.as_str())?;
        (c["state"] != "Up").then_some(())
    })
    .await;
    cp.freeze();
    wait_for("the ringback answered and in Stasis", S(10), || async {
        let c = ari
            .channels()
            .await
            .into_iter()
            .find(|c| c["id"] == leg.as_str())?;
        (c["state"] == "Up" && c["dialplan"]["app_name"] == "Stasis").then_some(())
    })
    .await;
    cp.kill();
    assert!(
        ari.bridge_with(id(&caller), &leg).await.is_none(),
        "nobody bridged it while callpark was down"
    );
    let started = std::time::Instant::now();
    cp.spawn().await;
    wait_for("the answered ringback bridged", S(10), || async {
        ari.bridge_with(id(&caller), &leg).await
    })
    .await;
    cp.wait_log(id(&caller), "reconnected", S(5)).await;
    assert!(
        started.elapsed() < S(20),
        "bridged at once, not after the ring time ran out"
    );
    assert!(cp.parked().await.is_empty());
}

/// ARI that goes silent without closing (a hung Asterisk, a path that drops everything) is
/// noticed within a bounded time by a websocket ping nobody answers, and reconnected once it
/// answers again, with the calls reconciled.
#[tokio::test]
async fn silent_ari_is_noticed_and_reconnected_with_the_calls_reconciled() {
    outage_loses_nothing(Outage::Silence).await;
}

/// Two calls parked; ARI lost (cut, or silent); one parked caller hangs up meanwhile; ARI back:
/// reconciliation ends the call that vanished and frees its orbit, the other is untouched.
async fn outage_loses_nothing(outage: Outage) {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let cutter = Cutter::start(tb("ARI_URL").trim_start_matches("http://").to_string()).await;
    let cp = Callpark::start(&Setup {
        park: "pickup_timeout = \"60s\"\n".into(),
        ari_url: Some(format!("http://127.0.0.1:{}", cutter.port)),
        ..Setup::default()
    })
    .await;
    let (stays, _) = park_by_transfer(&ari, &ami, "alice", "\"C1\" <5550001>").await;
    cp.wait_parked_on("701").await;
    let (leaves, _) = park_by_transfer(&ari, &ami, "bob", "\"C2\" <5550002>").await;
    cp.wait_parked_on("702").await;

    let connects = cp.log_text().matches("connected to ARI").count();
    let began = std::time::Instant::now();
    match outage {
        Outage::Cut => {
            cutter.cut();
            wait_for("callpark to notice the lost connection", S(10), || async {
                cp.log_text().contains("ARI connection lost").then_some(())
            })
            .await;
        }
        Outage::Silence => {
            cutter.freeze();
            let bound = callpark::pbx::QUIET + callpark::pbx::PROBE_TIMEOUT;
            wait_for("callpark to notice the silence", bound + S(3), || async {
                cp.log_text()
                    .contains("ARI did not answer for")
                    .then_some(())
            })
            .await;
            assert!(
                began.elapsed() >= callpark::pbx::QUIET,
                "not before it was quiet"
            );
        }
    }
    // While callpark cannot hear Asterisk, one parked caller hangs up.
    ari.delete(&format!("/channels/{}", id(&leaves))).await;
    tokio::time::sleep(S(2)).await;
    cutter.restore();
    wait_for("callpark to reconnect", S(20), || async {
        (cp.log_text().matches("connected to ARI").count() > connects).then_some(())
    })
    .await;

    cp.wait_log(id(&leaves), "abandoned", S(5)).await;
    let parked = cp.parked().await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].channel.as_str(), id(&stays));
    wait_for("busy lamp of 702 off", S(5), || async {
        (ari.device_state("Stasis:callpark-702").await == "NOT_INUSE").then_some(())
    })
    .await;
    let retriever = dial_orbit(&ari, "701", "\"Dave\" <202>").await;
    wait_for("701 retrieved after the reconnect", S(10), || async {
        ari.bridge_with(id(&stays), id(&retriever)).await
    })
    .await;
}

/// A retrieved call still bridged when callpark stops leaves callpark's mixing bridge in
/// Asterisk; when both sides hang up while callpark is down, the emptied bridge would stay
/// there for good (and keep the Stasis application registered). callpark removes it when it
/// connects again.
#[tokio::test]
async fn a_bridge_emptied_while_callpark_was_down_is_removed_when_it_is_back() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let mut cp = Callpark::start(&Setup::default()).await;
    let (caller, _) = park_by_transfer(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    cp.wait_parked_on("701").await;
    let retriever = dial_orbit(&ari, "701", "\"Dave\" <202>").await;
    wait_for(
        "the parked call bridged to the retriever",
        S(10),
        || async { ari.bridge_with(id(&caller), id(&retriever)).await },
    )
    .await;
    cp.wait_log(id(&caller), "retrieved", S(5)).await;
    let bridge = format!("cp-{}", id(&caller));
    // Stopped as systemd stops it: the conversation goes on without callpark.
    cp.signal("TERM");
    cp.wait_exit(S(20)).await;
    for ch in [id(&caller), id(&retriever)] {
        ari.delete(&format!("/channels/{ch}")).await;
    }
    let left = wait_for("both sides gone, the bridge left empty", S(10), || async {
        let b = ari
            .bridges()
            .await
            .into_iter()
            .find(|b| b["id"] == bridge.as_str())?;
        b["channels"]
            .as_array()
            .is_some_and(|c| c.is_empty())
            .then_some(b)
    })
    .await;
    assert_eq!(left["id"], bridge.as_str(), "nothing else removes it");
    cp.spawn().await;
    wait_for("the emptied bridge removed", S(10), || async {
        (!ari
            .bridges()
            .await
            .iter()
            .any(|b| b["id"] == bridge.as_str()))
        .then_some(())
    })
    .await;
}
