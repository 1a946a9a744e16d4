//! A seeded fault-injection run on a real testbed: parks, retrieves, hang-ups and timeouts in
//! flight while callpark is killed (SIGKILL), frozen (SIGSTOP, then SIGCONT), cut off from its
//! PBX (connections closed) or left talking to a silent PBX (connections open, nothing passes).
//! After every cycle the invariants are checked until they hold: that wait is the recovery.
//!
//! The run is reproducible from its seed (printed first): the seed decides every action, every
//! fault and every delay. The PBX's own timing is not the seed's, so two runs with one seed
//! take the same decisions, not the same interleavings.
//!
//! The same run faults several nodes sharing one PostgreSQL ([`Layout::Nodes`]): the node
//! holding the pool is killed, frozen, cut off from the PBX or from PostgreSQL, and
//! PostgreSQL itself is restarted. Each node reaches the PBX through its own tapped path, so
//! the run sees, as the PBX does, which node sent it what and when: no node but the holder of
//! an epoch may.
//!
//! One thing per file: the seeded randomness (`rng`), a cycle's plan and the faults (`plan`),
//! callpark as it is faulted, one process or several nodes, and the PBX's view of who
//! commanded it (`site`), the testbed as the run drives it (`bed`), the invariants
//! (`invariants`), what a run reports (`report`), and the run itself (`run`).

use std::fmt;

mod bed;
mod invariants;
mod plan;
mod report;
mod rng;
mod run;
mod site;

pub use self::plan::Fault;
pub use self::report::Report;
pub use self::rng::{Rng, seed};
pub use self::run::{no_call_lost, run};
pub use self::site::{Commands, Layout};

/// Which testbed a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pbx {
    Asterisk,
    Freeswitch,
}

impl Pbx {
    /// The testbed's name for [`crate::exclusive_of`].
    pub fn testbed(self) -> &'static str {
        match self {
            Pbx::Asterisk => "asterisk",
            Pbx::Freeswitch => "freeswitch",
        }
    }
}

impl fmt::Display for Pbx {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Pbx::Asterisk => "asterisk",
            Pbx::Freeswitch => "freeswitch",
        })
    }
}
