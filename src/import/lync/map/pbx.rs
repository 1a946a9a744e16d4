//! The `[[pbx]]` entries that `--map` names, and how a PBX kind is written.

use super::*;

/// The `[[pbx]]` of each `--map` target that takes orbits, with its kind.
pub(super) fn resolve_pbx(
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
pub(in crate::import::lync) fn a_pbx(k: PbxKind) -> &'static str {
    match k {
        PbxKind::Asterisk => "an Asterisk",
        PbxKind::Freeswitch => "a FreeSWITCH",
    }
}

pub(in crate::import::lync) fn kind_str(k: PbxKind) -> &'static str {
    match k {
        PbxKind::Asterisk => "asterisk",
        PbxKind::Freeswitch => "freeswitch",
    }
}
