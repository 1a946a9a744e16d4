//! The dial-plan half of Asterisk's setup: which contexts the phones dial from (pjsip.conf),
//! and the edits that make those contexts reach callpark's include (extensions.conf and the
//! files it includes).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::BadInput;
use super::ini::{Conf, Kind, Section};

/// The context the include file defines (`[callpark]` of `pbx::asterisk::dialplan`).
pub const INCLUDE_CONTEXT: &str = "callpark";

/// A configuration file and its text.
#[derive(Debug, Clone)]
pub struct File {
    pub path: PathBuf,
    pub text: String,
}

/// `main` under `etc` and every file it includes (`#include`, `#tryinclude`), depth first, in
/// the order Asterisk reads them. Asterisk resolves a relative name against its configuration
/// directory, not against the including file. Names with wildcards are not followed (a context
/// defined only in such a file is reported missing, and `--context` still names it).
/// `skip` (the include file setup writes) is not read: setup writes it anew.
pub fn read_with_includes(etc: &Path, main: &str, skip: &Path) -> Result<Vec<File>, BadInput> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let first = etc.join(main);
    let Some(text) = super::read(&first)? else {
        return Ok(out);
    };
    walk(etc, first, text, skip, &mut seen, &mut out)?;
    Ok(out)
}

fn walk(
    etc: &Path,
    path: PathBuf,
    text: String,
    skip: &Path,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<File>,
) -> Result<(), BadInput> {
    if !seen.insert(path.clone()) {
        return Ok(());
    }
    let conf = Conf::parse(&text);
    out.push(File {
        path: path.clone(),
        text,
    });
    for i in 0..conf.len() {
        let Kind::Directive { word, arg } = conf.kind(i) else {
            continue;
        };
        if !matches!(word.as_str(), "include" | "tryinclude") || arg.contains(['*', '?', '[']) {
            continue;
        }
        let p = etc.join(arg);
        if p == skip {
            continue;
        }
        if let Some(t) = super::read(&p)? {
            walk(etc, p, t, skip, seen, out)?;
        }
    }
    Ok(())
}

/// Where a phone context came from, for the messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
    pub what: String,
}

/// The contexts of pjsip.conf's phone endpoints, in file order, each with where it was set.
/// Endpoints that a `type = identify` section names are trunks (matched by address or
/// header, not by a phone's registration) and are left out: giving them park would let
/// outside callers park and retrieve. Returns the contexts and a note per trunk left out.
pub fn phone_contexts(pjsip: &[File]) -> (Vec<(String, Origin)>, Vec<String>) {
    // Every section of every file, with the file it is in, so templates can be found.
    let confs: Vec<(usize, Conf)> = pjsip
        .iter()
        .enumerate()
        .map(|(n, f)| (n, Conf::parse(&f.text)))
        .collect();
    let all: Vec<(usize, &Conf, Section)> = confs
        .iter()
        .flat_map(|(n, c)| c.sections().into_iter().map(move |s| (*n, c, s)))
        .collect();
    // A key of a section with its templates: the section's own first, then its templates',
    // the last template named first (Asterisk copies them in order, later ones override).
    fn lookup<'a>(
        all: &'a [(usize, &'a Conf, Section)],
        at: usize,
        key: &str,
        depth: u8,
    ) -> Option<(usize, usize, &'a str)> {
        let (n, c, s) = &all[at];
        if let Some((line, v)) = c.get(s, key) {
            return Some((*n, line, v));
        }
        if depth > 8 {
            return None;
        }
        for t in s.options.iter().rev().filter(|o| *o != "!" && *o != "+") {
            let found = all[..at]
                .iter()
                .rposition(|(_, _, x)| &x.name == t)
                .and_then(|ti| lookup(all, ti, key, depth + 1));
            if found.is_some() {
                return found;
            }
        }
        None
    }
    let typ = |i: usize| lookup(&all, i, "type", 0).map(|(_, _, v)| v.to_ascii_lowercase());
    let trunks: HashSet<String> = (0..all.len())
        .filter(|&i| !all[i].2.is_template() && typ(i).as_deref() == Some("identify"))
        .filter_map(|i| lookup(&all, i, "endpoint", 0).map(|(_, _, v)| v.to_string()))
        .collect();
    let mut contexts: Vec<(String, Origin)> = Vec::new();
    let mut notes = Vec::new();
    for i in 0..all.len() {
        let (n, _, s) = &all[i];
        if s.is_template() || typ(i).as_deref() != Some("endpoint") {
            continue;
        }
        // PJSIP's own default when an endpoint sets none.
        let (ctx, origin) = match lookup(&all, i, "context", 0) {
            Some((fnum, line, v)) => (v.to_string(), (fnum, line)),
            None => ("default".to_string(), (*n, s.header)),
        };
        if trunks.contains(&s.name) {
            notes.push(format!(
                "{}:{}: endpoint {} is a trunk (an identify section names it): its context {ctx} is left as it is",
                pjsip[*n].path.display(),
                s.header + 1,
                s.name
            ));
            continue;
        }
        if !contexts.iter().any(|(c, _)| *c == ctx) {
            contexts.push((
                ctx,
                Origin {
                    file: pjsip[origin.0].path.clone(),
                    line: origin.1 + 1,
                    what: format!("endpoint {}", s.name),
                },
            ));
        }
    }
    (contexts, notes)
}

/// Every context defined in the dial-plan files (`general` and `globals` are settings).
pub fn defined_contexts(files: &[File]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in files {
        for s in Conf::parse(&f.text).sections() {
            if !matches!(s.name.as_str(), "general" | "globals") && !out.contains(&s.name) {
                out.push(s.name);
            }
        }
    }
    out
}

/// Whether an `include =>` value names callpark's context (`callpark`, or `callpark,<time>`).
fn includes_callpark(value: &str) -> bool {
    value.split([',', '|']).next().map(str::trim) == Some(INCLUDE_CONTEXT)
}

/// Whether `arg` of an `#include` names the include file `callpark.conf` under `etc`.
fn names_include(etc: &Path, arg: &str, include: &Path) -> bool {
    // Path equality compares components, so `./callpark.conf` names it too.
    etc.join(arg.trim()) == include
}

/// The new texts of the dial-plan files: `#include callpark.conf` at the end of the main file
/// (the first of `files`) when no file includes it yet, and `include => callpark` right after
/// the header of each context in `contexts` that does not include it yet. Asterisk searches a
/// context's includes in the order they are written, after its own extensions: first place
/// gives callpark's orbits precedence over the patterns of other included contexts. The
/// `#include` goes at the very end, where no context follows it: lines after it would
/// otherwise be read as part of the included file's last context.
///
/// A context that no file defines is an error naming where it came from.
pub fn edit(
    files: &[File],
    etc: &Path,
    include: &Path,
    contexts: &[(String, Option<Origin>)],
) -> Result<Vec<(PathBuf, String)>, BadInput> {
    let main = files.first().map(|f| f.path.clone()).ok_or_else(|| {
        BadInput::at(
            &etc.join("extensions.conf"),
            None,
            "not found: is --etc Asterisk's configuration directory (the one holding extensions.conf)?",
        )
    })?;
    let mut confs: Vec<Conf> = files.iter().map(|f| Conf::parse(&f.text)).collect();
    let names: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
    for (ctx, origin) in contexts {
        // Every section of that name: Asterisk merges contexts written more than once.
        let mut found = None;
        let mut has = false;
        for (n, c) in confs.iter().enumerate() {
            for s in c.sections().into_iter().filter(|s| &s.name == ctx) {
                found.get_or_insert((n, s.header));
                has |= c
                    .keys(&s)
                    .any(|(_, k, v)| k.eq_ignore_ascii_case("include") && includes_callpark(v));
            }
        }
        match found {
            None => {
                let why = format!(
                    "no context [{ctx}] in {}: add it there, or name the contexts your phones dial from with --context",
                    names.join(", ")
                );
                return Err(match origin {
                    Some(o) => BadInput::at(
                        &o.file,
                        Some(o.line),
                        format!("{} dials from context {ctx}, but there is {why}", o.what),
                    ),
                    None => BadInput::at(&main, None, format!("--context {ctx}: {why}")),
                });
            }
            Some(_) if has => {}
            Some((n, header)) => {
                confs[n].insert(header + 1, &format!("include => {INCLUDE_CONTEXT}"));
            }
        }
    }
    let included = confs.iter().any(|c| {
        (0..c.len()).any(|i| {
            matches!(c.kind(i), Kind::Directive { word, arg }
                if matches!(word.as_str(), "include" | "tryinclude") && names_include(etc, arg, include))
        })
    });
    if !included {
        let name = include.strip_prefix(etc).map_or_else(
            |_| include.display().to_string(),
            |p| p.display().to_string(),
        );
        confs[0].append(&[
            format!("; callpark's park code and orbits (context [{INCLUDE_CONTEXT}]), written by `callpark setup asterisk`"),
            format!("#include {name}"),
        ]);
    }
    Ok(files
        .iter()
        .zip(confs)
        .map(|(f, c)| (f.path.clone(), c.text()))
        .collect())
}
