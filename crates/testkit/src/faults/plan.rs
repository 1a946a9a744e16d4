//! A cycle's plan, decided up front so that the seed alone decides it: the parks, retrieves
//! and hang-ups to make and when, and the fault to inject, when and for how long.

use std::time::Duration;

use callpark::park::ParkedCall;

use super::bed::Bed;
use super::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    None,
    /// SIGKILL, then a new process.
    Kill,
    /// SIGSTOP for a while, then SIGCONT: a hung process.
    Stop,
    /// Every connection to the PBX closed, new ones refused for a while.
    Cut,
    /// Connections open, nothing passes: a hung PBX or a path that drops everything.
    Silence,
}

const FAULTS: [Fault; 5] = [
    Fault::None,
    Fault::Kill,
    Fault::Stop,
    Fault::Cut,
    Fault::Silence,
];

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
        store: &[ParkedCall],
        n: &mut u32,
        orbit_base: u64,
    ) -> Cycle {
        // The draws are made in this order, always: a seed replays the same cycles.
        let fault = *rng.pick(&FAULTS).unwrap();
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
        let fault_for = rng.ms(300, 3000);
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
