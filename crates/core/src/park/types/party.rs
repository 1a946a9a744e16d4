//! Who is on a call: its caller, and who parked it.

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// Caller id of a party.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Party {
    /// Caller id name.
    pub name: String,
    /// Caller id number.
    pub number: String,
}

/// Who parked the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Parker {
    /// The ids voice policies are matched against (caller number, endpoint, SIP URI).
    pub ids: Vec<String>,
    /// Where ringbacks go, as the PBX dials it (`PJSIP/alice`); `None` when unknown.
    pub endpoint: Option<String>,
    /// A printable name for logs and notifications.
    pub display: String,
}
