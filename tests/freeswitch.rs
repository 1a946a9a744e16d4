//! What only FreeSWITCH has, end to end on the real FreeSWITCH testbed
//! (contrib/testbed/freeswitch), with `callpark run` as a process: a retriever that hangs up
//! just as `uuid_bridge` starts. The flows both PBXes share are written once in tests/flows.rs
//! and tests/recovery.rs.

use callpark_testkit as support;

use std::time::Duration;

use support::fs::park_by_transfer;
use support::fs::*;
use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn setup(park: &str) -> Setup {
    Setup {
        park: park.into(),
        ..Setup::freeswitch()
    }
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
