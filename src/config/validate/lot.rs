//! `[[lot]]`: names, each lot's settings (`[park]` with its overrides), its park codes, and
//! its orbits.

use super::{Bad, park};
use crate::config::{ConfigError, Lot, ParkConfig, RawConfig};
use crate::orbit::OrbitTable;
use crate::park::GENERAL_LOT;

/// `[[lot]]`: names, and each lot's park settings (`[park]` with the lot's overrides).
pub(super) fn check(raw: &RawConfig, bad: Bad) -> Result<Vec<Lot>, ConfigError> {
    let mut lots: Vec<Lot> = Vec::new();
    for (i, l) in raw.lot.iter().enumerate() {
        let key = |k: &str| format!("lot[{i}].{k}");
        if l.name.trim().is_empty() || l.name.contains([',', ' ', '/', '"', '<', '>']) {
            return Err(bad(
                key("name"),
                format!(
                    "`{}` is not a lot name: use letters, digits, - or _",
                    l.name
                ),
            ));
        }
        if l.name == GENERAL_LOT {
            return Err(bad(
                key("name"),
                format!(
                    "`{GENERAL_LOT}` names the ranges without a lot; set its settings in [park]"
                ),
            ));
        }
        if lots.iter().any(|x| x.name == l.name) {
            return Err(bad(
                key("name"),
                format!("lot `{}` is defined twice", l.name),
            ));
        }
        let mut p = raw.park.clone();
        if let Some(v) = l.pickup_timeout {
            p.pickup_timeout = v;
        }
        if let Some(v) = l.max_pickup_attempts {
            p.max_pickup_attempts = v;
        }
        if let Some(v) = l.ringback_ring_time {
            p.ringback_ring_time = v;
        }
        match l.on_timeout.as_deref() {
            Some("none") => p.on_timeout = None,
            Some(v) => p.on_timeout = Some(v.to_string()),
            None => {}
        }
        // A lot's music replaces the general one as a whole.
        if let Some(v) = l.music_on_hold {
            p.music_on_hold = v;
            if !v {
                p.music_on_hold_class = None;
                p.music_on_hold_file = None;
            }
        }
        if let Some(v) = &l.music_on_hold_class {
            p.music_on_hold_class = Some(v.clone());
            p.music_on_hold_file = l.music_on_hold_file.clone();
        } else if let Some(v) = &l.music_on_hold_file {
            p.music_on_hold_file = Some(v.clone());
            p.music_on_hold_class = None;
        }
        if let Some(v) = &l.caller_id_prefix {
            p.caller_id_prefix = v.clone();
        }
        if let Some(v) = l.on_busy_orbit {
            p.on_busy_orbit = v;
        }
        match l.page.as_deref() {
            Some("none") => p.page = None,
            Some(v) => p.page = Some(v.to_string()),
            None => {}
        }
        if let Some(v) = l.page_repeat {
            p.page_repeat = v;
        }
        if let Some(v) = l.page_interval {
            p.page_interval = v;
        }
        let park_codes = l
            .park_codes
            .clone()
            .unwrap_or_else(|| vec![format!("{}-{}", raw.park.park_code, l.name)]);
        if park_codes.is_empty() {
            return Err(bad(
                key("park_codes"),
                format!(
                    "lot `{}` has no park code: leave park_codes out for `{}-{}`",
                    l.name, raw.park.park_code, l.name
                ),
            ));
        }
        let park = park::check(&p, &format!("lot[{i}]"), bad)?;
        lots.push(Lot {
            name: l.name.clone(),
            park_codes,
            park,
        });
    }
    Ok(lots)
}

/// Every park code parks into exactly one lot.
pub(super) fn check_park_codes(
    park: &ParkConfig,
    lots: &[Lot],
    bad: Bad,
) -> Result<(), ConfigError> {
    // Every park code parks into exactly one lot.
    let mut codes: Vec<(String, String, String)> = vec![(
        park.park_code.clone(),
        "park.park_code".into(),
        GENERAL_LOT.into(),
    )];
    for (i, l) in lots.iter().enumerate() {
        for c in &l.park_codes {
            if c.trim().is_empty() || c.chars().any(char::is_whitespace) {
                return Err(bad(
                    format!("lot[{i}].park_codes"),
                    format!(
                        "park code `{c}` of lot `{}` is empty or has white space",
                        l.name
                    ),
                ));
            }
            if let Some((_, k, lot)) = codes.iter().find(|(x, _, _)| x == c) {
                return Err(bad(
                    format!("lot[{i}].park_codes"),
                    format!(
                        "park code `{c}` of lot `{}` is already {k} (lot `{lot}`): a code parks into one lot",
                        l.name
                    ),
                ));
            }
            codes.push((c.clone(), format!("lot[{i}].park_codes"), l.name.clone()));
        }
    }
    Ok(())
}

/// Every lot has orbits.
pub(super) fn check_orbits(lots: &[Lot], orbits: &OrbitTable, bad: Bad) -> Result<(), ConfigError> {
    for (i, l) in lots.iter().enumerate() {
        if !orbits
            .ranges()
            .iter()
            .any(|r| r.lot.as_deref() == Some(&l.name))
        {
            return Err(bad(
                format!("lot[{i}].name"),
                format!(
                    "lot `{}` has no orbits: name it in an [[orbit_range]] (lot = \"{}\")",
                    l.name, l.name
                ),
            ));
        }
    }

    Ok(())
}
