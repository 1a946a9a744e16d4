//! The Asterisk testbed as a test drives it: brought up and reset, its phones parking and
//! retrieving calls, and its verbose log.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::{Ami, Ari, REPO, tb, wait_for};

/// A call between `dev-<phone>` (the parker's phone) and a caller, which the phone then blind
/// transfers to the park code. Returns the parked channel (the caller) and the transferer.
pub async fn park_by_transfer(
    ari: &Ari,
    ami: &Ami,
    phone: &str,
    caller_id: &str,
) -> (Value, Value) {
    park_by_transfer_to(ari, ami, phone, caller_id, "park").await
}

/// [`park_by_transfer`] to any extension of `park-in`: a lot's park code, or an orbit (a
/// directed park, as a busy-lamp key pressed during a call does it).
pub async fn park_by_transfer_to(
    ari: &Ari,
    ami: &Ami,
    phone: &str,
    caller_id: &str,
    exten: &str,
) -> (Value, Value) {
    ami.set_phone(phone, "answer").await;
    let to = format!("to-dev-{phone}");
    let (_, transferer_id) = ari
        .originate_local_ids(&to, "calls", ("answer", "phones"), caller_id)
        .await;
    let caller_prefix = format!("Local/dev-{phone}@phones-");
    // The caller is the phone's channel in Dial's bridge with the transferer (a transfer
    // needs that bridge to find its peer): found by the bridge, not by name alone, which an
    // earlier call of the same phone may still carry.
    let (transferer, caller) = wait_for(
        "the phone's call to be up and bridged",
        Duration::from_secs(10),
        || async {
            let t = ari.channel(&transferer_id).await?;
            let bridge = ari.bridges().await.into_iter().find(|b| {
                b["channels"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|x| x == transferer_id.as_str()))
            })?;
            let chans = ari.channels().await;
            let c = bridge["channels"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .filter(|id| *id != transferer_id)
                .find_map(|id| {
                    chans.iter().find(|c| {
                        c["id"] == id
                            && c["name"]
                                .as_str()
                                .is_some_and(|n| n.starts_with(&caller_prefix) && n.ends_with(";1"))
                    })
                })?
                .clone();
            (t["state"] == "Up" && c["state"] == "Up").then_some((t, c))
        },
    )
    .await;
    ami.blind_transfer(transferer["name"].as_str().unwrap(), exten, "park-in")
        .await;
    (caller, transferer)
}

/// Another phone dials an orbit; returns the retrieving channel (the half in Stasis).
pub async fn dial_orbit(ari: &Ari, orbit: &str, caller_id: &str) -> Value {
    let (_, two) = ari
        .originate_local_ids(orbit, "park-in", ("answer", "phones"), caller_id)
        .await;
    wait_for(
        "the retriever's channel",
        Duration::from_secs(5),
        || async { ari.channel(&two).await },
    )
    .await
}

/// Asterisk's verbose log (the testbed's `full`), to see what a channel heard.
pub fn asterisk_log() -> String {
    let p = Path::new(&tb("ROOT")).join("var/log/asterisk/full");
    std::fs::read_to_string(&p).unwrap_or_default()
}

/// The testbed must answer; when it does not, `testbed.sh up` is tried once (the test command
/// in README does it before the tests). A testbed that cannot be started fails the test.
pub async fn testbed() -> (Ari, Ami) {
    let ari = Ari::testbed();
    if !ari.answers().await {
        static UP: OnceLock<Result<(), String>> = OnceLock::new();
        let r = UP.get_or_init(|| {
            let script = Path::new(REPO).join("contrib/testbed/asterisk/testbed.sh");
            let out = Command::new("bash").arg(&script).arg("up").output();
            match out {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(format!(
                    "{} up failed:\n{}{}",
                    script.display(),
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )),
                Err(e) => Err(format!("cannot run {}: {e}", script.display())),
            }
        });
        if let Err(e) = r {
            panic!(
                "the Asterisk testbed is not reachable at {}: {e}",
                tb("ARI_URL")
            );
        }
        assert!(
            ari.answers().await,
            "testbed started but ARI does not answer"
        );
    }
    ari.reset().await;
    let ami = Ami::connect().await;
    (ari, ami)
}

/// Alice-style attended transfer on Asterisk: the transferer presses its transfer key and
/// dials `exten`; returns the consultation channel. AMI's digits are now and then lost by
/// Asterisk ("Unable to acquire target extension"): then it is tried again, as a person would.
pub async fn atxfer(ari: &Ari, ami: &Ami, transferer: &Value, exten: &str) -> Value {
    // Consultation channels to this extension that exist already are not this one's.
    let prefix = format!("Local/{exten}@park-in-");
    let before: Vec<String> = ari
        .channels()
        .await
        .iter()
        .filter_map(|c| c["name"].as_str())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    let fresh = || async {
        ari.channels().await.into_iter().find(|c| {
            let n = c["name"].as_str().unwrap_or("");
            n.starts_with(&prefix) && n.ends_with(";2") && !before.iter().any(|b| b == n)
        })
    };
    for _ in 0..2 {
        let mark = asterisk_log().len();
        let r = ami
            .action(
                "Atxfer",
                &[
                    ("Channel", transferer["name"].as_str().unwrap()),
                    ("Exten", exten),
                    ("Context", "park-in"),
                ],
            )
            .await;
        assert_eq!(
            r.get("Response").map(String::as_str),
            Some("Success"),
            "{r:?}"
        );
        let consult = wait_for(
            "the consultation call, or the transfer given up",
            Duration::from_secs(15),
            || async {
                if let Some(c) = fresh().await {
                    return Some(Some(c));
                }
                let log = asterisk_log();
                log[mark.min(log.len())..]
                    .contains("Unable to acquire target extension for attended transfer")
                    .then_some(None)
            },
        )
        .await;
        if let Some(c) = consult {
            return c;
        }
    }
    panic!("Asterisk lost the attended transfer's digits twice");
}
