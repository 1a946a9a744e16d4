//! Parks across the trunk between pools.
//!
//! A phone on one PBX that transfers a call to an orbit another pool owns sends it over the
//! trunk (the owner's `reach` dial string) as a plain INVITE, which the owner would take as a
//! retrieve. So the sender's include marks a transferred call's trunk leg with the header
//! [`PARK_HEADER`], `<sending pool>/<transferer's channel name>`, and the owner's include
//! hands a call carrying it to callpark as a directed park on the dialled orbit. The header
//! carries the channel name as the sending PBX spells it, not a dial string: the owner rings
//! the parker back through the sending pool's own `reach` for the owner's kind of PBX (the
//! route the administrator already gave for the other direction), with the phone's user in
//! place of `{orbit}`, so a header can never make the owner dial anything but that route.

use thiserror::Error;

use crate::config::{PbxConfig, PbxKind};
use crate::park::Parker;

/// The SIP header that marks a call on the trunk as a transferred park.
pub const PARK_HEADER: &str = "X-Callpark-Park";

/// The variable of the sending Asterisk's include that holds the header's value.
pub(crate) const ASTERISK_VAR: &str = "CALLPARK_TRUNK_PARK";

/// The other pools this pool can ring back over a trunk: each one's `reach` for this kind.
#[derive(Debug, Clone, Default)]
pub struct Trunks {
    peers: Vec<Peer>,
}

#[derive(Debug, Clone)]
struct Peer {
    pool: String,
    kind: PbxKind,
    /// The peer's `reach` for this pool's kind, `{orbit}` where the user goes.
    dial: String,
}

/// Why a header names no parker callpark can ring back.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrunkError {
    #[error("{PARK_HEADER} `{0}` is not `<pool>/<channel>`")]
    Malformed(String),
    #[error(
        "{PARK_HEADER} names pool `{0}`, which is not another [[pbx]] with a `reach` for this one"
    )]
    UnknownPool(String),
    #[error("{PARK_HEADER} names channel `{channel}`, which has no user that can be dialled back")]
    NoUser { channel: String },
}

impl Trunks {
    /// The peers of `me` among `all`: every other pool with a `reach` for `me`'s kind.
    pub fn of(me: &PbxConfig, all: &[PbxConfig]) -> Trunks {
        let peers = all
            .iter()
            .filter(|p| p.name != me.name)
            .filter_map(|p| {
                Some(Peer {
                    pool: p.name.clone(),
                    kind: p.kind,
                    dial: p.reach_from(me.kind)?.to_string(),
                })
            })
            .collect();
        Trunks { peers }
    }

    /// One peer by hand (tests): pool `pool` of kind `kind`, reached by `dial`.
    pub fn with_peer(mut self, pool: &str, kind: PbxKind, dial: &str) -> Trunks {
        self.peers.push(Peer {
            pool: pool.into(),
            kind,
            dial: dial.into(),
        });
        self
    }

    /// The parker a header's value names, rung back through its pool's `reach`.
    pub fn parker(&self, header: &str) -> Result<Parker, TrunkError> {
        let header = header.trim();
        let (pool, channel) = header
            .split_once('/')
            .filter(|(p, c)| !p.is_empty() && !c.is_empty())
            .ok_or_else(|| TrunkError::Malformed(header.to_string()))?;
        let peer = self
            .peers
            .iter()
            .find(|p| p.pool == pool)
            .ok_or_else(|| TrunkError::UnknownPool(pool.to_string()))?;
        let user = user_of(peer.kind, channel).ok_or_else(|| TrunkError::NoUser {
            channel: channel.to_string(),
        })?;
        let endpoint = peer.dial.replace("{orbit}", &user);
        Ok(Parker {
            // Policies match the phone as its own PBX names it, its user, and the route.
            ids: vec![user.clone(), format!("{pool}/{channel}"), endpoint.clone()],
            endpoint: Some(endpoint),
            display: format!("{user}@{pool}"),
        })
    }
}

/// The parker of a header [`Trunks::parker`] refuses: still a transferred park (not announced
/// to the caller, who parked nobody), shown and matched by the header, with nobody to ring back.
pub fn unreachable_parker(header: &str) -> Parker {
    Parker {
        ids: vec![header.to_string()],
        endpoint: None,
        display: header.to_string(),
    }
}

/// The user part of a channel as a PBX of `kind` names it: what its trunk routes to that phone
/// (`PJSIP/alice-0000001f` -> `alice`, `Local/to-dev-alice@calls-00000003;2` ->
/// `to-dev-alice`, `sofia/internal/alice@10.0.0.5:5060` -> `alice`, `loopback/dev-alice-a`
/// -> `dev-alice`). Only characters a dial plan takes as an extension: the user goes into a
/// dial string.
fn user_of(kind: PbxKind, channel: &str) -> Option<String> {
    let user = match kind {
        PbxKind::Asterisk => {
            let ep = crate::pbx::asterisk::model::endpoint_of(channel)?;
            let (_, rest) = ep.split_once('/')?;
            rest.split('@').next()?.to_string()
        }
        PbxKind::Freeswitch => {
            let ep = crate::pbx::freeswitch::translate::endpoint_of(channel, "-")?;
            crate::pbx::freeswitch::translate::user_of(&ep)?
        }
    };
    let dialable = |c: char| c.is_ascii_alphanumeric() || "-_.+*#".contains(c);
    (!user.is_empty() && user.chars().all(dialable)).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunks() -> Trunks {
        Trunks::default()
            .with_peer("pbx-b", PbxKind::Freeswitch, "PJSIP/{orbit}@freeswitch")
            .with_peer(
                "pbx-a",
                PbxKind::Asterisk,
                "{sip_h_X-Callpark-Trunk=freeswitch}sofia/internal/{orbit}@127.0.0.1:5160",
            )
    }

    #[test]
    fn a_freeswitch_transferer_is_rung_back_through_its_reach() {
        let p = trunks().parker("pbx-b/loopback/dev-alice-a").unwrap();
        assert_eq!(p.endpoint.as_deref(), Some("PJSIP/dev-alice@freeswitch"));
        assert_eq!(p.display, "dev-alice@pbx-b");
        assert!(p.ids.contains(&"dev-alice".to_string()));
        let p = trunks()
            .parker("pbx-b/sofia/internal/alice@127.0.0.1:5270")
            .unwrap();
        assert_eq!(p.endpoint.as_deref(), Some("PJSIP/alice@freeswitch"));
    }

    #[test]
    fn an_asterisk_transferer_is_rung_back_through_its_reach() {
        let p = trunks().parker("pbx-a/PJSIP/alice-0000001f").unwrap();
        assert_eq!(
            p.endpoint.as_deref(),
            Some("{sip_h_X-Callpark-Trunk=freeswitch}sofia/internal/alice@127.0.0.1:5160")
        );
        let p = trunks()
            .parker("pbx-a/Local/to-dev-alice@calls-00000003;2")
            .unwrap();
        assert_eq!(p.display, "to-dev-alice@pbx-a");
    }

    #[test]
    fn headers_that_name_nobody_to_ring_are_refused() {
        let t = trunks();
        assert!(matches!(
            t.parker("nonsense"),
            Err(TrunkError::Malformed(_))
        ));
        assert!(matches!(t.parker("pbx-b/"), Err(TrunkError::Malformed(_))));
        assert_eq!(
            t.parker("pbx-z/PJSIP/alice-00000001"),
            Err(TrunkError::UnknownPool("pbx-z".into()))
        );
        // A user that would change the dial string (another channel, options) is not dialled.
        assert!(matches!(
            t.parker("pbx-a/PJSIP/a&Local-00000001"),
            Err(TrunkError::NoUser { .. })
        ));
        assert!(matches!(
            t.parker("pbx-b/sofia/internal/x,y@h"),
            Err(TrunkError::NoUser { .. })
        ));
    }

    #[test]
    fn peers_are_the_other_pools_with_a_reach_for_this_kind() {
        let cfg = crate::config::Config::from_toml(
            r#"
[[pbx]]
name = "a"
kind = "asterisk"
address = "http://127.0.0.1:8088"
username = "u"
password = "p"
reach = { freeswitch = "sofia/internal/{orbit}@10.0.0.1" }
[[pbx]]
name = "b"
kind = "freeswitch"
address = "127.0.0.1:8021"
password = "p"
reach = { asterisk = "PJSIP/{orbit}@b" }
[[orbit_range]]
name = "a"
first = "701"
last = "799"
pool = "a"
"#,
            "t.toml",
        )
        .unwrap();
        let of_a = Trunks::of(&cfg.pbx[0], &cfg.pbx);
        assert_eq!(
            of_a.parker("b/loopback/x-a").unwrap().endpoint.as_deref(),
            Some("PJSIP/x@b")
        );
        assert!(of_a.parker("a/PJSIP/x-00000001").is_err(), "not itself");
        let of_b = Trunks::of(&cfg.pbx[1], &cfg.pbx);
        assert_eq!(
            of_b.parker("a/PJSIP/x-00000001")
                .unwrap()
                .endpoint
                .as_deref(),
            Some("sofia/internal/x@10.0.0.1")
        );
    }
}
