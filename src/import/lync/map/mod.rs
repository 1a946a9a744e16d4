//! Lync's call park onto callpark's configuration keys.
//!
//! - Orbit ranges: each `Get-CsCallParkOrbit` range of type CallPark is an `[[orbit_range]]`
//!   owned by the `[[pbx]]` that `--map` names for its Call Park service; GroupPickup ranges are
//!   left out (group call pickup is not call park).
//! - Settings: the Global `Get-CsCpsConfiguration` is `[park]`. A Call Park service whose own
//!   settings differ (a `Service:` collection, or the `Site:` collection of the site `--site`
//!   puts its pool in) gets a `[[lot]]` of its ranges with what differs: in Lync the settings
//!   follow the service that holds the orbit, as callpark's follow the orbit's lot.
//! - Teams: each pickup range of an enabled `Get-CsTeamsCallParkPolicy` is a lot of its own
//!   (ParkTimeoutSeconds its pickup timeout), on the `[[pbx]]` of `--map teams=...`; its
//!   policy may park only there.
//! - Policies: each voice policy (EnableCallPark) and Teams policy (AllowCallPark) is a
//!   `[[policy]]`, in Lync's precedence: per-user ones, then site ones, then Global, which
//!   covers everyone. Who holds a per-user or site policy is not in these exports: said so.
//!
//! Whatever has no callpark equivalent, or needs a value the exports do not hold, is said in
//! a warning naming the record and the field.

use std::time::Duration;

use super::ImportError;
use super::objects::{
    Attempts, Cps, CpsScope, Exported, LyncOrbit, Origin, PolicyScope, TeamsPolicy,
};
use super::options::{MapEntry, Options, TEAMS};
use crate::config::PbxKind;
use crate::orbit::{Orbit, Prefix, Span};
use crate::park::GENERAL_LOT;

mod orbits;
mod pbx;
mod policies;
#[cfg(test)]
mod tests;

use orbits::{check_overlaps, lync_orbits, teams_orbits};
use pbx::resolve_pbx;
pub(super) use pbx::{a_pbx, kind_str};
use policies::policies;

/// callpark's longest pickup timeout (Lync's bound); Teams allows up to 30 minutes.
const PICKUP_MAX: Duration = Duration::from_secs(600);

/// What the import says besides the configuration.
#[derive(Debug, Default)]
pub(super) struct Said {
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
}

/// The settings Lync and callpark share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Settings {
    pub pickup_timeout: Duration,
    pub max_pickup_attempts: u8,
    pub on_timeout: Option<String>,
    pub music_on_hold: bool,
}

impl Default for Settings {
    /// Lync's defaults, which are callpark's.
    fn default() -> Settings {
        Settings {
            pickup_timeout: Duration::from_secs(90),
            max_pickup_attempts: 1,
            on_timeout: None,
            music_on_hold: true,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct LotPlan {
    pub name: String,
    pub settings: Settings,
    /// Where its settings come from.
    pub why: String,
}

#[derive(Debug, Clone)]
pub(super) struct RangePlan {
    pub name: String,
    pub span: Span,
    pub pool: String,
    pub lot: Option<String>,
    pub why: String,
}

#[derive(Debug, Clone)]
pub(super) struct PbxPlan {
    pub name: String,
    pub kind: PbxKind,
    /// The Lync pools (or Teams) whose orbits it takes.
    pub serves: Vec<String>,
    /// Already a `[[pbx]]` of `--base`: not written again.
    pub from_base: bool,
}

#[derive(Debug, Clone)]
pub(super) struct PolicyPlan {
    pub name: String,
    pub enable: bool,
    pub patterns: Vec<String>,
    pub lots: Option<Vec<String>>,
    pub default_lot: Option<String>,
    pub why: String,
}

/// The configuration to write.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub park: Settings,
    /// The Global collection `[park]` comes from; `None`: Lync's defaults.
    pub park_from: Option<Origin>,
    pub policies: Vec<PolicyPlan>,
    pub pbx: Vec<PbxPlan>,
    pub lots: Vec<LotPlan>,
    pub ranges: Vec<RangePlan>,
}

/// The settings of one collection; what it leaves empty is Lync's default (a site or service
/// collection is whole: it does not inherit from Global).
fn settings_of(c: &Cps, said: &mut Said) -> Settings {
    let d = Settings::default();
    if let Some(f) = &c.moh_content {
        said.warnings.push(format!(
            "{}: custom music on hold (content {}) is in Lync's file store, which callpark cannot read: copy the file and set music_on_hold_file",
            c.origin.at(f),
            f.value.trim()
        ));
    }
    let on_timeout = match (c.attempts, &c.on_timeout) {
        (Attempts::Null, Some((uri, f))) => {
            said.warnings.push(format!(
                "{}: MaxCallPickupAttempts is empty, so Lync ignores OnTimeoutURI {uri} and disconnects the call after the ringback: imported so (one ringback, no on_timeout)",
                c.origin.at(f)
            ));
            None
        }
        (_, t) => t.as_ref().map(|(uri, _)| uri.clone()),
    };
    Settings {
        pickup_timeout: c.pickup_timeout.unwrap_or(d.pickup_timeout),
        max_pickup_attempts: match c.attempts {
            Attempts::Value(n) => n,
            Attempts::Absent | Attempts::Null => d.max_pickup_attempts,
        },
        on_timeout,
        music_on_hold: c.music_on_hold.unwrap_or(d.music_on_hold),
    }
}

/// Refuses two records of one cmdlet with the same Identity (two exports of the same thing).
fn unique<'a>(origins: impl Iterator<Item = &'a Origin>) -> Result<(), ImportError> {
    let mut seen: Vec<&Origin> = Vec::new();
    for o in origins {
        if let Some(first) = seen
            .iter()
            .find(|s| s.identity.eq_ignore_ascii_case(&o.identity))
        {
            return Err(ImportError::Options(format!(
                "{o}: {} `{}` is already {}:{}: give each export once",
                o.cmdlet, o.identity, first.file, first.line
            )));
        }
        seen.push(o);
    }
    Ok(())
}

/// A lot name (letters, digits, `-`, `_`) from `text`, not `general` and not taken yet.
fn lot_name(text: &str, taken: &[String]) -> String {
    let mut base: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    base = base.trim_matches('-').to_string();
    if base.is_empty() || base == GENERAL_LOT {
        base = format!("lot-{base}").trim_end_matches('-').to_string();
    }
    let mut name = base.clone();
    let mut n = 2;
    while taken.iter().any(|t| t == &name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// The spans of `lo..=hi` (no prefix), one per number of digits: an orbit range keeps one
/// length, Teams' pickup codes do not.
fn spans_by_length(lo: u32, hi: u32) -> Vec<Span> {
    let mut out = Vec::new();
    let mut start = lo;
    while start <= hi {
        let top = 10u32.pow(start.ilog10() + 1) - 1;
        let end = top.min(hi);
        let o = |v| Orbit::new(Prefix::None, v).expect("10 to 9999 are orbits");
        out.push(Span::new(o(start), o(end)).expect("same length, in order"));
        start = end + 1;
    }
    out
}

/// Lync's call park as callpark's configuration.
pub(super) fn plan(ex: &Exported, opts: &Options, said: &mut Said) -> Result<Plan, ImportError> {
    unique(ex.cps.iter().map(|c| &c.origin))?;
    unique(ex.voice_policies.iter().map(|p| &p.origin))?;
    unique(ex.teams_policies.iter().map(|p| &p.origin))?;

    // Each collection's settings, read once so that each says what it has to say once.
    let cps_settings: Vec<Settings> = ex.cps.iter().map(|c| settings_of(c, said)).collect();
    // [park]: the Global collection.
    let global = ex.cps.iter().position(|c| c.scope == CpsScope::Global);
    let park = match global {
        Some(g) => cps_settings[g].clone(),
        None => {
            said.warnings.push(if ex.cps.is_empty() {
                "no Get-CsCpsConfiguration export (--cps FILE): [park] has Lync's defaults".into()
            } else {
                "the Get-CsCpsConfiguration export has no Global collection: [park] has Lync's defaults".into()
            });
            Settings::default()
        }
    };

    let mut t = Tables::default();
    lync_orbits(ex, opts, &park, &cps_settings, &mut t, said)?;
    let lync_lots: Vec<String> = t.lots.iter().map(|l| l.name.clone()).collect();
    let lync_general = t.ranges.iter().any(|r| r.lot.is_none());
    let teams_lot_of = teams_orbits(ex, opts, &park, &mut t, said)?;
    check_overlaps(&t.ranges)?;

    let pbx = resolve_pbx(opts, &t.used, said)?;
    let policies = policies(
        ex,
        &lync_lots,
        lync_general,
        !teams_lot_of.is_empty(),
        &teams_lot_of,
        said,
    );
    if policies.is_empty() {
        said.warnings.push(
            "no voice policy was given (--voice-policies FILE, Get-CsVoicePolicy; --teams-policies FILE): park is off for everyone until a [[policy]] enables it".into(),
        );
    }
    if park.on_timeout.is_some() || t.lots.iter().any(|l| l.settings.on_timeout.is_some()) {
        said.warnings.push(
            "on_timeout is a sip: URI (Lync's OnTimeoutURI): the PBX dials it through its [[pbx]] sip_endpoint (Asterisk's PJSIP endpoint, FreeSWITCH's sofia profile), which Lync's exports cannot tell: set it, and check the address still answers after the move (a Lync Response Group does not)".into(),
        );
    }
    Ok(Plan {
        park,
        park_from: global.map(|g| ex.cps[g].origin.clone()),
        policies,
        pbx,
        lots: t.lots,
        ranges: t.ranges,
    })
}

/// The lots and ranges written so far, and which `--map` entries they used (with the Lync
/// pool, or Teams, each was used for).
#[derive(Default)]
struct Tables<'a> {
    lots: Vec<LotPlan>,
    ranges: Vec<RangePlan>,
    used: Vec<(&'a MapEntry, String)>,
}
