//! Parking lots and directed park end to end, on the real Asterisk and the real FreeSWITCH:
//! park by a lot's code, a user's default lot from policy, a policy forbidding a lot, each
//! lot's own timeout, caller id prefix and music, a full lot, and calls transferred to an
//! orbit (free, in use, two at once) next to two parks at the same moment. Each test runs
//! with an include generated from its own configuration.

use callpark_testkit as support;

use std::time::Duration;

use callpark::park::ChannelId;
use serde_json::Value;
use support::fs::{self, Esl, fs_testbed};
use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn id(v: &Value) -> &str {
    v["id"].as_str().expect("channel id")
}

fn leg(parked: &str, tag: &str) -> String {
    ChannelId::new(parked).leg(tag).to_string()
}

/// `[[lot]]` sales (its own code, a 10 s pickup timeout, its caller id prefix, no music, the
/// next free orbit for a transfer to a busy one) on `sales`, the general lot on `general`;
/// policies: bob parks into sales by default, mallory only into the general lot.
fn lots_setup(pool: &str, general: (&'static str, &'static str), sales: (&str, &str)) -> Setup {
    let extra = format!(
        r#"
[[lot]]
name = "sales"
park_codes = ["park-sales"]
pickup_timeout = "10s"
ringback_ring_time = "5s"
caller_id_prefix = "Sales"
music_on_hold = false
on_busy_orbit = "next_free"

[[orbit_range]]
name = "sales"
first = "{}"
last = "{}"
pool = "{pool}"
lot = "sales"
"#,
        sales.0, sales.1
    );
    let policy = r#"[[policy]]
name = "sales-staff"
enable_call_park = true
patterns = [".*bob.*"]
lots = ["sales"]
default_lot = "sales"

[[policy]]
name = "no-sales"
enable_call_park = true
patterns = [".*mallory.*"]
lots = ["general"]

[[policy]]
name = "everyone"
enable_call_park = true
patterns = [".*"]
"#;
    let park = "pickup_timeout = \"60s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"5s\"\n";
    let base = if pool == "pbx-a" {
        Setup {
            ranges: vec![general],
            ast_include_from_config: true,
            ..Setup::default()
        }
    } else {
        Setup {
            fs_ranges: vec![general],
            fs_include_from_config: true,
            ..Setup::freeswitch()
        }
    };
    Setup {
        park: park.into(),
        policy: policy.into(),
        extra,
        ..base
    }
}

/// What both PBXes must show for lots, given how to park and what the PBX says of channels.
struct Lots<'a> {
    cp: &'a Callpark,
    general: &'a str,
    sales: [&'a str; 2],
}

impl Lots<'_> {
    async fn lot_of(&self, channel: &str) -> Option<String> {
        self.cp
            .log_rows()
            .await
            .into_iter()
            .find(|r| r.channel == channel && r.kind == "parked")
            .map(|r| r.lot.unwrap_or_default())
    }

    async fn refused(&self, channel: &str, why: &str) {
        self.cp.wait_log(channel, "returned", S(10)).await;
        let row = self
            .cp
            .log_rows()
            .await
            .into_iter()
            .find(|r| r.kind == "refused" && r.channel == channel)
            .expect("a refusal in the log");
        assert!(row.detail.contains(why), "{}", row.detail);
    }

    /// Parked by code on the sales lot's first orbit, by default lot on its second.
    async fn check_parked(&self, by_code: &str, by_default: &str) {
        let a = self.cp.wait_parked_on(self.sales[0]).await;
        assert_eq!(a.channel.as_str(), by_code);
        assert_eq!(a.lot.as_deref(), Some("sales"));
        assert_eq!(self.lot_of(by_code).await.as_deref(), Some("sales"));
        let b = self.cp.wait_parked_on(self.sales[1]).await;
        assert_eq!(
            b.channel.as_str(),
            by_default,
            "bob's plain park went to his lot"
        );
        // The sales lot's 10 s, not [park]'s 60 s.
        assert!(a.deadline - a.parked_at == 10_000, "{a:?}");
    }
}

#[tokio::test]
async fn asterisk_lots_codes_policies_own_settings_and_full_lot() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let cp = Callpark::start(&lots_setup("pbx-a", ("701", "704"), ("710", "711"))).await;
    let lots = Lots {
        cp: &cp,
        general: "701",
        sales: ["710", "711"],
    };
    let (c1, _) = park_by_transfer_to(&ari, &ami, "alice", "\"C1\" <5550001>", "park-sales").await;
    let (c2, _) = park_by_transfer(&ari, &ami, "bob", "\"C2\" <5550002>").await;
    lots.check_parked(id(&c1), id(&c2)).await;
    // mallory may not use the sales lot.
    let (c3, _) =
        park_by_transfer_to(&ari, &ami, "mallory", "\"C3\" <5550003>", "park-sales").await;
    lots.refused(id(&c3), "does not allow this lot").await;
    // The sales lot is full: back to the parker, never hung up.
    let (c4, _) = park_by_transfer_to(&ari, &ami, "carol", "\"C4\" <5550004>", "park-sales").await;
    lots.refused(id(&c4), "every orbit is in use").await;
    wait_for("the refused call back with its parker", S(5), || async {
        ari.bridge_with(id(&c4), &leg(id(&c4), "ret")).await
    })
    .await;
    // The general lot still has room, with music; the sales lot's calls have none.
    let (c5, _) = park_by_transfer(&ari, &ami, "dave", "\"C5\" <5550005>").await;
    assert_eq!(
        cp.wait_parked_on(lots.general).await.channel.as_str(),
        id(&c5)
    );
    let log = asterisk_log();
    let moh = |c: &Value| {
        format!(
            "Started music on hold, class 'default', on channel '{}'",
            c["name"].as_str().unwrap()
        )
    };
    wait_for("music for the general lot's call", S(5), || async {
        asterisk_log().contains(&moh(&c5)).then_some(())
    })
    .await;
    assert!(
        !log.contains(&moh(&c1)),
        "the sales lot has music_on_hold = false"
    );
    // The sales call rings back after its lot's 10 s, showing the lot's prefix.
    let number = cp.wait_parked_on("710").await.caller.number;
    cp.wait_log(id(&c1), "ringback_started", S(15)).await;
    let rb = ari.get(&format!("/channels/{}", leg(id(&c1), "rb1"))).await;
    assert_eq!(rb["caller"]["name"], "Sales 710: C1", "{rb}");
    assert_eq!(
        rb["caller"]["number"],
        number.as_str(),
        "the caller's own number: {rb}"
    );
    assert!(
        cp.kinds_of(id(&c5)).await == ["parked"],
        "the general call waits for [park]'s 60 s"
    );
    // The CLI names the lots.
    for (cmd, want) in [
        // The sales calls rang back (their parkers answer): the general one is left.
        ("parked", "701 pbx-a general".to_string()),
        ("orbits", "sales".to_string()),
        ("log", "sales".to_string()),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_callpark"))
            .arg("--config")
            .arg(&cp.config)
            .arg(cmd)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let squeezed = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(squeezed.contains(&want), "callpark {cmd}: {text}");
    }
}

#[tokio::test]
async fn asterisk_directed_park_free_busy_and_two_at_once() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let cp = Callpark::start(&lots_setup("pbx-a", ("701", "702"), ("710", "712"))).await;
    // Transferred to a free orbit: parked on it.
    let (c1, _) = park_by_transfer_to(&ari, &ami, "alice", "\"C1\" <5550001>", "701").await;
    assert_eq!(cp.wait_parked_on("701").await.channel.as_str(), id(&c1));
    // Transferred to 701 in use (general lot: return): back to its transferor, never
    // bridged to the call on 701.
    let (c2, _) = park_by_transfer_to(&ari, &ami, "grace", "\"C2\" <5550002>", "701").await;
    let lots = Lots {
        cp: &cp,
        general: "701",
        sales: ["710", "711"],
    };
    lots.refused(id(&c2), "the requested orbit is in use").await;
    wait_for("the call back with its transferor", S(5), || async {
        ari.bridge_with(id(&c2), &leg(id(&c2), "ret")).await
    })
    .await;
    // The transferor hears that parking failed.
    let back = ari.get(&format!("/channels/{}", leg(id(&c2), "ret"))).await;
    let told = format!(
        "<{}> Playing 'pbx-parkingfailed",
        back["name"].as_str().unwrap()
    );
    wait_for("the transferor told", S(5), || async {
        asterisk_log().contains(&told).then_some(())
    })
    .await;
    assert!(ari.bridge_with(id(&c1), id(&c2)).await.is_none());
    assert_eq!(cp.wait_parked_on("701").await.channel.as_str(), id(&c1));
    // Two calls transferred to 711 at the same moment: one gets it, the other the sales
    // lot's next free orbit (710).
    let ((c3, _), (c4, _)) = tokio::join!(
        park_by_transfer_to(&ari, &ami, "carol", "\"C3\" <5550003>", "711"),
        park_by_transfer_to(&ari, &ami, "dave", "\"C4\" <5550004>", "711"),
    );
    let on = |o: &'static str| {
        let cp = &cp;
        async move { cp.wait_parked_on(o).await.channel.to_string() }
    };
    let mut got = vec![on("710").await, on("711").await];
    got.sort();
    let mut want = vec![id(&c3).to_string(), id(&c4).to_string()];
    want.sort();
    assert_eq!(got, want, "one on 711, the other moved on to 710");
    // Two parks at the same moment: two orbits, neither bridged to the other.
    let ((c5, _), (c6, _)) = tokio::join!(
        park_by_transfer(&ari, &ami, "erin", "\"C5\" <5550005>"),
        park_by_transfer(&ari, &ami, "frank", "\"C6\" <5550006>"),
    );
    let on702 = cp.wait_parked_on("702").await;
    let on712 = cp.wait_parked_on("712").await;
    let mut got = vec![on702.channel.to_string(), on712.channel.to_string()];
    got.sort();
    let mut want = vec![id(&c5).to_string(), id(&c6).to_string()];
    want.sort();
    assert_eq!(got, want);
    assert!(ari.bridge_with(id(&c5), id(&c6)).await.is_none());
    // Dialling an orbit, not transferring to it, is still a retrieve.
    let retriever = dial_orbit(&ari, "701", "\"Gina\" <209>").await;
    wait_for("701 retrieved", S(10), || async {
        ari.bridge_with(id(&c1), id(&retriever)).await
    })
    .await;
    cp.wait_log(id(&c1), "retrieved", S(5)).await;
}

async fn fs_gone(esl: &Esl, uuid: &str) -> bool {
    !esl.api(&format!("uuid_exists {uuid}"))
        .await
        .contains("true")
}

async fn fs_bridged(esl: &Esl, a: &str, b: &str) -> bool {
    esl.getvar(a, "bridge_uuid").await == b || esl.getvar(b, "bridge_uuid").await == a
}

#[tokio::test]
async fn freeswitch_lots_codes_policies_own_settings_and_full_lot() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let cp = Callpark::start(&lots_setup("pbx-b", ("601", "604"), ("610", "611"))).await;
    let lots = Lots {
        cp: &cp,
        general: "601",
        sales: ["610", "611"],
    };
    let c1 = fs::park_by_transfer_to(&esl, "alice", "C1", "5550001", "park-sales").await;
    let c2 = fs::park_by_transfer(&esl, "bob", "C2", "5550002").await;
    lots.check_parked(&c1, &c2).await;
    let c3 = fs::park_by_transfer_to(&esl, "mallory", "C3", "5550003", "park-sales").await;
    lots.refused(&c3, "does not allow this lot").await;
    let c4 = fs::park_by_transfer_to(&esl, "carol", "C4", "5550004", "park-sales").await;
    lots.refused(&c4, "every orbit is in use").await;
    let back = leg(&c4, "ret");
    wait_for("the refused call back with its parker", S(5), || async {
        fs_bridged(&esl, &c4, &back).await.then_some(())
    })
    .await;
    let c5 = fs::park_by_transfer(&esl, "dave", "C5", "5550005").await;
    assert_eq!(cp.wait_parked_on(lots.general).await.channel.as_str(), c5);
    // The general lot's call hears the hold music; the sales lot's (no music) is parked.
    wait_for("music for the general lot's call", S(5), || async {
        let app = esl.getvar(&c5, "current_application").await;
        (app == "playback" || app == "endless_playback").then_some(())
    })
    .await;
    assert_eq!(esl.getvar(&c1, "current_application").await, "park");
    let number = cp.wait_parked_on("610").await.caller.number;
    cp.wait_log(&c1, "ringback_started", S(15)).await;
    let rb = leg(&c1, "rb1");
    let name = esl.getvar(&rb, "origination_caller_id_name").await;
    assert_eq!(name, "Sales 610: C1");
    assert_eq!(
        esl.getvar(&rb, "origination_caller_id_number").await,
        number
    );
    assert_eq!(cp.kinds_of(&c5).await, ["parked"]);
    assert!(!fs_gone(&esl, &c5).await);
}

#[tokio::test]
async fn freeswitch_directed_park_free_busy_and_two_at_once() {
    let _turn = exclusive().await;
    let esl = fs_testbed().await;
    let cp = Callpark::start(&lots_setup("pbx-b", ("601", "602"), ("610", "612"))).await;
    let lots = Lots {
        cp: &cp,
        general: "601",
        sales: ["610", "611"],
    };
    let c1 = fs::park_by_transfer_to(&esl, "alice", "C1", "5550001", "601").await;
    assert_eq!(cp.wait_parked_on("601").await.channel.as_str(), c1);
    let mark = esl.mark();
    let c2 = fs::park_by_transfer_to(&esl, "grace", "C2", "5550002", "601").await;
    lots.refused(&c2, "the requested orbit is in use").await;
    let back = leg(&c2, "ret");
    wait_for("the call back with its transferor", S(5), || async {
        fs_bridged(&esl, &c2, &back).await.then_some(())
    })
    .await;
    // The transferor hears that parking failed.
    esl.wait_event(mark, "the transferor told", S(5), |e| {
        e.name() == "PLAYBACK_START"
            && e.uuid() == back
            && e.get("Playback-File-Path")
                .contains("call_cannot_be_completed")
    })
    .await;
    assert!(!fs_bridged(&esl, &c1, &c2).await);
    assert_eq!(cp.wait_parked_on("601").await.channel.as_str(), c1);
    let (c3, c4) = tokio::join!(
        fs::park_by_transfer_to(&esl, "carol", "C3", "5550003", "611"),
        fs::park_by_transfer_to(&esl, "dave", "C4", "5550004", "611"),
    );
    let mut got = vec![
        cp.wait_parked_on("610").await.channel.to_string(),
        cp.wait_parked_on("611").await.channel.to_string(),
    ];
    got.sort();
    let mut want = vec![c3.clone(), c4.clone()];
    want.sort();
    assert_eq!(got, want, "one on 611, the other moved on to 610");
    let (c5, c6) = tokio::join!(
        fs::park_by_transfer(&esl, "erin", "C5", "5550005"),
        fs::park_by_transfer(&esl, "frank", "C6", "5550006"),
    );
    let mut got = vec![
        cp.wait_parked_on("602").await.channel.to_string(),
        cp.wait_parked_on("612").await.channel.to_string(),
    ];
    got.sort();
    let mut want = vec![c5.clone(), c6.clone()];
    want.sort();
    assert_eq!(got, want);
    assert!(!fs_bridged(&esl, &c5, &c6).await);
    let retriever = fs::dial_orbit(&esl, "601", "Gina", "209").await;
    wait_for("601 retrieved", S(10), || async {
        fs_bridged(&esl, &c1, &retriever).await.then_some(())
    })
    .await;
    cp.wait_log(&c1, "retrieved", S(5)).await;
}

/// A call between `to-dev-<phone>` and a caller, up and bridged: (transferer, caller).
async fn call_up(ari: &Ari, ami: &Ami, phone: &str, caller_id: &str) -> (Value, Value) {
    ami.set_phone(phone, "answer").await;
    let to = format!("to-dev-{phone}");
    ari.originate_local(&to, "calls", ("answer", "phones"), caller_id)
        .await;
    let (tp, cp) = (
        format!("Local/{to}@calls-"),
        format!("Local/dev-{phone}@phones-"),
    );
    wait_for("the call up and bridged", S(10), || async {
        let t = ari.channel_named(&tp, ";2").await?;
        let c = ari.channel_named(&cp, ";1").await?;
        ari.bridge_with(id(&t), id(&c)).await.map(|_| (t, c))
    })
    .await
}

#[tokio::test]
async fn asterisk_attended_transfer_to_an_orbit_parks_there_or_goes_back_when_busy() {
    let _turn = exclusive().await;
    let (ari, ami) = testbed().await;
    let cp = Callpark::start(&lots_setup("pbx-a", ("701", "702"), ("710", "711"))).await;
    // Alice consults 702 (free): callpark takes it there and tells her the orbit.
    let (alice, carol) = call_up(&ari, &ami, "alice", "\"Carol\" <5551234>").await;
    let consult = atxfer(&ari, &ami, &alice, "702").await;
    let call = cp.wait_parked_on("702").await;
    assert_eq!(call.channel.as_str(), id(&consult));
    let spoken = format!("<{}> Playing 'digits/7.", consult["name"].as_str().unwrap());
    wait_for("alice hears the orbit", S(10), || async {
        asterisk_log().contains(&spoken).then_some(())
    })
    .await;
    // She hangs up: the transfer completes, Carol waits on 702.
    ari.delete(&format!("/channels/{}", id(&alice))).await;
    tokio::time::sleep(S(1)).await;
    assert!(ari.channel_exists(id(&carol)).await);
    assert!(ari.channel_exists(id(&consult)).await, "still parked");
    // Grace consults 702 too (in use): she is told, and keeps her own caller on hold.
    let (grace, dave) = call_up(&ari, &ami, "grace", "\"Dave\" <5552222>").await;
    let mark = asterisk_log().len();
    let consult2 = atxfer(&ari, &ami, &grace, "702").await;
    cp.wait_log(id(&consult2), "refused", S(10)).await;
    let row = cp.log_row(id(&consult2), "refused").await;
    assert!(row.detail.contains("in use"), "{}", row.detail);
    let told = format!(
        "<{}> Playing 'pbx-parkingfailed",
        consult2["name"].as_str().unwrap()
    );
    wait_for("grace told parking failed", S(10), || async {
        asterisk_log()[mark..].contains(&told).then_some(())
    })
    .await;
    assert!(ari.bridge_with(id(&consult), id(&consult2)).await.is_none());
    assert!(
        ari.channel_exists(id(&dave)).await,
        "bob's caller is not dropped"
    );
    assert_eq!(
        cp.wait_parked_on("702").await.channel.as_str(),
        id(&consult)
    );
    // Dialling 702 retrieves Carol's call. (The parked consultation channel has the name a
    // dialled 702 gets, Local/702@park-in-…;2: the retriever is the new one.)
    let before: Vec<String> = ari
        .channels()
        .await
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    ari.originate_local("702", "park-in", ("answer", "phones"), "\"Gina\" <209>")
        .await;
    let retriever = wait_for("the retriever's channel", S(5), || async {
        ari.channels().await.into_iter().find(|c| {
            let n = c["name"].as_str().unwrap_or("");
            n.starts_with("Local/702@park-in-")
                && n.ends_with(";2")
                && !before.iter().any(|b| b == n)
        })
    })
    .await;
    wait_for("702 retrieved", S(10), || async {
        ari.bridge_with(id(&consult), id(&retriever)).await
    })
    .await;
    assert!(ari.channel_exists(id(&carol)).await, "carol talks to gina");
}
