//! `[[orbit_range]]`: the orbit table.

use super::Bad;
use crate::config::{ConfigError, Lot, RawConfig};
use crate::orbit::{Orbit, OrbitRange, OrbitTable, Span, TableError};

/// `[[orbit_range]]`: each range, the lot and pool it names, and the table they make.
pub(super) fn check(raw: &RawConfig, lots: &[Lot], bad: Bad) -> Result<OrbitTable, ConfigError> {
    let mut ranges = Vec::new();
    for (i, r) in raw.orbit_range.iter().enumerate() {
        let first: Orbit = r.first.parse().map_err(|e| {
            bad(
                format!("orbit_range[{i}].first"),
                format!("range `{}`: {e}", r.name),
            )
        })?;
        let last: Orbit = r.last.parse().map_err(|e| {
            bad(
                format!("orbit_range[{i}].last"),
                format!("range `{}`: {e}", r.name),
            )
        })?;
        let span = Span::new(first, last).map_err(|e| {
            bad(
                format!("orbit_range[{i}].last"),
                format!("range `{}`: {e}", r.name),
            )
        })?;
        if let Some(l) = r
            .lot
            .as_deref()
            .filter(|l| !lots.iter().any(|x| x.name == *l))
        {
            return Err(bad(
                format!("orbit_range[{i}].lot"),
                format!(
                    "range `{}` names lot `{l}`, which no [[lot]] defines: add [[lot]] name = \"{l}\"",
                    r.name
                ),
            ));
        }
        if !raw.pbx.is_empty() && !raw.pbx.iter().any(|p| p.name == r.pool) {
            return Err(bad(
                format!("orbit_range[{i}].pool"),
                format!(
                    "range `{}` names pool `{}`, which no [[pbx]] entry defines",
                    r.name, r.pool
                ),
            ));
        }
        ranges.push(OrbitRange {
            name: r.name.clone(),
            span,
            pool: r.pool.clone(),
            lot: r.lot.clone(),
        });
    }
    let orbits = OrbitTable::new(ranges).map_err(|e| {
        let idx = |name: &str| raw.orbit_range.iter().position(|r| r.name == name);
        let key = match &e {
            TableError::TooLarge { name, .. } => idx(name).map(|i| format!("orbit_range[{i}]")),
            TableError::Overlap { b, .. } => idx(b).map(|i| format!("orbit_range[{i}]")),
            TableError::DuplicateName(name) => raw
                .orbit_range
                .iter()
                .rposition(|r| &r.name == name)
                .map(|i| format!("orbit_range[{i}].name")),
        };
        bad(key.unwrap_or_else(|| "orbit_range".into()), e.to_string())
    })?;

    Ok(orbits)
}
