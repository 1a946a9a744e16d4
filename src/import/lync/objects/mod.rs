//! Lync's objects as the four cmdlets describe them, read from records, with Lync's own rules:
//! a value Lync would not accept is refused, naming the file, the record and the field.

use std::time::Duration;

use super::ImportError;
use super::record::{Field, Record};
use crate::orbit::{MAX_RANGE_SIZE, Orbit, Span};

pub(super) const ORBIT_CMDLET: &str = "Get-CsCallParkOrbit";
pub(super) const CPS_CMDLET: &str = "Get-CsCpsConfiguration";
pub(super) const VOICE_CMDLET: &str = "Get-CsVoicePolicy";
pub(super) const TEAMS_CMDLET: &str = "Get-CsTeamsCallParkPolicy";

/// Lync's bounds of CallPickupTimeoutThreshold and MaxCallPickupAttempts (Set-CsCpsConfiguration).
const PICKUP_MIN: Duration = Duration::from_secs(10);
const PICKUP_MAX: Duration = Duration::from_secs(600);
const ATTEMPTS: std::ops::RangeInclusive<u8> = 1..=10;
/// Teams' bounds of PickupRangeStart/End and ParkTimeoutSeconds (New-CsTeamsCallParkPolicy).
const PICKUP_CODES: std::ops::RangeInclusive<u32> = 10..=9999;
const PARK_TIMEOUT: std::ops::RangeInclusive<u32> = 120..=1800;

/// Where a record came from, to name it in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin {
    pub cmdlet: &'static str,
    pub file: String,
    pub line: usize,
    pub identity: String,
}

impl Origin {
    /// A value of this record Lync would not accept.
    pub fn refuse(&self, field: &Field, msg: impl Into<String>) -> ImportError {
        ImportError::Value {
            file: self.file.clone(),
            line: field.line,
            cmdlet: self.cmdlet,
            identity: self.identity.clone(),
            field: field.name.clone(),
            msg: msg.into(),
        }
    }

    /// The record and one of its fields, for a warning: `file:line: cmdlet `id`: Field`.
    pub fn at(&self, field: &Field) -> String {
        format!(
            "{}:{}: {} `{}`: {}",
            self.file, field.line, self.cmdlet, self.identity, field.name
        )
    }

    /// A required field this record lacks.
    fn missing(&self, field: &str) -> ImportError {
        ImportError::Value {
            file: self.file.clone(),
            line: self.line,
            cmdlet: self.cmdlet,
            identity: self.identity.clone(),
            field: field.to_string(),
            msg: format!("missing: every {} object has it", self.cmdlet),
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} `{}`",
            self.file, self.line, self.cmdlet, self.identity
        )
    }
}

/// A `Get-CsCallParkOrbit` range.
#[derive(Debug, Clone)]
pub(super) struct LyncOrbit {
    pub origin: Origin,
    pub span: Span,
    /// The FQDN of the pool whose Call Park service holds the orbits, in lower case.
    pub service: String,
    /// Lync Server 2013's group call pickup numbers (`Type` GroupPickup): not call park.
    pub group_pickup: bool,
}

/// Where a `Get-CsCpsConfiguration` collection applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CpsScope {
    Global,
    /// `Site:<name>`: the Call Park services of the site's pools.
    Site(String),
    /// `Service:ApplicationServer:<fqdn>`: one pool's Call Park service (FQDN in lower case).
    Service(String),
}

/// What MaxCallPickupAttempts says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempts {
    /// Not in the export: Lync's default, 1.
    Absent,
    /// Empty (`$null`): Lync then ignores OnTimeoutURI and disconnects the call.
    Null,
    Value(u8),
}

/// A `Get-CsCpsConfiguration` collection of Call Park service settings.
#[derive(Debug, Clone)]
pub(super) struct Cps {
    pub origin: Origin,
    pub scope: CpsScope,
    pub pickup_timeout: Option<Duration>,
    pub music_on_hold: Option<bool>,
    pub attempts: Attempts,
    /// OnTimeoutURI, a `sip:` URI.
    pub on_timeout: Option<(String, Field)>,
    /// MusicOnHoldAudioContentId: a custom music file in Lync's file store.
    pub moh_content: Option<Field>,
}

/// Where a policy applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PolicyScope {
    Global,
    Site(String),
    /// A per-user policy (`Tag:<name>`), granted user by user.
    Tag(String),
}

/// A `Get-CsVoicePolicy` policy, for its EnableCallPark.
#[derive(Debug, Clone)]
pub(super) struct VoicePolicy {
    pub origin: Origin,
    pub scope: PolicyScope,
    pub enable_call_park: bool,
}

/// A `Get-CsTeamsCallParkPolicy` policy.
#[derive(Debug, Clone)]
pub(super) struct TeamsPolicy {
    pub origin: Origin,
    pub scope: PolicyScope,
    pub allow_call_park: bool,
    /// PickupRangeStart..=PickupRangeEnd.
    pub range: (u32, u32),
    pub park_timeout: (u32, Option<Field>),
}

/// Everything read from the exports.
#[derive(Debug, Clone, Default)]
pub(super) struct Exported {
    pub orbits: Vec<LyncOrbit>,
    pub cps: Vec<Cps>,
    pub voice_policies: Vec<VoicePolicy>,
    pub teams_policies: Vec<TeamsPolicy>,
}

/// The record's Identity, which every object of these cmdlets has.
fn origin(cmdlet: &'static str, file: &str, r: &Record) -> Result<Origin, ImportError> {
    match r.value("Identity") {
        Some(id) => Ok(Origin {
            cmdlet,
            file: file.to_string(),
            line: r.line,
            identity: id.value.trim().to_string(),
        }),
        None => Err(ImportError::Layout {
            file: file.to_string(),
            line: r.line,
            msg: format!(
                "a record without an Identity: is this the output of {cmdlet} (Export-Csv, or its list output)?"
            ),
        }),
    }
}

fn required<'r>(o: &Origin, r: &'r Record, name: &str) -> Result<&'r Field, ImportError> {
    r.value(name).ok_or_else(|| o.missing(name))
}

fn boolean(o: &Origin, f: &Field) -> Result<bool, ImportError> {
    match f.value.trim() {
        v if v.eq_ignore_ascii_case("true") => Ok(true),
        v if v.eq_ignore_ascii_case("false") => Ok(false),
        v => Err(o.refuse(f, format!("`{v}` is not True or False"))),
    }
}

fn integer(o: &Origin, f: &Field) -> Result<u32, ImportError> {
    f.value
        .trim()
        .parse()
        .map_err(|_| o.refuse(f, format!("`{}` is not a whole number", f.value.trim())))
}

/// A .NET TimeSpan as PowerShell prints it: `[d.]hh:mm:ss[.fffffff]`.
fn timespan(o: &Origin, f: &Field) -> Result<Duration, ImportError> {
    let v = f.value.trim();
    let bad = || {
        o.refuse(
            f,
            format!("`{v}` is not a time span: Lync writes it hh:mm:ss, like 00:01:30"),
        )
    };
    let (days, rest) = match v.split_once(':') {
        Some((h, _)) if h.contains('.') => {
            let (d, _) = v.split_once('.').ok_or_else(bad)?;
            (d.parse::<u64>().map_err(|_| bad())?, &v[d.len() + 1..])
        }
        _ => (0, v),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let [h, m, s] = parts.as_slice() else {
        return Err(bad());
    };
    let (s, frac) = s.split_once('.').unwrap_or((s, ""));
    let num = |x: &str, max: u64| {
        x.parse::<u64>()
            .ok()
            .filter(|n| *n <= max && !x.is_empty() && x.len() <= 2)
    };
    let (h, m, s) = (
        num(h, 23).ok_or_else(bad)?,
        num(m, 59).ok_or_else(bad)?,
        num(s, 59).ok_or_else(bad)?,
    );
    let nanos = if frac.is_empty() {
        0
    } else if frac.len() <= 7 && frac.bytes().all(|b| b.is_ascii_digit()) {
        // Ticks of 100 ns.
        frac.parse::<u32>().map_err(|_| bad())? * 10u32.pow(9 - frac.len() as u32)
    } else {
        return Err(bad());
    };
    Ok(Duration::new(days * 86_400 + h * 3600 + m * 60 + s, nanos))
}

/// A pool FQDN from a Call Park service id as Lync writes one (`ApplicationServer:<fqdn>`,
/// `service:ApplicationServer:<fqdn>`) or the bare FQDN, in lower case.
pub(super) fn service_fqdn(v: &str) -> Result<String, String> {
    let v = v.trim();
    let strip = |s: &str, p: &str| -> Option<String> {
        s.get(..p.len())
            .filter(|h| h.eq_ignore_ascii_case(p))
            .map(|_| s[p.len()..].to_string())
    };
    let v = strip(v, "service:").unwrap_or_else(|| v.to_string());
    let fqdn = match v.split_once(':') {
        Some((kind, fqdn)) if kind.eq_ignore_ascii_case("ApplicationServer") => fqdn.to_string(),
        Some((kind, _)) => {
            return Err(format!(
                "`{v}` is a {kind} service: the Call Park application runs on an ApplicationServer"
            ));
        }
        None => v,
    };
    if fqdn.is_empty()
        || !fqdn
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(format!("`{fqdn}` is not a pool's FQDN"));
    }
    Ok(fqdn.to_ascii_lowercase())
}

/// `Get-CsCallParkOrbit` records.
pub(super) fn orbits(files: &[(String, Vec<Record>)]) -> Result<Vec<LyncOrbit>, ImportError> {
    let mut out = Vec::new();
    for (file, records) in files {
        for r in records {
            let o = origin(ORBIT_CMDLET, file, r)?;
            let start = required(&o, r, "NumberRangeStart")?;
            let end = required(&o, r, "NumberRangeEnd")?;
            let orbit = |f: &Field| -> Result<Orbit, ImportError> {
                f.value
                    .trim()
                    .parse()
                    .map_err(|e| o.refuse(f, format!("{e}")))
            };
            let (first, last) = (orbit(start)?, orbit(end)?);
            let span = Span::new(first, last).map_err(|e| o.refuse(end, e.to_string()))?;
            if span.len() > MAX_RANGE_SIZE {
                return Err(o.refuse(
                    end,
                    format!(
                        "the range holds {} orbits; Lync allows at most {MAX_RANGE_SIZE}",
                        span.len()
                    ),
                ));
            }
            // Lync Server 2010 has no Type: every orbit range is call park.
            let group_pickup = match r.value("Type") {
                None => false,
                Some(t) if t.value.trim().eq_ignore_ascii_case("CallPark") => false,
                Some(t) if t.value.trim().eq_ignore_ascii_case("GroupPickup") => true,
                Some(t) => {
                    return Err(o.refuse(
                        t,
                        format!("`{}` is neither CallPark nor GroupPickup", t.value.trim()),
                    ));
                }
            };
            let service = ["CallParkServiceId", "CallParkService", "CallParkServerFqdn"]
                .iter()
                .find_map(|n| r.value(n))
                .ok_or_else(|| o.missing("CallParkServiceId"))?;
            let service = service_fqdn(&service.value).map_err(|m| o.refuse(service, m))?;
            out.push(LyncOrbit {
                origin: o,
                span,
                service,
                group_pickup,
            });
        }
    }
    Ok(out)
}

/// `Get-CsCpsConfiguration` records.
pub(super) fn cps(files: &[(String, Vec<Record>)]) -> Result<Vec<Cps>, ImportError> {
    let mut out = Vec::new();
    for (file, records) in files {
        for r in records {
            let o = origin(CPS_CMDLET, file, r)?;
            let id = r.value("Identity").expect("origin checked it");
            let scope = match o.identity.split_once(':') {
                None if o.identity.eq_ignore_ascii_case("Global") => CpsScope::Global,
                Some((s, name)) if s.eq_ignore_ascii_case("Site") && !name.is_empty() => {
                    CpsScope::Site(name.to_string())
                }
                Some((s, _)) if s.eq_ignore_ascii_case("Service") => {
                    CpsScope::Service(service_fqdn(&o.identity).map_err(|m| o.refuse(id, m))?)
                }
                _ => {
                    return Err(o.refuse(
                        id,
                        "Call Park service settings are Global, Site:<name> or Service:ApplicationServer:<pool FQDN>",
                    ));
                }
            };
            let pickup_timeout = match r.value("CallPickupTimeoutThreshold") {
                Some(f) => {
                    let d = timespan(&o, f)?;
                    if !(PICKUP_MIN..=PICKUP_MAX).contains(&d) {
                        return Err(o.refuse(
                            f,
                            format!(
                                "`{}` is out of Lync's bounds, 00:00:10 to 00:10:00",
                                f.value.trim()
                            ),
                        ));
                    }
                    Some(d)
                }
                None => None,
            };
            let music_on_hold = match r.value("EnableMusicOnHold") {
                Some(f) => Some(boolean(&o, f)?),
                None => None,
            };
            let attempts = match r.get("MaxCallPickupAttempts") {
                None => Attempts::Absent,
                Some(f) if f.value.trim().is_empty() => Attempts::Null,
                Some(f) => {
                    let n = integer(&o, f)?;
                    match u8::try_from(n).ok().filter(|n| ATTEMPTS.contains(n)) {
                        Some(n) => Attempts::Value(n),
                        None => {
                            return Err(
                                o.refuse(f, format!("{n} is out of Lync's bounds, 1 to 10"))
                            );
                        }
                    }
                }
            };
            let on_timeout = match r.value("OnTimeoutURI") {
                Some(f) => {
                    let v = f.value.trim();
                    let sip = v
                        .get(..4)
                        .filter(|s| s.eq_ignore_ascii_case("sip:"))
                        .map(|_| format!("sip:{}", &v[4..]));
                    match sip {
                        Some(uri)
                            if uri.len() > 4
                                && uri.contains('@')
                                && !uri.chars().any(char::is_whitespace) =>
                        {
                            Some((uri, f.clone()))
                        }
                        _ => {
                            return Err(o.refuse(
                                f,
                                format!(
                                    "`{v}` is not a SIP address: Lync takes a sip: URI, like sip:operator@contoso.com"
                                ),
                            ));
                        }
                    }
                }
                None => None,
            };
            out.push(Cps {
                scope,
                pickup_timeout,
                music_on_hold,
                attempts,
                on_timeout,
                moh_content: r.value("MusicOnHoldAudioContentId").cloned(),
                origin: o,
            });
        }
    }
    Ok(out)
}

/// The scope of a policy's Identity: `Global`, `Site:<name>` where `sites` allows it, or a
/// per-user `Tag:<name>` (also written bare).
fn policy_scope(o: &Origin, id: &Field, sites: bool) -> Result<PolicyScope, ImportError> {
    match o.identity.split_once(':') {
        None if o.identity.eq_ignore_ascii_case("Global") => Ok(PolicyScope::Global),
        None => Ok(PolicyScope::Tag(o.identity.clone())),
        Some((s, name)) if s.eq_ignore_ascii_case("Tag") && !name.is_empty() => {
            Ok(PolicyScope::Tag(name.to_string()))
        }
        Some((s, name)) if sites && s.eq_ignore_ascii_case("Site") && !name.is_empty() => {
            Ok(PolicyScope::Site(name.to_string()))
        }
        _ => Err(o.refuse(
            id,
            if sites {
                "a voice policy is Global, Site:<name> or Tag:<name>"
            } else {
                "a Teams call park policy is Global or Tag:<name>"
            },
        )),
    }
}

/// `Get-CsVoicePolicy` records.
pub(super) fn voice_policies(
    files: &[(String, Vec<Record>)],
) -> Result<Vec<VoicePolicy>, ImportError> {
    let mut out = Vec::new();
    for (file, records) in files {
        for r in records {
            let o = origin(VOICE_CMDLET, file, r)?;
            let scope = policy_scope(&o, r.value("Identity").expect("checked"), true)?;
            let enable_call_park = boolean(&o, required(&o, r, "EnableCallPark")?)?;
            out.push(VoicePolicy {
                origin: o,
                scope,
                enable_call_park,
            });
        }
    }
    Ok(out)
}

/// `Get-CsTeamsCallParkPolicy` records.
pub(super) fn teams_policies(
    files: &[(String, Vec<Record>)],
) -> Result<Vec<TeamsPolicy>, ImportError> {
    let mut out = Vec::new();
    for (file, records) in files {
        for r in records {
            let o = origin(TEAMS_CMDLET, file, r)?;
            let scope = policy_scope(&o, r.value("Identity").expect("checked"), false)?;
            let allow_call_park = boolean(&o, required(&o, r, "AllowCallPark")?)?;
            // Teams' defaults when the export leaves a value out.
            let bounded = |name: &str,
                           default: u32,
                           bounds: &std::ops::RangeInclusive<u32>|
             -> Result<(u32, Option<Field>), ImportError> {
                match r.value(name) {
                    None => Ok((default, None)),
                    Some(f) => {
                        let n = integer(&o, f)?;
                        if !bounds.contains(&n) {
                            return Err(o.refuse(
                                f,
                                format!(
                                    "{n} is out of Teams' bounds, {} to {}",
                                    bounds.start(),
                                    bounds.end()
                                ),
                            ));
                        }
                        Ok((n, Some(f.clone())))
                    }
                }
            };
            let (start, _) = bounded("PickupRangeStart", 10, &PICKUP_CODES)?;
            let (end, end_field) = bounded("PickupRangeEnd", 99, &PICKUP_CODES)?;
            if start >= end {
                let msg =
                    format!("PickupRangeStart {start} must be smaller than PickupRangeEnd {end}");
                return Err(match &end_field {
                    Some(f) => o.refuse(f, msg),
                    None => o.missing("PickupRangeEnd"),
                });
            }
            let park_timeout = bounded("ParkTimeoutSeconds", 300, &PARK_TIMEOUT)?;
            out.push(TeamsPolicy {
                origin: o,
                scope,
                allow_call_park,
                range: (start, end),
                park_timeout,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
