//! A cycle's plan, decided up front so that the seed alone decides it: the parks, retrieves
//! and hang-ups to make and when, and the fault to inject, when and for how long.

use std::time::Duration;

use callpark::park::ParkedCall;

use super::bed::Bed;
use super::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    None,
    /// SIGKILL, then a new process. With several nodes: the pool's holder.
    Kill,
    /// SIGSTOP for a while, then SIGCONT: a hung process. With several nodes: the holder.
    Stop,
    /// Every connection to the PBX closed, new ones refused for a while (the holder's).
    Cut,
    /// Connections open, nothing passes: a hung PBX or a path that drops everything.
    Silence,
    /// Several nodes: the holder's PostgreSQL connections closed, new ones refused.
    DbCut,
    /// Several nodes: the holder's PostgreSQL connections open, nothing passes.
    DbSilence,
    /// Several nodes: PostgreSQL stopped (fast), then started again.
    DbRestart,
}

/// The faults a run draws from, and the longest a fault lasts.
pub struct Faults {
    pub kinds: &'static [Fault],
    pub longest_ms: u64,
}

/// One callpark process: the faults of issue 9, up to 3 s each.
pub const ONE_NODE: Faults = Faults {
    kinds: &[
        Fault::None,
        Fault::Kill,
        Fault::Stop,
        Fault::Cut,
        Fault::Silence,
    ],
    longest_ms: 3000,
};

/// Several nodes on PostgreSQL: the same, and PostgreSQL's. Up to 5 s, so that some outlast a
/// lease (3 s) and the pool is taken over, and some do not.
pub const NODES: Faults = Faults {
    kinds: &[
        Fault::None,
        Fault::Kill,
        Fault::Stop,
        Fault::Cut,
        Fault::Silence,
        Fault::DbCut,
        Fault::DbSilence,
        Fault::DbRestart,
    ],
    longest_ms: 5000,
};

const PARKER_MODES: [&str; 4] = ["answer", "answer", "noanswer", "busy"];

/// What one cycle does.
pub(super) struct Cycle {
    pub fault: Fault,
    /// The actions, each at its delay from the cycle's start.
    pub actions: Vec<(Duration, Action)>,
    pub fault_at: Duration,
    pub fault_for: Duration,
}

impl Cycle {
    /// The next cycle: one or two parks, up to two retrieves (mostly of orbits in `store`),
    /// sometimes a parked call hung up, and a fault. `n` numbers the calls of the run.
    pub(super) fn decide(
        rng: &mut Rng,
        faults: &Faults,
        store: &[ParkedCall],
        n: &mut u32,
        orbit_base: u64,
    ) -> Cycle {
        // The draws are made in this order, always: a seed replays the same cycles.
        let fault = *rng.pick(faults.kinds).unwrap();
        let parks = 1 + rng.below(2) as u32;
        let mut actions: Vec<(Duration, Action)> = Vec::new();
        for _ in 0..parks {
            *n += 1;
            let phone = format!("f{}", *n % 40);
            let mode = *rng.pick(&PARKER_MODES).unwrap();
            actions.push((rng.ms(0, 1500), Action::Park { phone, mode, n: *n }));
        }
        for _ in 0..rng.below(3) {
            *n += 1;
            // Mostly orbits in use; sometimes one that may be empty.
            let orbit = match rng.pick(store) {
                Some(c) if rng.below(4) > 0 => c.orbit.map(|o| o.to_string()),
                _ => None,
            }
            .unwrap_or_else(|| (orbit_base + rng.below(5)).to_string());
            actions.push((rng.ms(0, 1500), Action::Retrieve { orbit, n: *n }));
        }
        if let Some(c) = rng.pick(store).filter(|_| rng.below(3) == 0) {
            actions.push((
                rng.ms(0, 1500),
                Action::HangUp(c.channel.as_str().to_string()),
            ));
        }
        let fault_at = rng.ms(0, 1500);
        let fault_for = rng.ms(300, faults.longest_ms);
        Cycle {
            fault,
            actions,
            fault_at,
            fault_for,
        }
    }
}

pub(super) enum Action {
    Park {
        phone: String,
        mode: &'static str,
        n: u32,
    },
    Retrieve {
        orbit: String,
        n: u32,
    },
    HangUp(String),
}

pub(super) enum Done {
    Parked(String),
    Retrieved,
    HungUp,
}

impl Action {
    pub(super) async fn run(self, bed: &Bed) -> Done {
        match self {
            Action::Park { phone, mode, n } => {
                // The phone answers the call it transfers; its ringback then does `mode`.
                bed.set_phone(&phone, "answer").await;
                let ch = bed.park(&phone, n).await;
                bed.set_phone(&phone, mode).await;
                Done::Parked(ch)
            }
            Action::Retrieve { orbit, n } => {
                bed.dial(&orbit, n).await;
                Done::Retrieved
            }
            Action::HangUp(ch) => {
                bed.hang_up(&ch).await;
                Done::HungUp
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use callpark::park::{CallState, ChannelId, ParkedCall, Parker, Party};

    use super::*;

    fn parked(channel: &str, orbit: &str) -> ParkedCall {
        ParkedCall {
            channel: ChannelId::new(channel),
            orbit: Some(orbit.parse().unwrap()),
            caller: Party {
                name: "F1".into(),
                number: "5557001".into(),
            },
            parker: Parker {
                ids: vec!["f1".into()],
                endpoint: None,
                display: "f1".into(),
            },
            lot: None,
            parked_at: 1_000,
            deadline: 11_000,
            attempts: 0,
            fallback_tried: false,
            state: CallState::Parked,
            page: Default::default(),
        }
    }

    /// A cycle in one line: the fault and its moments, then each action at its moment.
    fn line(c: &Cycle) -> String {
        let mut s = format!(
            "{:?}@{}+{}",
            c.fault,
            c.fault_at.as_millis(),
            c.fault_for.as_millis()
        );
        for (at, a) in &c.actions {
            let a = match a {
                Action::Park { phone, mode, n } => format!("park {phone} {mode} #{n}"),
                Action::Retrieve { orbit, n } => format!("retrieve {orbit} #{n}"),
                Action::HangUp(ch) => format!("hang up {ch}"),
            };
            s.push_str(&format!("; {a}@{}", at.as_millis()));
        }
        s
    }

    fn store() -> Vec<ParkedCall> {
        vec![
            parked("1796526023.500", "702"),
            parked("1796526023.502", "704"),
        ]
    }

    /// CALLPARK_FAULT_SEED replays a run: a seed's cycles are these, draw for draw (a change
    /// in the order of the draws makes a printed seed replay some other run).
    #[test]
    fn a_seed_decides_the_same_cycles() {
        let mut rng = Rng::new(9);
        let mut n = 0;
        let cycles: Vec<String> = (0..8)
            .map(|_| line(&Cycle::decide(&mut rng, &ONE_NODE, &store(), &mut n, 701)))
            .collect();
        assert_eq!(
            cycles,
            [
                "Cut@491+1990; park f1 noanswer #1@29; retrieve 701 #2@687; retrieve 703 #3@1442",
                "Cut@1137+1048; park f4 noanswer #4@510; park f5 answer #5@794; retrieve 704 #6@1430; retrieve 702 #7@401",
                "None@1422+2159; park f8 noanswer #8@1482; retrieve 704 #9@501; retrieve 702 #10@609",
                "Kill@1259+2456; park f11 noanswer #11@820; park f12 answer #12@1293; retrieve 702 #13@120",
                "Kill@259+2429; park f14 answer #14@1478; park f15 answer #15@605; retrieve 705 #16@512; hang up 1796526023.502@396",
                "Kill@994+1225; park f17 noanswer #17@171; park f18 answer #18@1142; retrieve 704 #19@1486",
                "None@277+1877; park f20 answer #20@488; park f21 answer #21@1027; hang up 1796526023.500@313",
                "Silence@751+2829; park f22 answer #22@1426",
            ]
        );
        assert_eq!(n, 22, "every call of the run numbered once");
    }

    /// With nothing parked, retrieves go to the pool's first five orbits and nothing is hung
    /// up; every delay lies in its bounds.
    #[test]
    fn an_empty_store_gets_retrieves_of_the_first_orbits() {
        let mut rng = Rng::new(1);
        let mut n = 0;
        for _ in 0..500 {
            let c = Cycle::decide(&mut rng, &ONE_NODE, &[], &mut n, 601);
            assert!(c.fault_at <= Duration::from_millis(1500));
            assert!((300..=3000).contains(&c.fault_for.as_millis()));
            let parks = c
                .actions
                .iter()
                .filter(|(_, a)| matches!(a, Action::Park { .. }))
                .count();
            assert!((1..=2).contains(&parks), "{}", line(&c));
            for (at, a) in &c.actions {
                assert!(*at <= Duration::from_millis(1500));
                match a {
                    Action::Retrieve { orbit, .. } => {
                        assert!(("601"..="605").contains(&orbit.as_str()), "{orbit}")
                    }
                    Action::HangUp(ch) => panic!("hang-up of {ch} with nothing parked"),
                    Action::Park { .. } => {}
                }
            }
        }
    }
}
