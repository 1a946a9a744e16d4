//! The testbed as a fault run sees it: phones to act with, what the PBX holds, and how
//! callpark is configured and connected to it for the run.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::Pbx;
use crate::fs::{self, Esl};
use crate::{Ami, Ari, Setup};

/// The testbed as the run sees it: phones to act with, and what the PBX holds.
pub(super) enum Bed {
    Asterisk { ari: Ari, ami: Ami },
    Freeswitch { esl: Esl },
}

impl Bed {
    /// The testbed brought up and clean, and the address callpark connects to (which the
    /// run's cutter stands in front of).
    pub(super) async fn take(pbx: Pbx) -> (Bed, String) {
        match pbx {
            Pbx::Asterisk => {
                let (ari, ami) = crate::testbed().await;
                let target = crate::tb("ARI_URL")
                    .trim_start_matches("http://")
                    .to_string();
                (Bed::Asterisk { ari, ami }, target)
            }
            Pbx::Freeswitch => (
                Bed::Freeswitch {
                    esl: fs::fs_testbed().await,
                },
                fs::esl_addr(),
            ),
        }
    }

    /// callpark's configuration for the run, connected through the cutter at `port`: short
    /// timeouts, one ringback, then the operator.
    pub(super) fn setup(&self, port: u16) -> Setup {
        let park =
            "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"5s\"\n";
        let (fallback, setup) = match self {
            Bed::Asterisk { .. } => (
                "on_timeout = \"exten:answer@phones\"\n",
                Setup {
                    ari_url: Some(format!("http://127.0.0.1:{port}")),
                    log: fault_log(),
                    ..Setup::default()
                },
            ),
            Bed::Freeswitch { .. } => (
                "on_timeout = \"exten:answer@callpark-test\"\n",
                Setup {
                    esl_addr: Some(format!("127.0.0.1:{port}")),
                    log: fault_log(),
                    ..Setup::freeswitch()
                },
            ),
        };
        Setup {
            park: format!("{park}{fallback}"),
            ..setup
        }
    }

    /// The pool's first orbit.
    pub(super) fn orbit_base(&self) -> u64 {
        match self {
            Bed::Asterisk { .. } => 701,
            Bed::Freeswitch { .. } => 601,
        }
    }

    pub(super) async fn set_phone(&self, phone: &str, mode: &str) {
        match self {
            Bed::Asterisk { ami, .. } => ami.set_phone(phone, mode).await,
            Bed::Freeswitch { esl } => esl.set_phone(phone, mode).await,
        }
    }

    /// A call blind-transferred to the park code by `phone`; the caller's channel.
    pub(super) async fn park(&self, phone: &str, n: u32) -> String {
        match self {
            Bed::Asterisk { ari, ami } => {
                let cid = format!("\"F{n}\" <5557{:03}>", n % 1000);
                let (caller, _) = crate::park_by_transfer(ari, ami, phone, &cid).await;
                caller["id"].as_str().unwrap().to_string()
            }
            Bed::Freeswitch { esl } => {
                fs::park_by_transfer(
                    esl,
                    phone,
                    &format!("F{n}"),
                    &format!("5557{:03}", n % 1000),
                )
                .await
            }
        }
    }

    pub(super) async fn dial(&self, orbit: &str, n: u32) -> String {
        match self {
            Bed::Asterisk { ari, .. } => {
                let r =
                    crate::dial_orbit(ari, orbit, &format!("\"R{n}\" <5558{:03}>", n % 1000)).await;
                r["id"].as_str().unwrap().to_string()
            }
            // Not waiting for the loopback's other half (fs::dial_orbit): a retrieve bridged
            // and ended at once (its parked caller hung up as it came) is gone before that
            // half can be read, and the run then waited out 10 s and panicked.
            Bed::Freeswitch { esl } => {
                esl.start_call(orbit, &format!("R{n}"), &format!("5558{:03}", n % 1000))
                    .await
            }
        }
    }

    pub(super) async fn hang_up(&self, ch: &str) {
        match self {
            Bed::Asterisk { ari, .. } => {
                ari.delete(&format!("/channels/{ch}")).await;
            }
            Bed::Freeswitch { esl } => {
                esl.api(&format!("uuid_kill {ch}")).await;
            }
        }
    }

    /// Every channel the PBX has: id -> (name, the application it runs).
    pub(super) async fn channels(&self) -> HashMap<String, Value> {
        let list = match self {
            Bed::Asterisk { ari, .. } => ari.channels().await,
            Bed::Freeswitch { esl } => esl.channels().await,
        };
        let key = match self {
            Bed::Asterisk { .. } => "id",
            Bed::Freeswitch { .. } => "uuid",
        };
        list.into_iter()
            .filter_map(|c| Some((c[key].as_str()?.to_string(), c)))
            .collect()
    }

    /// Channels sitting in callpark's hands and not talking to anyone: what the store must
    /// know (a park, a retrieve or a leg on its way to a bridge).
    pub(super) async fn held(
        &self,
        chans: &HashMap<String, Value>,
        legs: &HashSet<String>,
    ) -> HashSet<String> {
        match self {
            Bed::Asterisk { ari, .. } => {
                let talking: HashSet<String> = ari
                    .bridges()
                    .await
                    .into_iter()
                    .filter_map(|b| b["channels"].as_array().cloned())
                    .filter(|c| c.len() >= 2)
                    .flatten()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect();
                chans
                    .iter()
                    .filter(|(id, c)| {
                        c["dialplan"]["app_name"] == "Stasis"
                            && c["dialplan"]["app_data"]
                                .as_str()
                                .is_some_and(|d| d.starts_with("callpark,"))
                            && !talking.contains(*id)
                    })
                    .map(|(id, _)| id.clone())
                    .collect()
            }
            Bed::Freeswitch { esl } => {
                let mut held = HashSet::new();
                for (id, c) in chans {
                    let app = c["application"].as_str().unwrap_or("");
                    let dest = c["dest"].as_str().unwrap_or("");
                    // Candidates: what the include hands over (the park code, orbits 601-699
                    // on the testbed) and legs callpark placed (their ids are the core's).
                    let candidate = matches!(app, "park" | "playback" | "endless_playback")
                        && (dest == "park"
                            || dest.parse::<u32>().is_ok_and(|o| (601..=699).contains(&o))
                            || legs.contains(id));
                    if !candidate {
                        continue;
                    }
                    // The include marks what it hands over; the phone side of a test call
                    // (the loopback half that dialled) is not marked.
                    let leg = esl.getvar(id, "callpark_leg").await;
                    let action = esl.getvar(id, "callpark_action").await;
                    let set = |v: &str| {
                        !v.is_empty() && !v.starts_with("-ERR") && !v.starts_with("_undef_")
                    };
                    if leg == *id || (set(&action) && !set(&leg)) {
                        held.insert(id.clone());
                    }
                }
                held
            }
        }
    }

    /// Hangs up everything that is not a kept channel or bound to one (the other half of a
    /// Local or loopback channel): finished conversations, calls at the operator, phones.
    pub(super) async fn clean(&self, chans: &HashMap<String, Value>, keep: &HashSet<String>) {
        let mut bound = keep.clone();
        for (id, c) in chans {
            if !keep.contains(id) {
                continue;
            }
            match self {
                Bed::Asterisk { .. } => {
                    let name = c["name"].as_str().unwrap_or("");
                    let other = if let Some(p) = name.strip_suffix(";1") {
                        format!("{p};2")
                    } else if let Some(p) = name.strip_suffix(";2") {
                        format!("{p};1")
                    } else {
                        continue;
                    };
                    bound.extend(
                        chans
                            .iter()
                            .filter(|(_, c)| c["name"] == other.as_str())
                            .map(|(id, _)| id.clone()),
                    );
                }
                Bed::Freeswitch { esl } => {
                    let other = esl.getvar(id, "other_loopback_leg_uuid").await;
                    if other.len() == 36 {
                        bound.insert(other);
                    }
                }
            }
        }
        for id in chans.keys() {
            if !bound.contains(id) {
                self.hang_up(id).await;
            }
        }
    }
}

/// callpark's log filter in a fault run: `CALLPARK_FAULT_LOG` (e.g. `callpark=info`) or
/// debug. Debug by default: a call lost once in hundreds of cycles is explained only by the
/// requests and replies around it, and the run costs no more for it (945 s for 300 cycles
/// on FreeSWITCH at debug, 927 s at info).
fn fault_log() -> &'static str {
    match std::env::var("CALLPARK_FAULT_LOG") {
        Ok(f) => Box::leak(f.into_boxed_str()),
        Err(_) => "callpark=debug",
    }
}
