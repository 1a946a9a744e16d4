//! The contexts phones dial from: each must reach `[callpark]` for the park code and the
//! orbits, in the files (the lint's match order) and, with AMI, in what Asterisk has loaded.

use std::path::Path;

use super::Facts;
use super::ami::first_extension;
use super::checks::{DIALPLAN_RELOAD, include_path, regenerate};
use super::files::{Etc, Loaded};
use crate::config::{Config, PbxConfig};
use crate::doctor::{Check, Options};
use crate::lint::asterisk::{self as ast_lint, Dialplan, Entry};
use crate::lint::{Report, Target};

/// The context of the generated include.
const CALLPARK: &str = "callpark";

/// The contexts phones dial from, each with the pjsip.conf endpoints that start there: as
/// given, else every phone endpoint's `context` (PJSIP's default is `default`).
pub fn phone_contexts(opts: &Options, etc: &Etc) -> Vec<(String, Vec<String>)> {
    if !opts.contexts.is_empty() {
        return opts
            .contexts
            .iter()
            .map(|c| (c.clone(), Vec::new()))
            .collect();
    }
    let Some(pjsip) = etc.pjsip.read() else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for s in pjsip.phone_endpoints() {
        let ctx = pjsip.value(s, "context").unwrap_or("default").to_string();
        match out.iter_mut().find(|(c, _)| *c == ctx) {
            Some((_, eps)) => eps.push(s.name.clone()),
            None => out.push((ctx, vec![s.name.clone()])),
        }
    }
    out
}

/// The codes a park is dialled or transferred to on this pool: the general one, and those of
/// the lots with orbits here (as the include has them).
pub fn park_codes(cfg: &Config, pbx: &PbxConfig) -> Vec<String> {
    let mut codes = vec![cfg.park.park_code.clone()];
    for l in &cfg.lots {
        if cfg
            .orbits
            .pool_ranges(&pbx.name)
            .any(|r| r.lot.as_ref() == Some(&l.name))
        {
            codes.extend(l.park_codes.iter().cloned());
        }
    }
    codes
}

/// Whether Asterisk's extension `name` matches `dialled` exactly, as `ast_extension_match`
/// does: a plain name is compared without its dashes; after `_`, `X` `Z` `N` (either case)
/// are digits 0-9, 1-9 and 2-9, `[...]` a set, `.` one or more of anything, `!` zero or more.
pub(super) fn exten_matches(name: &str, dialled: &str) -> bool {
    let d: Vec<u8> = dialled.bytes().filter(|&b| b != b'-').collect();
    match name.strip_prefix('_') {
        None => name.bytes().filter(|&b| b != b'-').eq(d.iter().copied()),
        Some(p) => pattern(p.as_bytes(), &d),
    }
}

fn pattern(p: &[u8], d: &[u8]) -> bool {
    let Some((&c, rest)) = p.split_first() else {
        return d.is_empty();
    };
    match c {
        // Outside a set a dash only groups digits for the eye.
        b'-' => pattern(rest, d),
        b'.' => (1..=d.len()).any(|i| pattern(rest, &d[i..])),
        b'!' => (0..=d.len()).any(|i| pattern(rest, &d[i..])),
        b'[' => {
            let Some(end) = rest.iter().position(|&b| b == b']') else {
                return false;
            };
            let set = &rest[..end];
            let Some((&x, more)) = d.split_first() else {
                return false;
            };
            let mut i = 0;
            let mut hit = false;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= (set[i]..=set[i + 2]).contains(&x);
                    i += 3;
                } else {
                    hit |= set[i] == x;
                    i += 1;
                }
            }
            hit && pattern(&rest[end + 1..], more)
        }
        _ => {
            let Some((&x, more)) = d.split_first() else {
                return false;
            };
            let ok = match c.to_ascii_uppercase() {
                b'X' => x.is_ascii_digit(),
                b'Z' => (b'1'..=b'9').contains(&x),
                b'N' => (b'2'..=b'9').contains(&x),
                _ => x == c,
            };
            ok && pattern(rest, more)
        }
    }
}

/// Every check of the phones' contexts.
pub(super) fn phones(cfg: &Config, pbx: &PbxConfig, opts: &Options, f: &Facts) -> Vec<Check> {
    let phones = phone_contexts(opts, &f.etc);
    if phones.is_empty() {
        let why = match &f.etc.pjsip {
            Loaded::Read(_) => "pjsip.conf has no phone endpoint",
            _ => "pjsip.conf was not read",
        };
        return vec![Check::skip(
            "context",
            format!("{why}: pass --context NAME for the context the phones dial from"),
        )];
    }
    let mut out = Vec::new();
    if let Loaded::Unreadable(e) = &f.etc.dialplan {
        out.push(Check::fail(
            "context",
            format!("the dial plan cannot be read as Asterisk reads it ({e}): the phones' contexts were not checked in the files"),
            vec![],
        ));
    }
    for (ctx, endpoints) in &phones {
        let who = if endpoints.is_empty() {
            format!("context {ctx}")
        } else {
            format!("context {ctx} (endpoints {})", endpoints.join(", "))
        };
        if let Loaded::Read(dp) = &f.etc.dialplan {
            out.extend(in_files(cfg, pbx, dp, (ctx, &who), &include_path(&f.etc)));
        }
        out.extend(live(pbx, f, ctx));
    }
    out
}

/// The context in extensions.conf: it reaches `[callpark]`, the park codes go there, and no
/// extension before callpark's takes an orbit (the lint).
fn in_files(
    cfg: &Config,
    pbx: &PbxConfig,
    dp: &Dialplan,
    (ctx, who): (&str, &str),
    include_to: &Path,
) -> Vec<Check> {
    if dp.context(ctx).is_none() {
        return vec![Check::fail(
            "context",
            format!("phones dial from {who}, which extensions.conf does not have"),
            vec![
                format!("[{ctx}]   (in extensions.conf, with include => callpark in it)"),
                "(or --context NAME for the context the phones dial from)".into(),
            ],
        )];
    }
    let order = ast_lint::search_order(dp, ctx);
    if !order
        .iter()
        .any(|e| e.context.name.eq_ignore_ascii_case(CALLPARK))
    {
        let includes = dp.context(ctx).is_some_and(|c| {
            c.includes
                .iter()
                .any(|i| i.context.eq_ignore_ascii_case(CALLPARK))
        });
        let said = if dp.context(CALLPARK).is_some() {
            format!(
                "phones dial from {who}, which does not include [callpark]: no park code or orbit reaches callpark"
            )
        } else {
            format!(
                "phones dial from {who}, but no file extensions.conf reads defines [callpark] (see include)"
            )
        };
        // With the include line there already, the fix is the include file's (see include).
        let fix = if includes {
            Vec::new()
        } else {
            vec![
                format!("include => callpark   (in [{ctx}] of extensions.conf)"),
                DIALPLAN_RELOAD.into(),
            ]
        };
        return vec![Check::fail("context", said, fix)];
    }
    let mut out = vec![Check::ok(
        "context",
        format!("phones dial from {who}, which includes [callpark]"),
    )];
    for code in park_codes(cfg, pbx) {
        out.push(park_code(cfg, pbx, &order, ctx, &code, include_to));
    }
    out.extend(lint(cfg, dp, ctx));
    out
}

/// Where the park code dialled in `ctx` goes: the first extension in Asterisk's order that
/// matches it.
fn park_code(
    cfg: &Config,
    pbx: &PbxConfig,
    order: &[Entry],
    ctx: &str,
    code: &str,
    include_to: &Path,
) -> Check {
    let won = order
        .iter()
        .find(|e| !e.switch && exten_matches(&e.exten.name, code));
    let Some(e) = won else {
        return Check::fail(
            "park code",
            format!(
                "context {ctx}: no extension runs the park code {code}: the include is older than the configuration"
            ),
            vec![regenerate(cfg, pbx, include_to), DIALPLAN_RELOAD.into()],
        );
    };
    let at = format!("{}:{}", e.exten.file, e.exten.line);
    if e.context.name.eq_ignore_ascii_case(CALLPARK) {
        return Check::ok(
            "park code",
            format!("context {ctx}: the park code {code} reaches [callpark] ({at})"),
        );
    }
    let fix = match e.via {
        None => format!(
            "remove or rename `exten => {}` of [{ctx}] ({at}): a context's own extensions are tried before its includes",
            e.exten.name
        ),
        Some(inc) => format!(
            "include => callpark   (above include => {} in [{ctx}], {}:{})",
            inc.context, inc.file, inc.line
        ),
    };
    Check::fail(
        "park code",
        format!(
            "context {ctx}: the park code {code} runs {}@{} ({at}) before callpark's",
            e.exten.name, e.context.name
        ),
        vec![fix, DIALPLAN_RELOAD.into()],
    )
}

/// The lint on the context: a rule tried before callpark's extensions that takes an orbit
/// sends a retrieve (or a park onto it) somewhere else.
fn lint(cfg: &Config, dp: &Dialplan, ctx: &str) -> Vec<Check> {
    let mut report = Report::new(Target::from_table(&cfg.orbits));
    if let Err(e) = ast_lint::check(dp, ctx, &mut report) {
        return vec![Check::fail("lint", format!("context {ctx}: {e}"), vec![])];
    }
    crate::doctor::lint_checks(
        &report,
        ctx,
        "",
        format!("context {ctx}: every orbit reaches callpark's extensions"),
    )
}

/// What Asterisk has loaded runs for each park code dialled in `ctx` (AMI only).
fn live(pbx: &PbxConfig, f: &Facts, ctx: &str) -> Vec<Check> {
    let Some(am) = f.ami.as_ref().filter(|a| a.connect.is_none()) else {
        return Vec::new();
    };
    let stasis = format!("Stasis({},", pbx.app);
    am.park_codes
        .iter()
        .filter(|(c, _, _)| c == ctx)
        .map(|(_, code, out)| match out {
            Err(e) => Check::skip("live", format!("context {ctx}: AMI did not show {code}: {e}")),
            Ok(text) => match first_extension(text) {
                Some(x) if x.steps.iter().any(|s| s.contains(&stasis)) => Check::ok(
                    "live",
                    format!(
                        "context {ctx}: Asterisk runs the park code {code} as {}@{}, into callpark's Stasis app",
                        x.exten, x.context
                    ),
                ),
                Some(x) => Check::fail(
                    "live",
                    format!(
                        "context {ctx}: Asterisk runs the park code {code} as {}@{}{}, which never enters Stasis({})",
                        x.exten,
                        x.context,
                        x.at.map(|a| format!(" ({a})")).unwrap_or_default(),
                        pbx.app
                    ),
                    vec![format!("{DIALPLAN_RELOAD}   (once the files are right)")],
                ),
                None => Check::fail(
                    "live",
                    format!("context {ctx}: the dial plan Asterisk has loaded has no extension {code} reachable from there"),
                    vec![format!("{DIALPLAN_RELOAD}   (once the files are right)")],
                ),
            },
        })
        .collect()
}
