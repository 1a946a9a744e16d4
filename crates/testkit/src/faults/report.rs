//! What a run did and found, and what a cycle prints of callpark's log when its recovery was
//! slow or did not come.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::invariants::problem_id;
use super::site::{Commands, Layout};
use crate::stats::Slowest;

/// What a run did and found.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub layout: Option<Layout>,
    pub cycles: u32,
    pub faults: BTreeMap<String, u32>,
    pub parks: u32,
    pub retrieves: u32,
    pub hangups: u32,
    /// Calls lost: in callpark's hands and unknown to the store, in the store without a live
    /// channel, or logged parked and gone without a final log entry. Must be 0.
    pub lost: u32,
    /// Of those, orbits found held by two calls at once. Must be 0.
    pub double_held: u32,
    /// Deadlines fired twice: a second ringback or fallback in one park, or a call parked
    /// again after callpark hung it up. Must be 0.
    pub fired_twice: u32,
    /// Every problem: the calls lost, and (several nodes) each node that wrote to the PBX in
    /// an epoch it did not hold.
    pub problems: Vec<String>,
    /// Several nodes: who sent the PBX what, epoch by epoch.
    pub commands: Option<Commands>,
    /// The slowest recovery, and its cycle.
    pub slowest_recovery: Slowest<u32>,
    pub elapsed: Duration,
}

impl Report {
    /// Nothing lost, nothing held twice, no write to the PBX out of its epoch.
    pub fn sound(&self) -> bool {
        self.lost == 0 && self.problems.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "seed {}: {} cycles in {:.0?}; faults {:?}; parks {}, retrieves {}, hang-ups {}; calls lost {}, orbits held twice {}, deadlines fired twice {}; slowest recovery {:.1?} (cycle {})",
            self.seed,
            self.cycles,
            self.elapsed,
            self.faults,
            self.parks,
            self.retrieves,
            self.hangups,
            self.lost,
            self.double_held,
            self.fired_twice,
            self.slowest_recovery.time,
            self.slowest_recovery.of
        )?;
        if let Some(c) = &self.commands {
            write!(
                f,
                "; {} epochs, {} writes to the PBX checked, epochs written by a node not holding them {}",
                c.epochs, c.writes, c.shared
            )?;
        }
        Ok(())
    }
}

/// A slow recovery says what it waited for: callpark's warnings, errors, connections and
/// reconciliations, and its lines on the channels first found wrong (the last 30 of them).
pub(super) fn show_slow_recovery(
    cycle: u32,
    recovery: Duration,
    first: &Option<Vec<String>>,
    log: &str,
) {
    println!("cycle {cycle}: waited {recovery:.1?} for {first:?}");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("WARN")
                || l.contains("ERROR")
                || l.contains("panicked")
                || l.contains("connected to")
                || l.contains("reconciling")
                || first
                    .iter()
                    .flatten()
                    .filter_map(|p| problem_id(p))
                    .any(|id| l.contains(id))
        })
        .collect();
    for l in &lines[lines.len().saturating_sub(30)..] {
        println!("  | {l}");
    }
}

/// What callpark said about the channels of problems left after the recovery's bound: the
/// only trace left once the run ends (the process's log lives in a temporary directory).
pub(super) fn show_not_recovered(log: &str, problems: &[String]) {
    // Errors and panics with the lines after them (a panic's message follows it).
    let lines: Vec<&str> = log.lines().collect();
    let mut shown = 0;
    for (i, l) in lines.iter().enumerate().rev() {
        if shown == 5 {
            break;
        }
        if l.contains("ERROR") || l.contains("panicked") {
            println!(
                "---- callpark's log: {} ----",
                lines[i..]
                    .iter()
                    .take(3)
                    .copied()
                    .collect::<Vec<_>>()
                    .join("\n  ")
            );
            shown += 1;
        }
    }
    for p in problems {
        let Some(id) = p
            .split_whitespace()
            .find(|w| w.contains('.') || w.len() == 36)
        else {
            continue;
        };
        println!("---- callpark's log on {id} ----");
        for line in log.lines().filter(|l| l.contains(id)) {
            println!("{line}");
        }
    }
}
