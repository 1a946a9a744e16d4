//! The park lifecycle as a pure state machine (sans-IO).
//!
//! [`ParkCore`] takes PBX events ([`Event`]) and the current time, and returns the PBX commands
//! to carry out ([`Command`]). It keeps the parked calls and the orbit allocation; it has no
//! sockets, no clock and no database. The service persists [`ParkCore::drain_changes`] and
//! [`ParkCore::drain_log`] after every step, before it carries out the commands, so that every
//! parked call and its absolute deadline survive a restart ([`ParkCore::restore`]).

mod core;
mod policy;
mod types;

pub use self::core::{ParkCore, PoolOrbits};
pub use self::policy::{GENERAL_LOT, PolicyError, PolicyRule, PolicySet};
pub use self::types::*;
