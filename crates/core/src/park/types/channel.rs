//! The ids of the channels the core speaks of.

use std::fmt;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use uuid::Uuid;

/// The namespace of the ids [`ChannelId::leg`] derives: callpark's own, so that no other
/// name-based UUID scheme yields the same ids. Fixed, so that a parked channel and a tag give
/// the same id in every release.
const LEG_NAMESPACE: Uuid = Uuid::from_u128(0x5d89a678_8d69_4685_9372_24fc72d30b05);

/// A PBX channel id (ARI channel id, FreeSWITCH uuid), opaque to the core.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct ChannelId(pub String);

impl ChannelId {
    /// The id as the PBX gives it.
    pub fn new(s: impl Into<String>) -> ChannelId {
        ChannelId(s.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of a channel originated on behalf of this one (ringback `rb1`, fallback `fb`,
    /// return `ret`). Derived, not random, so the core stays deterministic and the id survives
    /// a restart: a name-based UUID (version 5) of `<parked id>/<tag>` in callpark's own
    /// namespace, because a UUID is what every PBX accepts as the id of a channel it is asked
    /// to create (FreeSWITCH's `origination_uuid` takes 36 characters).
    ///
    /// ```
    /// use callpark_core::park::ChannelId;
    ///
    /// let parked = ChannelId::new("1700000000.42");
    /// let ringback = parked.leg("rb1");
    /// assert_eq!(ringback, parked.leg("rb1"), "the same id every time");
    /// assert_ne!(ringback, parked.leg("rb2"));
    /// assert_eq!(ringback.as_str().len(), 36);
    /// ```
    pub fn leg(&self, tag: &str) -> ChannelId {
        let name = format!("{}/{tag}", self.0);
        ChannelId(
            Uuid::new_v5(&LEG_NAMESPACE, name.as_bytes())
                .hyphenated()
                .to_string(),
        )
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
