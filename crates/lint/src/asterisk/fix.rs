//! The fix proposed for an Asterisk finding: callpark's extensions where Asterisk tries them
//! before the catching one, or, when that cannot work, the orbits moved to a free range.

use std::cmp::Ordering;

use thiserror::Error;

use super::Context;
use super::check::is_callpark;
use super::order::{Entry, ext_cmp};
use super::pattern::{exten_matches, exten_regex};
use crate::automaton::{Dialect, Matcher, NumRange};
use crate::{Kind, Report, Source};

/// Gives each finding in `root` still without a fix one that can be pasted. `kinds` (`classify`
/// of each entry of `order`) decides how: callpark's extensions go in front of a catch-all, but
/// a destination keeps its numbers, so its orbits move instead, as they do when the extensions
/// added would collide with one the context has.
pub(super) fn propose(
    order: &[Entry],
    kinds: &[Option<(Kind, String)>],
    root: &Context,
    cp_ctx: Option<&str>,
    report: &mut Report,
) {
    let targets = report.targets.clone();
    // A range to move to is free when no destination of this context matches any of it
    // (catch-alls there are fine: the usual fix protects the orbits from them).
    let mut is_free = |c: &NumRange| {
        order.iter().zip(kinds).all(|(e, k)| {
            !matches!(k, Some((Kind::Conflicts, _))) || exten_matches(&e.exten.name, c).is_empty()
        })
    };
    let ranges: Vec<NumRange> = targets.iter().map(|t| t.range.clone()).collect();
    for f in report
        .findings
        .iter_mut()
        .filter(|f| f.source == Source::Asterisk && f.scope == root.name && f.fix.is_empty())
    {
        let at = order.iter().position(|e| {
            !e.switch
                && e.exten.file == f.file
                && e.exten.line == f.line
                && f.rule == format!("{}@{}", e.exten.name, e.context.name)
        });
        if let Some((k, why)) = at.and_then(|i| kinds[i].clone()) {
            f.kind = k;
            f.kind_why = Some(why);
        }
        if f.kind == Kind::Catches {
            match fix_for(f, order, root, cp_ctx, &targets) {
                Ok(fix) => {
                    f.fix = fix;
                    continue;
                }
                Err(collision) => {
                    f.kind = Kind::Conflicts;
                    f.kind_why = Some(collision.to_string());
                }
            }
        }
        f.fix = f
            .caught
            .iter()
            .map(|(t, _)| {
                let free = crate::free_ranges(&ranges[*t], &ranges, 3, &mut is_free);
                crate::move_fix(&ranges[*t], &free, &format!("[{}]", root.name))
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
}

fn fix_for(
    f: &crate::Finding,
    order: &[Entry],
    root: &Context,
    cp_ctx: Option<&str>,
    targets: &[crate::Target],
) -> Result<String, Collision> {
    let cp = cp_ctx.unwrap_or("callpark");
    let goto = format!("Goto({cp},${{EXTEN}},1)");
    if f.rule == "(no extension)" {
        return Ok(match cp_ctx {
            Some(_) => format!("in [{}] add: include => {cp}", root.name),
            None => format!(
                "generate it with `callpark dialplan asterisk > callpark.conf`, add `#include callpark.conf` to extensions.conf and, in [{}]: include => callpark",
                root.name
            ),
        });
    }
    let Some(catcher) = order.iter().find(|e| {
        e.exten.file == f.file
            && e.exten.line == f.line
            && f.rule == format!("{}@{}", e.exten.name, e.context.name)
    }) else {
        return Ok(String::new());
    };
    // Callpark's extension for these orbits, later in the search order, if any.
    let cp_entry = order
        .iter()
        .find(|e| is_callpark(&e.context.name, e.exten.app1.as_deref().unwrap_or("")));
    if let (Some(ci), Some(cpe)) = (catcher.via, cp_entry.and_then(|c| c.via.map(|v| (c, v)))) {
        let (_, cv) = cpe;
        if !std::ptr::eq(ci, cv) {
            return Ok(format!(
                "in [{}] ({}:{}) move `include => {}` above `include => {}` (line {})",
                root.name, cv.file, cv.line, cv.context, ci.context, ci.line
            ));
        }
    }
    // Otherwise add extensions to the catcher's context that Asterisk sorts before it.
    let ctx = &catcher.context.name;
    // The extensions to add, as names.
    let mut lines: Vec<String> = Vec::new();
    let mut exact = Vec::new();
    for (t, runs) in &f.caught {
        let range: &NumRange = &targets[*t].range;
        for p in crate::fix::asterisk_patterns(range, runs) {
            if ext_cmp(&p, &catcher.exten.name) == Ordering::Less {
                lines.push(p);
            } else {
                exact.push((range.clone(), p));
            }
        }
    }
    for (range, p) in exact {
        let re = exten_regex(&p).and_then(|r| Matcher::new(&r, Dialect::Rust).ok());
        let Some(mut m) = re else { continue };
        let set = m.matching(&range).unwrap_or_default();
        if set.count() <= 100 {
            for v in set.values() {
                lines.push(range.text(v));
            }
        } else {
            return Ok(format!(
                "`{}` is more specific than any pattern for these orbits: narrow or remove it in [{ctx}] ({}:{})",
                catcher.exten.name, catcher.exten.file, catcher.exten.line
            ));
        }
    }
    // Asterisk refuses a second extension of the same name and priority in a context
    // ("already in use") and the existing one loses its priority 1 (issue 10): never propose one.
    if let Some(why) = collision(catcher.context, &lines) {
        return Err(why);
    }
    let lines: Vec<String> = lines
        .into_iter()
        .map(|p| format!("exten => {p},1,{goto}"))
        .collect();
    Ok(format!(
        "in [{ctx}] add (Asterisk sorts these before `{}`):\n{}",
        catcher.exten.name,
        lines.join("\n")
    ))
}

/// An insertion fix that cannot be proposed: an extension it would add (`exten`, priority 1)
/// clashes with one the context has (`old`, at `file:line`), so the orbits move instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "the fix would add `exten => {exten},1` to [{context}], which already has `{old}` ({file}:{line}): Asterisk refuses the second one and the first loses its priority 1; move the orbits instead"
)]
struct Collision {
    exten: String,
    context: String,
    old: String,
    file: String,
    line: usize,
}

/// Why adding extensions `names` (priority 1, no caller-id match) to `ctx` would clash with
/// one it has: equal as `ext_cmp` compares them (`_11[0-9]X` is `_11XX` to Asterisk).
fn collision(ctx: &Context, names: &[String]) -> Option<Collision> {
    names.iter().find_map(|p| {
        ctx.extens
            .iter()
            .find(|e| e.cid.is_none() && e.app1.is_some() && ext_cmp(&e.name, p) == Ordering::Equal)
            .map(|old| Collision {
                exten: p.clone(),
                context: ctx.name.clone(),
                old: old.name.clone(),
                file: old.file.clone(),
                line: old.line,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asterisk::parse_str;

    /// The phones' context reaches callpark's park code through a `Goto` of its own (as the
    /// testbed's `6000` alias does) before it includes callpark: a fix for a rule there that
    /// takes orbits must jump to callpark's context, not back into the phones' own.
    #[test]
    fn a_fix_goes_to_callparks_context_not_to_a_context_that_jumps_there() {
        let dp = parse_str(
            "[callpark]\nexten => park,1,Stasis(callpark,park)\nexten => _6XX,1,Stasis(callpark,retrieve,${EXTEN})\n\
             [park-in]\nexten => 6000,1,Goto(callpark,park,1)\nexten => _X.,1,Dial(PJSIP/${EXTEN}@trunk)\ninclude => callpark\n",
            "x.conf",
        )
        .unwrap();
        let table = crate::orbits_from_list("601-699").unwrap();
        let mut report = crate::Report::new(crate::Target::from_table(&table));
        crate::asterisk::check(&dp, "park-in", &mut report).unwrap();
        let f = report
            .findings
            .iter()
            .find(|f| f.rule.starts_with("_X.@park-in"))
            .expect("the catch-all takes the orbits");
        assert!(f.fix.contains("Goto(callpark,${EXTEN},1)"), "{}", f.fix);
        assert!(!f.fix.contains("Goto(park-in,"), "{}", f.fix);
    }

    #[test]
    fn a_fix_equal_to_an_existing_extension_collides() {
        let dp = parse_str(
            "[f]\nexten => 1100,1,Goto(ivr,s,1)\nexten => _11[0-9]X,1,NoOp()\n same => n,Goto(ivr,s,1)\nexten => 1101,hint,PJSIP/1101\n",
            "x.conf",
        )
        .unwrap();
        let c = dp.context("f").unwrap();
        let why = collision(c, &["1100".to_string()]).unwrap().to_string();
        assert!(why.contains("already has `1100` (x.conf:2)"), "{why}");
        // `ext_cmp` equality, not spelling: Asterisk takes `_11XX` for `_11[0-9]X`.
        assert!(collision(c, &["_11XX".to_string()]).is_some());
        // A hint is not a priority 1: adding `1101,1` is what Asterisk expects.
        assert!(collision(c, &["1101".to_string(), "_110Z".to_string()]).is_none());
        // `same =>` keeps the commas of its application.
        assert_eq!(c.extens[1].apps, ["NoOp()", "Goto(ivr,s,1)"]);
    }
}
