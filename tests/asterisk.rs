//! What only Asterisk has, end to end on the real Asterisk 22 testbed (contrib/testbed/asterisk),
//! with `callpark run` as a process: an attended transfer fed to Asterisk over AMI, the transfer
//! variables read over REST, and callpark's own bridges left behind while it was down. The flows
//! both PBXes share are written once in tests/flows.rs and tests/recovery.rs.

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

fn setup(park: &str) -> Setup {
    Setup {
        park: park.into(),
        ..Setup::default()
    }
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
