//! The orbit ranges of Lync and Teams, the lots they need, and the checks across them.

use super::*;

/// The orbit ranges of `Get-CsCallParkOrbit`, and a lot for each Call Park service whose
/// settings are its own.
pub(super) fn lync_orbits<'a>(
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
pub(super) fn teams_orbits<'a, 'e>(
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
pub(super) fn check_overlaps(ranges: &[RangePlan]) -> Result<(), ImportError> {
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
