//! Parks by real SIP phones end to end on both real testbeds, with `callpark run` as a process:
//! a SIP phone's call transferred to the park code, the phone told the orbit and who retrieved
//! it by SIP MESSAGE and rung back showing the orbit, and on_timeout as a SIP URI. Each
//! scenario is written once against [`Testbed`] and run on each PBX. The SIP phone is the tests'
//! own (`support::sip`).

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

/// A real SIP phone call: on Asterisk from `alice` (PJSIP) to a caller, which AMI
/// blind-transfers to the park code; on FreeSWITCH from a caller to alice, the tests' own SIP
/// phone (registered), which answers and blind-transfers it with a SIP REFER. Returns the
/// caller.
async fn sip_park(pbx: &impl Testbed, phone: &sip::SipPhone, name: &str) -> Chan {
    match pbx.side() {
        Side::Asterisk(ari, ami) => {
            let cid = format!("\"{name}\" <5551234>");
            ari.post(
                "/channels",
                &[
                    ("endpoint", "PJSIP/alice"),
                    ("extension", "bob"),
                    ("context", "calls"),
                    ("priority", "1"),
                    ("callerId", cid.as_str()),
                    ("timeout", "10"),
                ],
            )
            .await;
            let (alice, caller) = wait_for("alice's SIP call up", S(10), || async {
                let a = ari.channel_named("PJSIP/alice-", "").await?;
                let c = ari.channel_named("Local/answer@phones-", ";1").await?;
                let (ai, ci) = (a["id"].as_str()?, c["id"].as_str()?);
                ari.bridge_with(ai, ci).await.map(|_| (a, c))
            })
            .await;
            ami.blind_transfer(alice["name"].as_str().unwrap(), "park", "park-in")
                .await;
            Chan {
                id: caller["id"].as_str().unwrap().to_string(),
                name: caller["name"].as_str().unwrap().to_string(),
            }
        }
        Side::Freeswitch(esl) => {
            let caller = esl.call("to-user-alice", name, "5551234").await;
            wait_for("alice's phone answered", S(10), || async {
                let peer = esl.getvar(&caller, "bridge_channel").await;
                peer.starts_with("sofia/").then_some(())
            })
            .await;
            let sip = support::fs::fb("SIP_BIND");
            let r = phone
                .refer_last_call(&sip, &format!("sip:park@{sip}"))
                .await;
            assert!(r.starts_with("SIP/2.0 202"), "REFER: {r}");
            Chan {
                name: caller.clone(),
                id: caller,
            }
        }
    }
}

/// The SIP phone that parked learns the orbit and who retrieved it by SIP MESSAGE (and on
/// FreeSWITCH sees the orbit's busy lamp by NOTIFY); a timeout rings it back showing the orbit.
async fn sip_phone_parks_learns_orbit_and_retrieve_and_is_rung_back(pbx: &impl Testbed) {
    let phone = sip::SipPhone::start(&pbx.sip_alice_contact()).await;
    let o1 = pbx.orbit(1);
    if let Side::Freeswitch(_) = pbx.side() {
        let r = phone
            .register(&support::fs::fb("SIP_BIND"), "alice", "127.0.0.1")
            .await;
        assert!(r.starts_with("SIP/2.0 200"), "REGISTER: {r}");
    }
    let cp =
        Callpark::start(&pbx.setup(
            "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"8s\"\n",
        ))
        .await;
    // A busy-lamp key for the first orbit, where the PBX serves one to a phone.
    let lamp_key = matches!(pbx.side(), Side::Freeswitch(_));
    if lamp_key {
        let r = phone
            .subscribe(&support::fs::fb("SIP_BIND"), &o1, "127.0.0.1")
            .await;
        assert!(r.starts_with("SIP/2.0 20"), "SUBSCRIBE: {r}");
    }
    let notified = |state: &'static str, from: usize| {
        let (phone, o1) = (&phone, &o1);
        async move {
            wait_for(&format!("a NOTIFY of {o1} {state}"), S(5), || async {
                phone.notifies.lock().unwrap()[from..]
                    .iter()
                    .any(|n| {
                        n.contains(&format!("{o1}@"))
                            && n.contains(&format!("<state>{state}</state>"))
                    })
                    .then_some(())
            })
            .await
        }
    };

    let notes = phone.notifies.lock().unwrap().len();
    let caller = sip_park(pbx, &phone, "Carol").await;
    let call = cp.wait_parked_on(&o1).await;
    assert_eq!(call.channel.as_str(), caller.id);
    match pbx.side() {
        Side::Asterisk(..) => {
            assert_eq!(call.parker.endpoint.as_deref(), Some("PJSIP/alice"));
        }
        Side::Freeswitch(esl) => {
            // What FreeSWITCH sets on the transferred call, which is how callpark knows who
            // parked.
            let source = esl.getvar(&caller.id, "transfer_source").await;
            assert!(
                source.contains(":bl_xfer:park/"),
                "transfer_source {source}"
            );
            let transferer = esl.getvar(&caller.id, "bridge_channel").await;
            assert!(
                transferer.starts_with("sofia/internal/alice@"),
                "bridge_channel {transferer}"
            );
            let referred_by = esl.getvar(&caller.id, "sip_h_Referred-By").await;
            assert!(
                referred_by.contains("sip:alice@"),
                "Referred-By {referred_by}"
            );
            assert_eq!(call.parker.endpoint.as_deref(), Some(transferer.as_str()));
            assert!(call.parker.ids.contains(&"alice".to_string()));
        }
    }
    let parked_on = format!("parked on {o1}");
    wait_for("a SIP MESSAGE with the orbit", S(5), || async {
        phone
            .messages
            .lock()
            .unwrap()
            .iter()
            .find(|m| m.contains(&parked_on))
            .cloned()
    })
    .await;
    if lamp_key {
        notified("confirmed", notes).await;
    }

    let notes = phone.notifies.lock().unwrap().len();
    let retriever = pbx.dial_orbit(&o1, "Dave", "202").await;
    pbx.wait_bridged("the first orbit retrieved", &caller.id, &retriever.id)
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
    if lamp_key {
        notified("terminated", notes).await;
    }
    pbx.reset().await;

    // The next one times out: alice's phone rings showing the orbit, and she answers.
    let invites_before = phone.invites.lock().unwrap().len();
    let caller = sip_park(pbx, &phone, "Eve").await;
    cp.wait_parked_on(&o1).await;
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
        from.contains(&format!("Parked {o1}")),
        "caller id on the phone: {from}"
    );
    cp.wait_log(&caller.id, "reconnected", S(10)).await;
}

#[tokio::test]
async fn asterisk_sip_parker_learns_orbit_and_retrieve_by_sip_message_and_rings_back_with_the_orbit()
 {
    sip_phone_parks_learns_orbit_and_retrieve_and_is_rung_back(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_sip_phone_refer_parks_learns_orbit_and_retrieve_by_message_lamp_and_ringback() {
    sip_phone_parks_learns_orbit_and_retrieve_and_is_rung_back(&freeswitch().await).await;
}

/// on_timeout as a SIP URI: dialled through the pool's `sip_endpoint` (Asterisk's endpoint
/// `alice`, FreeSWITCH's sofia profile), here to the tests' own SIP phone, which answers.
async fn on_timeout_sip_uri_is_dialled_through_the_sip_endpoint(pbx: &impl Testbed) {
    let phone = sip::SipPhone::start(&pbx.sip_alice_contact()).await;
    let uri = format!("sip:operator@{}", pbx.sip_alice_contact());
    let mut setup = pbx.setup(&format!(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"5s\"\non_timeout = \"{uri}\"\n"
    ));
    pbx.sip_endpoint(&mut setup);
    let cp = Callpark::start(&setup).await;
    let (caller, expected) = match pbx.side() {
        // Dialled directly: nobody to ring back, so the timeout goes to on_timeout at once.
        Side::Asterisk(..) => (
            pbx.dial_park("Zed", "209").await,
            &["parked", "fallback_started", "fallback_answered"][..],
        ),
        // Parked from a phone that does not answer its ringback.
        Side::Freeswitch(_) => {
            let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
            cp.wait_parked_on(&pbx.orbit(1)).await;
            pbx.set_phone("alice", "noanswer").await;
            (
                caller,
                &[
                    "parked",
                    "ringback_started",
                    "ringback_missed",
                    "fallback_started",
                    "fallback_answered",
                ][..],
            )
        }
    };
    cp.wait_parked_on(&pbx.orbit(1)).await;
    let invite = wait_for("the INVITE to the SIP URI", S(30), || async {
        phone.invites.lock().unwrap().first().cloned()
    })
    .await;
    assert!(
        invite.starts_with(&format!("INVITE {uri}")),
        "request line: {}",
        invite.lines().next().unwrap_or("")
    );
    let kinds = kinds_until(&cp, &caller.id, "fallback_answered", S(30)).await;
    assert_eq!(kinds, expected);
    pbx.wait_bridged(
        "bridged to the SIP destination",
        &caller.id,
        &leg_id(&caller.id, "fb"),
    )
    .await;
}

#[tokio::test]
async fn asterisk_on_timeout_sip_uri_is_dialled_through_the_sip_endpoint() {
    on_timeout_sip_uri_is_dialled_through_the_sip_endpoint(&asterisk().await).await;
}

#[tokio::test]
async fn freeswitch_on_timeout_sip_uri_is_dialled_through_the_sofia_profile() {
    on_timeout_sip_uri_is_dialled_through_the_sip_endpoint(&freeswitch().await).await;
}
