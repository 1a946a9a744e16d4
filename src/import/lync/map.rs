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

/// The orbit ranges of `Get-CsCallParkOrbit`, and a lot for each Call Park service whose
/// settings are its own.
fn lync_orbits<'a>(
    ex: &Exported,
    opts: &'a Options,
    park: &Settings,
    cps_settings: &[Settings],
    t: &mut Tables<'a>,
    said: &mut Said,
) -> Result<(), ImportError> {
    let call_park: Vec<&LyncOrbit> = ex
        .orbits
        .iter()
        .filter(|o| {
            if o.group_pickup {
                said.notes.push(format!(
                    "{}: Type GroupPickup: group call pickup numbers, not call park orbits; not imported",
                    o.origin
                ));
            }
            !o.group_pickup
        })
        .collect();
    let mut services: Vec<&str> = Vec::new();
    for o in &call_park {
        if !services.contains(&o.service.as_str()) {
            services.push(&o.service);
        }
    }
    check_sites(ex, opts, &services, said)?;
    let mut service_lot: Vec<(&str, Option<String>)> = Vec::new();
    let labels: Vec<&str> = services
        .iter()
        .map(|s| s.split('.').next().unwrap_or(s))
        .collect();
    for (i, &svc) in services.iter().enumerate() {
        let lot = match own_settings(ex, opts, svc) {
            Some(k) => {
                let (c, s) = (&ex.cps[k], cps_settings[k].clone());
                if s == *park {
                    None
                } else {
                    // The pool's first label names the lot unless two pools share it.
                    let label = if labels.iter().filter(|l| **l == labels[i]).count() == 1 {
                        labels[i]
                    } else {
                        svc
                    };
                    let taken: Vec<String> = t.lots.iter().map(|l| l.name.clone()).collect();
                    let name = lot_name(label, &taken);
                    t.lots.push(LotPlan {
                        name: name.clone(),
                        settings: s,
                        why: format!(
                            "Call Park service {svc}: the settings of {} ({}:{})",
                            c.origin.identity, c.origin.file, c.origin.line
                        ),
                    });
                    Some(name)
                }
            }
            None => None,
        };
        service_lot.push((svc, lot));
    }
    for o in &call_park {
        let Some(m) = opts.map.iter().find(|m| m.pool == o.service) else {
            return Err(ImportError::Unmapped {
                record: o.origin.to_string(),
                pool: o.service.clone(),
            });
        };
        t.used.push((m, o.service.clone()));
        let lot = service_lot
            .iter()
            .find(|(s, _)| *s == o.service)
            .and_then(|(_, l)| l.clone());
        t.ranges.push(RangePlan {
            name: o.origin.identity.clone(),
            span: o.span,
            pool: m.name.clone(),
            lot,
            why: format!(
                "{} `{}` ({}:{}), Call Park service {}",
                o.origin.cmdlet, o.origin.identity, o.origin.file, o.origin.line, o.service
            ),
        });
    }
    Ok(())
}

/// A lot per pickup range of the enabled Teams policies; which lot each policy parks into.
fn teams_orbits<'a, 'e>(
    ex: &'e Exported,
    opts: &'a Options,
    park: &Settings,
    t: &mut Tables<'a>,
    said: &mut Said,
) -> Result<Vec<(&'e Origin, String)>, ImportError> {
    let mut teams_lot_of: Vec<(&Origin, String)> = Vec::new();
    let mut groups: Vec<Vec<&TeamsPolicy>> = Vec::new();
    for p in &ex.teams_policies {
        if !p.allow_call_park {
            said.notes.push(format!(
                "{}: AllowCallPark False: its pickup range {}-{} is not imported",
                p.origin, p.range.0, p.range.1
            ));
            continue;
        }
        match groups.iter_mut().find(|g| g[0].range == p.range) {
            Some(g) => g.push(p),
            None => groups.push(vec![p]),
        }
    }
    for g in &groups {
        let first = g[0];
        if let Some(other) = g.iter().find(|p| p.park_timeout.0 != first.park_timeout.0) {
            let f = other
                .park_timeout
                .1
                .clone()
                .or_else(|| first.park_timeout.1.clone());
            let msg = format!(
                "shares pickup range {}-{} with {} but not its ParkTimeoutSeconds ({} and {}): callpark keeps one pickup timeout per range; give them the same timeout or ranges of their own",
                first.range.0,
                first.range.1,
                first.origin.identity,
                other.park_timeout.0,
                first.park_timeout.0
            );
            return Err(match f {
                Some(f) => other.origin.refuse(&f, msg),
                None => ImportError::Options(format!("{}: {msg}", other.origin)),
            });
        }
        let Some(m) = opts.map.iter().find(|m| m.pool == TEAMS) else {
            return Err(ImportError::Options(format!(
                "{}: Teams parks in the cloud, so no Call Park service holds its pickup range {}-{}: say which [[pbx]] takes it with --map \"teams=NAME:KIND\"",
                first.origin, first.range.0, first.range.1
            )));
        };
        t.used.push((m, "Teams".into()));
        let timeout = Duration::from_secs(u64::from(first.park_timeout.0));
        let pickup_timeout = if timeout > PICKUP_MAX {
            let at = match &first.park_timeout.1 {
                Some(f) => first.origin.at(f),
                None => format!("{}: ParkTimeoutSeconds", first.origin),
            };
            said.warnings.push(format!(
                "{at}: {}: callpark rings back after at most 10 minutes (Lync's bound): imported as 10m",
                first.park_timeout.0
            ));
            PICKUP_MAX
        } else {
            timeout
        };
        let tag = match &first.scope {
            PolicyScope::Tag(t) => t.as_str(),
            _ => "global",
        };
        let taken: Vec<String> = t.lots.iter().map(|l| l.name.clone()).collect();
        let name = lot_name(&format!("teams-{tag}"), &taken);
        let who: Vec<String> = g.iter().map(|p| p.origin.identity.clone()).collect();
        t.lots.push(LotPlan {
            name: name.clone(),
            settings: Settings {
                pickup_timeout,
                ..park.clone()
            },
            why: format!(
                "Teams call park policy {}: pickup range {}-{}, ParkTimeoutSeconds {}",
                who.join(", "),
                first.range.0,
                first.range.1,
                first.park_timeout.0
            ),
        });
        let spans = spans_by_length(first.range.0, first.range.1);
        for s in &spans {
            t.ranges.push(RangePlan {
                name: if spans.len() == 1 {
                    format!("Teams {}", first.origin.identity)
                } else {
                    format!("Teams {} {}", first.origin.identity, s)
                },
                span: *s,
                pool: m.name.clone(),
                lot: Some(name.clone()),
                why: format!(
                    "{} `{}` ({}:{}), PickupRangeStart {} to PickupRangeEnd {}",
                    first.origin.cmdlet,
                    first.origin.identity,
                    first.origin.file,
                    first.origin.line,
                    first.range.0,
                    first.range.1
                ),
            });
        }
        for p in g {
            teams_lot_of.push((&p.origin, name.clone()));
        }
    }
    Ok(teams_lot_of)
}

/// Every `Site:` collection must know its pools (`--site`); a pool is in one site.
fn check_sites(
    ex: &Exported,
    opts: &Options,
    services: &[&str],
    said: &mut Said,
) -> Result<(), ImportError> {
    for c in &ex.cps {
        match &c.scope {
            CpsScope::Site(site) => {
                match opts
                    .sites
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(site))
                {
                    None => {
                        return Err(ImportError::Options(format!(
                            "{}: which pools are in site {site} is not in these exports: give --site \"{site}=POOL_FQDN,...\" (Get-CsPool lists each pool's site; --site \"{site}=\" for none)",
                            c.origin
                        )));
                    }
                    Some((_, pools)) if !pools.iter().any(|p| services.contains(&p.as_str())) => {
                        said.warnings.push(format!(
                            "{}: no orbit of these exports is on a pool of site {site}: its settings are not used",
                            c.origin
                        ));
                    }
                    Some(_) => {}
                }
            }
            CpsScope::Service(fqdn) if !services.contains(&fqdn.as_str()) => {
                said.warnings.push(format!(
                    "{}: no orbit of these exports is on this Call Park service: its settings are not used",
                    c.origin
                ));
            }
            _ => {}
        }
    }
    for &svc in services {
        let in_sites: Vec<&str> = opts
            .sites
            .iter()
            .filter(|(_, pools)| pools.iter().any(|p| p == svc))
            .map(|(n, _)| n.as_str())
            .collect();
        if in_sites.len() > 1 {
            return Err(ImportError::Options(format!(
                "--site puts pool {svc} in {}: a pool is in one site",
                in_sites.join(" and ")
            )));
        }
    }
    Ok(())
}

/// The collection (its index) that applies to a Call Park service other than Global: its
/// own, else its site's; `None`: Global's.
fn own_settings(ex: &Exported, opts: &Options, svc: &str) -> Option<usize> {
    let own = ex
        .cps
        .iter()
        .position(|c| c.scope == CpsScope::Service(svc.to_string()));
    own.or_else(|| {
        let (site, _) = opts
            .sites
            .iter()
            .find(|(_, pools)| pools.iter().any(|p| p == svc))?;
        ex.cps
            .iter()
            .position(|c| matches!(&c.scope, CpsScope::Site(s) if s.eq_ignore_ascii_case(site)))
    })
}

/// Two ranges that share an orbit, named by their records.
fn check_overlaps(ranges: &[RangePlan]) -> Result<(), ImportError> {
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            let (x, y) = (a.span, b.span);
            if x.first.prefix() == y.first.prefix()
                && x.first.digits() == y.first.digits()
                && x.first.value() <= y.last.value()
                && y.first.value() <= x.last.value()
            {
                let v = x.first.value().max(y.first.value());
                let orbit = Orbit::new(x.first.prefix(), v).expect("inside both ranges");
                return Err(ImportError::Overlap {
                    a: a.why.clone(),
                    b: b.why.clone(),
                    orbit: orbit.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// The `[[pbx]]` of each `--map` target that takes orbits, with its kind.
fn resolve_pbx(
    opts: &Options,
    used: &[(&MapEntry, String)],
    said: &mut Said,
) -> Result<Vec<PbxPlan>, ImportError> {
    let mut pbx: Vec<PbxPlan> = Vec::new();
    for (m, pool) in used {
        let base = opts
            .base()
            .and_then(|b| b.pbx.iter().find(|p| p.name == m.name));
        // The kind may be said once for a name that several pools map to.
        let said_kind = m.kind.or_else(|| {
            opts.map
                .iter()
                .filter(|o| o.name == m.name)
                .find_map(|o| o.kind)
        });
        let kind = match (base.and_then(|b| b.kind), said_kind) {
            (Some(b), Some(k)) if b != k => {
                return Err(ImportError::Options(format!(
                    "--map {:?}: [[pbx]] {} of --base is {}, not {}",
                    m.text,
                    m.name,
                    kind_str(b),
                    kind_str(k)
                )));
            }
            (Some(b), _) => b,
            (None, Some(k)) => k,
            (None, None) => {
                return Err(ImportError::Options(format!(
                    "--map {:?}: which kind of PBX is {}? write {}:asterisk or {}:freeswitch (or give --base FILE holding its [[pbx]])",
                    m.text, m.name, m.text, m.text
                )));
            }
        };
        match pbx.iter_mut().find(|p| p.name == m.name) {
            Some(p) if p.kind != kind => {
                return Err(ImportError::Options(format!(
                    "--map {:?}: {} is {} by another --map",
                    m.text,
                    m.name,
                    kind_str(p.kind)
                )));
            }
            Some(p) => {
                if !p.serves.contains(pool) {
                    p.serves.push(pool.clone());
                }
            }
            None => pbx.push(PbxPlan {
                name: m.name.clone(),
                kind,
                serves: vec![pool.clone()],
                from_base: base.is_some(),
            }),
        }
    }
    for m in &opts.map {
        if !used.iter().any(|(u, _)| u.pool == m.pool) {
            said.warnings.push(format!(
                "--map {:?}: no orbit of these exports is on {}",
                m.text, m.pool
            ));
        }
    }
    for p in pbx.iter().filter(|p| !p.from_base) {
        said.warnings.push(format!(
            "[[pbx]] {}: its address and secret are those of {} on this machine, under callpark's usual names: set this PBX's (or give --base FILE holding its [[pbx]])",
            p.name,
            a_pbx(p.kind)
        ));
    }
    if pbx.len() > 1 {
        let names: Vec<&str> = pbx.iter().map(|p| p.name.as_str()).collect();
        said.warnings.push(format!(
            "the orbits are on {} PBXes ({}): a Lync phone retrieves any orbit, so give each [[pbx]] a `reach` through which the others dial its orbits",
            pbx.len(),
            names.join(", ")
        ));
    }
    Ok(pbx)
}

/// "an Asterisk", "a FreeSWITCH".
pub(super) fn a_pbx(k: PbxKind) -> &'static str {
    match k {
        PbxKind::Asterisk => "an Asterisk",
        PbxKind::Freeswitch => "a FreeSWITCH",
    }
}

pub(super) fn kind_str(k: PbxKind) -> &'static str {
    match k {
        PbxKind::Asterisk => "asterisk",
        PbxKind::Freeswitch => "freeswitch",
    }
}

/// The `[[policy]]` list in Lync's precedence.
fn policies(
    ex: &Exported,
    lync_lots: &[String],
    lync_general: bool,
    teams_lots: bool,
    teams_lot_of: &[(&Origin, String)],
    said: &mut Said,
) -> Vec<PolicyPlan> {
    let rank = |s: &PolicyScope| match s {
        PolicyScope::Tag(_) => 0,
        PolicyScope::Site(_) => 2,
        PolicyScope::Global => 3,
    };
    // Per-user policies first, then site ones, then Global: the first policy that covers a
    // parker decides, as Lync applies the most specific one.
    let mut order: Vec<(u8, bool, usize)> = ex
        .voice_policies
        .iter()
        .enumerate()
        .map(|(i, p)| (rank(&p.scope), false, i))
        .chain(ex.teams_policies.iter().enumerate().map(|(i, p)| {
            let r = match p.scope {
                PolicyScope::Tag(_) => 1,
                _ => 4,
            };
            (r, true, i)
        }))
        .collect();
    order.sort_by_key(|(r, _, _)| *r);
    // With Teams lots, Lync's users keep to Lync's orbits.
    let lync_allowed = teams_lots.then(|| {
        let mut l: Vec<String> = Vec::new();
        if lync_general {
            l.push(GENERAL_LOT.into());
        }
        l.extend(lync_lots.iter().cloned());
        l
    });
    let lync_global = ex
        .voice_policies
        .iter()
        .find(|p| p.scope == PolicyScope::Global);
    let mut out = Vec::new();
    for (_, teams, i) in order {
        let (origin, scope, enable) = if teams {
            let p = &ex.teams_policies[i];
            (&p.origin, &p.scope, p.allow_call_park)
        } else {
            let p = &ex.voice_policies[i];
            (&p.origin, &p.scope, p.enable_call_park)
        };
        let switch = if teams {
            "AllowCallPark"
        } else {
            "EnableCallPark"
        };
        let patterns = match scope {
            PolicyScope::Global => {
                if let (true, Some(g)) = (teams, lync_global) {
                    said.warnings.push(format!(
                        "{origin}: {} Global comes first and covers everyone, so this policy covers nobody: give it users or patterns, or drop one of the two",
                        g.origin.cmdlet
                    ));
                }
                vec![".*".to_string()]
            }
            PolicyScope::Site(site) => {
                said.warnings.push(format!(
                    "{origin}: {switch} {}: it applies to the users homed in site {site}, whom these exports do not list: add them to its users or patterns",
                    if enable { "True" } else { "False" }
                ));
                Vec::new()
            }
            PolicyScope::Tag(_) => {
                said.warnings.push(format!(
                    "{origin}: {switch} {}: who holds this per-user policy is not in these exports ({}): add them to its users or patterns",
                    if enable { "True" } else { "False" },
                    if teams {
                        "Get-CsOnlineUser lists each user's TeamsCallParkPolicy"
                    } else {
                        "Get-CsUser lists each user's VoicePolicy"
                    }
                ));
                Vec::new()
            }
        };
        let (lots, default_lot) = if teams {
            match teams_lot_of.iter().find(|(o, _)| *o == origin) {
                Some((_, lot)) => (Some(vec![lot.clone()]), Some(lot.clone())),
                None => (None, None),
            }
        } else {
            (lync_allowed.clone().filter(|_| enable), None)
        };
        out.push(PolicyPlan {
            name: if teams {
                format!("Teams {}", origin.identity)
            } else {
                origin.identity.clone()
            },
            enable,
            patterns,
            lots,
            default_lot,
            why: format!(
                "{} `{}` ({}:{}): {switch} {}",
                origin.cmdlet,
                origin.identity,
                origin.file,
                origin.line,
                if enable { "True" } else { "False" }
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lot_names_are_lot_names_and_unique() {
        assert_eq!(lot_name("pool02", &[]), "pool02");
        assert_eq!(lot_name("pool02.contoso.com", &[]), "pool02-contoso-com");
        assert_eq!(lot_name("teams-Sales Policy", &[]), "teams-sales-policy");
        assert_eq!(lot_name("general", &[]), "lot-general");
        assert_eq!(lot_name("a", &["a".into(), "a-2".into()]), "a-3");
    }

    #[test]
    fn teams_ranges_split_by_length() {
        let s: Vec<String> = spans_by_length(10, 99)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(s, ["10-99"]);
        let s: Vec<String> = spans_by_length(500, 1500)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(s, ["500-999", "1000-1500"]);
        let s: Vec<String> = spans_by_length(10, 9999)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(s, ["10-99", "100-999", "1000-9999"]);
    }
}
