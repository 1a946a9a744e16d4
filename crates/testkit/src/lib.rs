//! The real Asterisk testbed, seen from a test: its connection facts (testbed.env), an ARI and
//! an AMI client to act as phones, and a `callpark run` process with a configuration of the
//! test's own. Nothing here stands in for Asterisk: a test that cannot reach it fails.
//!
//! The crate `callpark-testkit`, shared by the end-to-end tests (`tests/`) and the benchmarks
//! (`benches/`): compiled once, not into each test binary.
//!
//! One thing per file, everything re-exported here: where things are and the testbed's facts
//! (`env`), the testbeds' turn (`turn`), bounded waits (`wait`), the Asterisk testbed's ARI
//! (`ari`) and AMI (`ami`) and its phones (`asterisk`), the generated dial-plan includes
//! (`include`), `callpark run` as a process (`service`), outages (`cutter`), and the figures of
//! the benchmarks (`stats`, `usage`); the `Testbed` trait that lets a scenario run on both
//! PBXes (`testbed`), and what the SIP phone `alice` does on either (`gesture`); the seeded
//! fault-injection run (`faults`); a throwaway PostgreSQL cluster (`postgres`).

mod ami;
mod ari;
mod asterisk;
mod cutter;
mod env;
mod include;
mod service;
mod turn;
mod usage;
mod wait;

pub mod faults;
pub mod fs;
pub mod gesture;
pub mod phone;
pub mod postgres;
pub mod sip;
pub mod stats;
pub mod testbed;
pub mod wire;

pub use self::ami::{Ami, AmiMsg, arrived, epoch};
pub use self::ari::Ari;
pub use self::asterisk::{
    asterisk_log, atxfer, dial_orbit, park_by_transfer, park_by_transfer_to, testbed,
};
pub use self::cutter::{Cutter, Outage};
pub use self::env::{REPO, bin, read_testbed_env, tb, testbed_env};
pub use self::include::{generated_include, install_asterisk_include};
pub use self::service::{Callpark, Setup, api_table, dead_webhook};
pub use self::stats::{ms, pct};
pub use self::turn::{Turn, exclusive, exclusive_of};
pub use self::usage::proc_usage;
pub use self::wait::{wait_for, wait_in};
