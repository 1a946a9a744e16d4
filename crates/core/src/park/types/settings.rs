//! The settings of a lot, as the state machine takes them.

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use super::destination::Destination;
use super::time::{BRIDGE_TIMEOUT, Millis};

/// Music on hold for parked calls.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum Moh {
    /// Silence (`music_on_hold = false`).
    Off,
    /// The PBX's class; `None` is its default class.
    Class(Option<String>),
    /// A custom file, by the path the PBX can read.
    File(String),
}

/// The settings the state machine needs, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long a call waits on its orbit before its parker is rung back.
    pub pickup_timeout: Millis,
    /// How many ringbacks are placed before the fallback (`on_timeout`).
    pub max_pickup_attempts: u8,
    /// How long a ringback or the fallback rings.
    pub ringback_ring_time: Millis,
    /// Where a call goes when every ringback was missed; `None`: it is hung up (or stays
    /// parked when nobody can be rung back).
    pub on_timeout: Option<Destination>,
    /// What a parked call hears.
    pub moh: Moh,
    /// How long a requested bridge may take before it counts as failed.
    pub bridge_timeout: Millis,
    /// What a ringback or fallback shows before the orbit: `Parked 701: Carol`.
    pub caller_id_prefix: String,
    /// What a directed park to an orbit in use gets.
    pub on_busy_orbit: OnBusyOrbit,
    /// Park and page: where a parked call is announced (a paging group, an intercom
    /// extension); `None`: no page.
    pub page: Option<Destination>,
    /// How many times the page is repeated after the first (0: once).
    pub page_repeat: u8,
    /// How long after a page the next one is placed.
    pub page_interval: Millis,
}

/// What a call transferred to an orbit in use gets. It is never bridged to the parked call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum OnBusyOrbit {
    /// Back to whoever transferred it, who is told why.
    #[default]
    Return,
    /// The lowest free orbit of the same lot; the transferor is told which.
    NextFree,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            pickup_timeout: 90_000,
            max_pickup_attempts: 1,
            ringback_ring_time: 20_000,
            on_timeout: None,
            moh: Moh::Class(None),
            bridge_timeout: BRIDGE_TIMEOUT,
            caller_id_prefix: "Parked".into(),
            on_busy_orbit: OnBusyOrbit::Return,
            page: None,
            page_repeat: 0,
            page_interval: 30_000,
        }
    }
}
