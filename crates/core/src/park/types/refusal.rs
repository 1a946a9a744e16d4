//! Why a request changed nothing: a refused park, an operator's request that found no call.

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::orbit::Orbit;

/// Why a park request was turned down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum RefuseReason {
    /// No voice policy enables call park for the parker.
    NotAllowed,
    /// Every orbit of the pool (or lot) is in use.
    Full,
    /// A directed park named an orbit that is held by another call.
    OrbitBusy,
    /// A directed park named an orbit this pool does not own.
    NotOurOrbit,
    /// The parker's voice policy does not allow the lot asked for (or the orbit's lot).
    LotNotAllowed,
}

impl RefuseReason {
    /// The reason in words, for logs and the parker.
    pub fn as_str(self) -> &'static str {
        match self {
            RefuseReason::NotAllowed => {
                "call park is not enabled for this user by any voice policy"
            }
            RefuseReason::Full => "every orbit is in use",
            RefuseReason::OrbitBusy => "the requested orbit is in use",
            RefuseReason::NotOurOrbit => "the requested orbit is not one of this pool's orbits",
            RefuseReason::LotNotAllowed => "the parker's voice policy does not allow this lot",
        }
    }
}

/// Why an operator's request (the admin API) changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// No call is on the orbit.
    #[error("orbit: no call is parked on {0}")]
    NoCall(Orbit),
    /// The call on the orbit is being connected (or handed over) already.
    #[error("orbit: the call on {0} is being connected already")]
    Busy(Orbit),
}
