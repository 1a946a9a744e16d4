//! Asterisk `extensions.conf`: which extension runs each orbit in a context.
//!
//! Asterisk keeps the extensions of a context sorted (`ext_cmp` in `main/pbx.c`: exact
//! extensions first, then patterns, the more specific character first) and, with the default
//! matcher (`extenpatternmatchnew = no`), runs the first one in that order that matches and has
//! priority 1; then it searches the context's includes, in order, depth first, each context at
//! most once. This module rebuilds that order from the text and walks it with the orbit sets.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use super::automaton::{Dialect, Matcher, NumRange};
use super::files;
use super::fix;
use super::runs::RunSet;
use super::{Certainty, Kind, LintError, Report, Source};

/// One extension (all lines with the same name and caller-id match) of a context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exten {
    /// As written, e.g. `_7XX` or `701`.
    pub name: String,
    /// The caller-id match after `/`, if any.
    pub cid: Option<String>,
    pub file: String,
    /// Line of priority 1, else of the first line.
    pub line: usize,
    /// The application of priority 1, e.g. `Stasis(callpark,retrieve,${EXTEN})`.
    pub app1: Option<String>,
    /// Priority labels, `n(label)`, with their numbers.
    pub labels: Vec<(String, i64)>,
    /// The applications of all its priorities, in the order of the lines (to tell a
    /// destination from a pattern that routes onward: see `classify`).
    pub apps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub context: String,
    /// `include => ctx,<times>`: only at some times.
    pub timed: bool,
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub name: String,
    pub file: String,
    pub line: usize,
    pub extens: Vec<Exten>,
    pub includes: Vec<Include>,
    /// `switch =>` lines (name = the switch, e.g. `Realtime/...`), asked before the includes.
    pub switches: Vec<Exten>,
}

/// All contexts read from a file and the files it includes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dialplan {
    pub contexts: Vec<Context>,
    /// `[general] extenpatternmatchnew = yes` switches Asterisk to its other matcher.
    pub pattern_match_new: bool,
}

impl Dialplan {
    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

// ---------------------------------------------------------------- ordering (main/pbx.c)

/// Compares exact extensions, ignoring `-`.
fn cmp_exten(l: &[u8], r: &[u8]) -> i32 {
    let (mut i, mut j) = (0, 0);
    loop {
        while l.get(i) == Some(&b'-') {
            i += 1;
        }
        while r.get(j) == Some(&b'-') {
            j += 1;
        }
        let a = l.get(i).copied().unwrap_or(0) as i32;
        let b = r.get(j).copied().unwrap_or(0) as i32;
        if a != b || a == 0 {
            return a - b;
        }
        i += 1;
        j += 1;
    }
}

/// The sort value of the next pattern position (and its character set in `bits`), as
/// Asterisk's `ext_cmp_pattern_pos` computes it; `None` once the pattern ended.
fn pattern_pos(p: &[u8], at: &mut Option<usize>, bits: &mut [u8; 32]) -> i32 {
    let Some(mut i) = *at else { return 0x30000 };
    loop {
        let mut c;
        loop {
            c = p.get(i).copied().unwrap_or(0);
            i += 1;
            if c != b'-' {
                break;
            }
        }
        match c {
            b'n' | b'N' => {
                bits[6] = 0x3f;
                bits[7] = 0xc0;
                *at = Some(i);
                return 0x0800 | b'2' as i32;
            }
            b'x' | b'X' => {
                bits[6] = 0xff;
                bits[7] = 0xc0;
                *at = Some(i);
                return 0x0A00 | b'0' as i32;
            }
            b'z' | b'Z' => {
                bits[6] = 0x7f;
                bits[7] = 0xc0;
                *at = Some(i);
                return 0x0900 | b'1' as i32;
            }
            b'.' => {
                *at = Some(i);
                return 0x18000;
            }
            b'!' => {
                *at = Some(i);
                return 0x28000;
            }
            0 => {
                *at = None;
                return 0x30000;
            }
            b'[' => {}
            c => {
                bits[(c / 8) as usize] = 1 << (7 - (c % 8));
                *at = Some(i);
                return 0x0100 | c as i32;
            }
        }
        let Some(end) = p[i.min(p.len())..].iter().position(|&b| b == b']') else {
            *at = Some(i);
            return 0x40000;
        };
        let end = i + end;
        let mut count = 0;
        let mut cmin: u8 = 0xff;
        while i < end {
            let c1 = p[i];
            let c2 = if i + 2 < end && p[i + 1] == b'-' {
                i += 2;
                p[i]
            } else {
                c1
            };
            cmin = cmin.min(c1);
            for c in u16::from(c1)..=u16::from(c2) {
                let c = c as u8;
                let mask = 1 << (7 - (c % 8));
                if bits[(c / 8) as usize] & mask == 0 {
                    bits[(c / 8) as usize] |= mask;
                    count += 0x100;
                }
            }
            i += 1;
        }
        i += 1;
        if count != 0 {
            *at = Some(i);
            return count | cmin as i32;
        }
    }
}

fn cmp_pattern(l: &[u8], r: &[u8]) -> i32 {
    let (mut li, mut ri) = (Some(0), Some(0));
    loop {
        let mut lb = [0u8; 32];
        let mut rb = [0u8; 32];
        let lp = pattern_pos(l, &mut li, &mut lb);
        let rp = pattern_pos(r, &mut ri, &mut rb);
        let mut cmp = lp - rp;
        if cmp == 0 {
            // Equal score: the set with the lower characters first (note the swap).
            cmp = match rb.cmp(&lb) {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            };
        }
        if cmp != 0 || li.is_none() {
            return cmp;
        }
    }
}

/// Asterisk's `ext_cmp`: the order of extensions in a context.
pub fn ext_cmp(l: &str, r: &str) -> Ordering {
    let (l, r) = (l.as_bytes(), r.as_bytes());
    let c = match (l.first() == Some(&b'_'), r.first() == Some(&b'_')) {
        (false, true) => -1,
        (true, false) => 1,
        (false, false) => cmp_exten(l, r),
        (true, true) => cmp_pattern(&l[1..], &r[1..]),
    };
    c.cmp(&0)
}

/// The order `ast_add_extension2` keeps: by name, then caller-id matches before none.
fn exten_order(a: &Exten, b: &Exten) -> Ordering {
    ext_cmp(&a.name, &b.name).then_with(|| match (&a.cid, &b.cid) {
        (None, None) => Ordering::Equal,
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some(x), Some(y)) => ext_cmp(x, y),
    })
}

/// The regex (whole string) matching what `_extension_match_core` matches; `None` when the
/// extension can match nothing (a `[` without `]`).
pub(crate) fn exten_regex(name: &str) -> Option<String> {
    let mut s = String::from("^");
    let Some(p) = name.strip_prefix('_') else {
        for c in name.chars().filter(|&c| c != '-') {
            s.push_str(&regex_syntax::escape(&c.to_string()));
        }
        s.push('$');
        return Some(s);
    };
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'-' => {}
            b'/' => break,
            b'x' | b'X' => s.push_str("[0-9]"),
            b'z' | b'Z' => s.push_str("[1-9]"),
            b'n' | b'N' => s.push_str("[2-9]"),
            // `.` and `!` end the match: whatever follows in the pattern is never looked at.
            b'.' => return Some(s + "(?s:.)+"),
            b'!' => return Some(s + "(?s:.)*"),
            b'[' => {
                let end = b[i + 1..].iter().position(|&c| c == b']')? + i + 1;
                let set = &b[i + 1..end];
                if !set.is_empty() {
                    let mut class = String::from("[");
                    let mut k = 0;
                    while k < set.len() {
                        if k + 2 < set.len() && set[k + 1] == b'-' {
                            if set[k] <= set[k + 2] {
                                class.push_str(&format!("\\x{:02x}-\\x{:02x}", set[k], set[k + 2]));
                            }
                            k += 3;
                        } else {
                            class.push_str(&format!("\\x{:02x}", set[k]));
                            k += 1;
                        }
                    }
                    if class == "[" {
                        return None;
                    }
                    class.push(']');
                    s.push_str(&class);
                }
                i = end;
            }
            c => s.push_str(&regex_syntax::escape(&(c as char).to_string())),
        }
        i += 1;
    }
    s.push('$');
    Some(s)
}

// ---------------------------------------------------------------- parsing

fn strip_comment(line: &str, in_block: &mut bool) -> String {
    let mut out = String::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if *in_block {
            if line[i..].starts_with("--;") {
                *in_block = false;
                i += 3;
            } else {
                i += 1;
            }
            continue;
        }
        if b[i] == b'\\' && b.get(i + 1) == Some(&b';') {
            out.push(';');
            i += 2;
            continue;
        }
        if line[i..].starts_with(";--") {
            *in_block = true;
            i += 3;
            continue;
        }
        if b[i] == b';' {
            break;
        }
        let ch = line[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn expand_include(base: &Path, from_dir: &Path, spec: &str) -> Vec<PathBuf> {
    let spec = spec
        .trim()
        .trim_matches('"')
        .trim_matches('<')
        .trim_matches('>');
    let p = Path::new(spec);
    let candidates: Vec<PathBuf> = if p.is_absolute() {
        vec![p.to_path_buf()]
    } else {
        // Asterisk resolves relative names in its config directory: the top file's directory.
        vec![base.join(p), from_dir.join(p)]
    };
    candidates
        .iter()
        .map(|c| files::expand(c))
        .find(|hits| !hits.is_empty())
        .unwrap_or_default()
}

struct Parser {
    dp: Dialplan,
    /// Index of the open context, if any (`None` in `[general]`, `[globals]`).
    cur: Option<usize>,
    section: String,
    last_exten: Option<(String, Option<String>)>,
    last_prio: i64,
    stack: Vec<PathBuf>,
    base: PathBuf,
}

impl Parser {
    /// A parser whose relative `#include`s are read from `base`.
    fn new(base: PathBuf) -> Parser {
        Parser {
            dp: Dialplan::default(),
            cur: None,
            section: String::new(),
            last_exten: None,
            last_prio: -2,
            stack: Vec::new(),
            base,
        }
    }
}

/// Reads `path` and every `#include`d file.
pub fn load(path: &Path) -> Result<Dialplan, LintError> {
    let mut p = Parser::new(path.parent().unwrap_or(Path::new(".")).to_path_buf());
    p.file(path, None)?;
    Ok(p.dp)
}

/// Parses text without touching the file system (`#include` lines are reported as errors).
pub fn parse_str(text: &str, file: &str) -> Result<Dialplan, LintError> {
    let mut p = Parser::new(PathBuf::from("."));
    p.text(text, file, None)?;
    Ok(p.dp)
}

impl Parser {
    fn file(&mut self, path: &Path, from: Option<(&str, usize)>) -> Result<(), LintError> {
        let canon = path.canonicalize().unwrap_or(path.to_path_buf());
        if self.stack.contains(&canon) {
            let (f, l) = from.unwrap_or(("", 0));
            return Err(LintError::parse(
                f,
                l,
                format!("#include {} includes itself", path.display()),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| match from {
            Some((f, l)) => LintError::parse(f, l, format!("#include {}: {e}", path.display())),
            None => LintError::Read {
                file: path.display().to_string(),
                msg: e.to_string(),
            },
        })?;
        self.stack.push(canon);
        let r = self.text(&text, &path.display().to_string(), Some(path));
        self.stack.pop();
        r
    }

    fn text(&mut self, text: &str, file: &str, path: Option<&Path>) -> Result<(), LintError> {
        let mut in_block = false;
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let l = strip_comment(raw, &mut in_block);
            let t = l.trim();
            if t.is_empty() {
                continue;
            }
            if let Some(rest) = t
                .strip_prefix("#include")
                .or_else(|| t.strip_prefix("#tryinclude"))
            {
                let optional = t.starts_with("#tryinclude");
                let Some(path) = path else {
                    return Err(LintError::parse(file, line, "#include needs files on disk"));
                };
                let dir = path.parent().unwrap_or(Path::new("."));
                let files = expand_include(&self.base.clone(), dir, rest);
                if files.is_empty() && !optional {
                    return Err(LintError::parse(
                        file,
                        line,
                        format!("#include {}: no such file", rest.trim()),
                    ));
                }
                for f in files {
                    self.file(&f, Some((file, line)))?;
                }
                continue;
            }
            if t.starts_with('#') {
                continue; // #exec and the like: nothing the lint can read
            }
            if let Some(rest) = t.strip_prefix('[') {
                let Some(end) = rest.find(']') else {
                    return Err(LintError::parse(file, line, format!("`{t}`: no closing ]")));
                };
                let name = rest[..end].trim().to_string();
                let opts = rest[end + 1..].trim();
                self.open(&name, opts, file, line);
                continue;
            }
            // `key => value` or `key = value`: the first `=` ends the key (values may hold `=>`).
            let Some((key, value)) = t
                .split_once('=')
                .map(|(k, v)| (k, v.strip_prefix('>').unwrap_or(v)))
            else {
                return Err(LintError::parse(
                    file,
                    line,
                    format!("`{t}` is not `key => value`"),
                ));
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            if self.section.eq_ignore_ascii_case("general") {
                if key == "extenpatternmatchnew" {
                    self.dp.pattern_match_new = matches!(
                        value.to_ascii_lowercase().as_str(),
                        "yes" | "true" | "y" | "t" | "1" | "on"
                    );
                }
                continue;
            }
            let Some(ci) = self.cur else { continue };
            match key.as_str() {
                "exten" | "same" => self.exten(ci, &key, value, file, line)?,
                "include" => {
                    let mut parts = value.split(',');
                    let ctx = parts.next().unwrap_or("").trim().to_string();
                    let timed = parts.any(|p| !p.trim().is_empty() && p.trim() != "*");
                    self.dp.contexts[ci].includes.push(Include {
                        context: ctx,
                        timed,
                        file: file.to_string(),
                        line,
                    });
                }
                "switch" | "eswitch" | "lswitch" => {
                    self.dp.contexts[ci].switches.push(Exten {
                        name: value.to_string(),
                        cid: None,
                        file: file.to_string(),
                        line,
                        app1: None,
                        labels: Vec::new(),
                        apps: Vec::new(),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn open(&mut self, name: &str, opts: &str, file: &str, line: usize) {
        self.section = name.to_string();
        self.last_exten = None;
        self.last_prio = -2;
        if name.eq_ignore_ascii_case("general") || name.eq_ignore_ascii_case("globals") {
            self.cur = None;
            return;
        }
        let idx = match self
            .dp
            .contexts
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
        {
            Some(i) => i,
            None => {
                self.dp.contexts.push(Context {
                    name: name.to_string(),
                    file: file.to_string(),
                    line,
                    extens: Vec::new(),
                    includes: Vec::new(),
                    switches: Vec::new(),
                });
                self.dp.contexts.len() - 1
            }
        };
        // `[ctx](tmpl1,tmpl2)` starts with the templates' contents; `(!)` marks a template.
        let opts = opts.trim_start_matches('(').trim_end_matches(')');
        for t in opts
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty() && *t != "!" && *t != "+")
        {
            if let Some(src) = self.dp.context(t).cloned() {
                let c = &mut self.dp.contexts[idx];
                c.extens.extend(src.extens);
                c.includes.extend(src.includes);
                c.switches.extend(src.switches);
            }
        }
        self.cur = Some(idx);
    }

    fn exten(
        &mut self,
        ci: usize,
        key: &str,
        value: &str,
        file: &str,
        line: usize,
    ) -> Result<(), LintError> {
        // `exten => name,prio,app` but `same => prio,app`: the application keeps its commas.
        let mut it = value.splitn(if key == "same" { 2 } else { 3 }, ',');
        let (name, cid) = if key == "same" {
            match &self.last_exten {
                Some(e) => e.clone(),
                None => {
                    return Err(LintError::parse(
                        file,
                        line,
                        "`same =>` with no extension before it",
                    ));
                }
            }
        } else {
            let n = it.next().unwrap_or("").trim();
            match n.split_once('/') {
                Some((a, b)) => (a.to_string(), Some(b.to_string())),
                None => (n.to_string(), None),
            }
        };
        let prio = it.next().unwrap_or("").trim();
        let app = it.next().unwrap_or("").trim().to_string();
        // As pbx_config reads it: `hint`, `n`/`next` (the context's last priority + 1),
        // `s`/`same` (the last), a number or a label of this extension; then `+N`; `(label)`.
        let (p, label) = match prio.split_once('(') {
            Some((p, l)) => (p.trim(), Some(l.trim_end_matches(')').trim().to_string())),
            None => (prio, None),
        };
        let (p, plus) = match p.split_once('+') {
            Some((p, n)) => (p.trim(), n.trim().parse::<i64>().unwrap_or(0)),
            None => (p, 0),
        };
        let bad = |why: &str| LintError::parse(file, line, format!("priority `{prio}` {why}"));
        let mut number = match p {
            "hint" => -1,
            // Asterisk skips `n`/`s` on a context's first line (with a warning): no extension.
            "n" | "next" | "s" | "same" if self.last_prio == -2 => return Ok(()),
            "n" | "next" => self.last_prio + 1,
            "s" | "same" => self.last_prio,
            _ => match p.parse::<i64>() {
                Ok(n) if n >= 1 => n,
                Ok(_) => return Err(bad("is below 1")),
                Err(_) => self.dp.contexts[ci]
                    .extens
                    .iter()
                    .find(|e| e.name == name && e.cid == cid)
                    .and_then(|e| e.labels.iter().find(|(l, _)| l == p).map(|(_, n)| *n))
                    .ok_or_else(|| {
                        bad("is not a number, n, s, hint or a label of this extension")
                    })?,
            },
        };
        if number == 0 {
            // `n` after a hint gives 0, which Asterisk does not register.
            self.last_exten = Some((name, cid));
            return Ok(());
        }
        number += plus;
        self.last_prio = number;
        self.last_exten = Some((name.clone(), cid.clone()));
        let c = &mut self.dp.contexts[ci];
        let probe = Exten {
            name: name.clone(),
            cid: cid.clone(),
            file: file.to_string(),
            line,
            app1: None,
            labels: Vec::new(),
            apps: Vec::new(),
        };
        let e = match c
            .extens
            .iter_mut()
            .position(|e| exten_order(e, &probe) == Ordering::Equal)
        {
            Some(i) => &mut c.extens[i],
            None => {
                c.extens.push(probe);
                c.extens.last_mut().unwrap()
            }
        };
        if let Some(l) = label {
            e.labels.push((l, number));
        }
        if number >= 1 {
            e.apps.push(app.clone());
        }
        if number == 1 && e.app1.is_none() {
            e.app1 = Some(app);
            e.line = line;
            e.file = file.to_string();
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- checking

/// Whether an extension is callpark's: it enters the callpark Stasis app or goes to a
/// `callpark...` context, or it lives in one (the generated include).
pub(crate) fn is_callpark(context: &str, app: &str) -> bool {
    if context.to_ascii_lowercase().starts_with("callpark") {
        return true;
    }
    let (name, args) = match app.split_once('(') {
        Some((n, a)) => (n.trim().to_ascii_lowercase(), a.trim_end_matches(')')),
        None => match app.split_once(',') {
            Some((n, a)) => (n.trim().to_ascii_lowercase(), a),
            None => (app.trim().to_ascii_lowercase(), ""),
        },
    };
    let first = args
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match name.as_str() {
        "stasis" => first.starts_with("callpark"),
        "goto" | "gosub" => args.split(',').count() >= 2 && first.starts_with("callpark"),
        _ => false,
    }
}

/// An application's name (lower case) and its arguments, from `Name(args)`.
fn split_app(app: &str) -> (String, &str) {
    match app.split_once('(') {
        Some((n, a)) => (
            n.trim().to_ascii_lowercase(),
            a.trim_end().trim_end_matches(')'),
        ),
        None => match app.split_once(',') {
            Some((n, a)) => (n.trim().to_ascii_lowercase(), a),
            None => (app.trim().to_ascii_lowercase(), ""),
        },
    }
}

/// Whether `args` name a device `TECH/${EXTEN}` (no `@host`, no trunk after it).
fn passes_phone(args: &str) -> bool {
    let up = args.to_ascii_uppercase();
    ["PJSIP/", "SIP/", "IAX2/", "DAHDI/", "CONSOLE/"]
        .iter()
        .any(|t| {
            let d = format!("{t}${{EXTEN}}");
            up.match_indices(&d).any(|(i, _)| {
                !up[i + d.len()..].starts_with('@') && !up[i + d.len()..].starts_with('/')
            })
        })
}

/// What one application says about the numbers that reach it: `Some(Conflicts)` for a
/// destination, `Some(Catches)` for routing onward, `None` when it says nothing (`NoOp`,
/// `Set`, `Verbose`...).
fn app_kind(dp: &Dialplan, app: &str, depth: u32) -> Option<(Kind, String)> {
    let (name, args) = split_app(app);
    let shown = app.trim();
    match name.as_str() {
        "dial" => {
            // Each device of `Dial(TECH/resource&...)`: `PJSIP/${EXTEN}` rings the phone of
            // that number; `PJSIP/${EXTEN}@trunk` or `SIP/trunk/${EXTEN}` sends it out.
            let devices = args.split(',').next().unwrap_or("");
            let mut fixed = false;
            for dev in devices.split('&') {
                let Some((tech, res)) = dev.trim().split_once('/') else {
                    continue;
                };
                if tech.eq_ignore_ascii_case("local") {
                    continue;
                }
                fixed = fixed || !res.contains('$');
                if res.contains('@') || res.contains('/') {
                    return Some((
                        Kind::Catches,
                        format!("it dials out through a trunk (`{shown}`)"),
                    ));
                }
                if res.to_ascii_uppercase().contains("EXTEN") {
                    return Some((
                        Kind::Conflicts,
                        format!("it rings the phone of the dialled number (`{shown}`)"),
                    ));
                }
            }
            // One fixed phone for every number: the numbers are not destinations of their own.
            fixed.then(|| {
                (
                    Kind::Catches,
                    format!("it rings the same phone whatever the number (`{shown}`)"),
                )
            })
        }
        "voicemail" => Some((Kind::Conflicts, format!("it takes voicemail (`{shown}`)"))),
        "voicemailmain" | "confbridge" | "meetme" | "queue" | "directory" | "background"
        | "waitexten" | "read" | "page" => {
            Some((Kind::Conflicts, format!("it runs a service (`{shown}`)")))
        }
        "goto" | "gosub" => {
            // A subroutine handed the phone of the dialled number (`Gosub(page,s,1(SIP/${EXTEN}))`)
            // rings or pages it.
            if passes_phone(args) {
                return Some((
                    Kind::Conflicts,
                    format!("it hands the phone of the dialled number on (`{shown}`)"),
                ));
            }
            let parts: Vec<&str> = args.split(',').map(str::trim).collect();
            if parts.len() < 3 || depth >= 3 {
                return None;
            }
            let ctx = dp.context(parts[0])?;
            // The context it goes to decides: an IVR or phones are destinations, a
            // context that dials trunks routes onward.
            for e in &ctx.extens {
                for a in &e.apps {
                    if let Some((k, w)) = app_kind(dp, a, depth + 1) {
                        return Some((k, format!("it goes to [{}], where {w}", ctx.name)));
                    }
                }
            }
            None
        }
        _ => None,
    }
}

/// Whether orbits taken by `e` are to be protected from it (`Catches`) or are its own
/// numbers (`Conflicts`), and why. An exact extension is a destination; a pattern with `.`
/// or `!` is a catch-all; any other pattern is judged by the first of its applications that
/// says something (`app_kind`). When nothing does, `Catches`, the lint's behaviour before it
/// told the two apart.
pub fn classify(dp: &Dialplan, e: &Exten) -> (Kind, String) {
    let Some(p) = e.name.strip_prefix('_') else {
        let what = e
            .apps
            .iter()
            .find_map(|a| app_kind(dp, a, 0).map(|(_, w)| format!(": {w}")))
            .unwrap_or_default();
        return (
            Kind::Conflicts,
            format!(
                "`{}` is an exact extension, a destination of its own{what}",
                e.name
            ),
        );
    };
    if p.contains('.') || p.contains('!') {
        return (
            Kind::Catches,
            format!(
                "`{}` matches numbers of any length: a catch-all, callpark goes in front of it",
                e.name
            ),
        );
    }
    for a in &e.apps {
        if let Some((k, w)) = app_kind(dp, a, 0) {
            return (k, w);
        }
    }
    // An application the lint cannot follow (AGI, Macro, a Goto it cannot resolve, one it
    // does not know) may well be a destination: never offer a fix that reorders it.
    if let Some(a) = e
        .apps
        .iter()
        .find(|a| !PREPARES.contains(&split_app(a).0.as_str()))
    {
        return (
            Kind::Conflicts,
            format!(
                "it runs `{}`, which the lint cannot follow: taken as a destination, never reordered",
                a.trim()
            ),
        );
    }
    (
        Kind::Catches,
        "no application of it is a destination (a phone, voicemail, an IVR, a script): it only prepares the call or ends it".into(),
    )
}

/// Applications that only prepare a call for what follows, or end it (a message played before
/// a hang-up included): an extension that runs nothing else is no destination of its own.
const PREPARES: [&str; 23] = [
    "noop",
    "playback",
    "set",
    "setvar",
    "verbose",
    "log",
    "answer",
    "wait",
    "ringing",
    "progress",
    "playtones",
    "stopplaytones",
    "mixmonitor",
    "monitor",
    "sipaddheader",
    "setcallerpres",
    "setcidname",
    "setcidnum",
    "hangup",
    "congestion",
    "busy",
    "return",
    "macroexit",
];

/// One extension in the order Asterisk tries them for a context.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub context: &'a Context,
    pub exten: &'a Exten,
    /// The include of the checked context this came through (`None`: its own extension).
    pub via: Option<&'a Include>,
    pub timed: bool,
    /// A `switch =>`: it answers for whatever the other end knows.
    pub switch: bool,
}

/// Every extension with a priority 1, in the order Asterisk tries them for `context`.
pub fn search_order<'a>(dp: &'a Dialplan, context: &str) -> Vec<Entry<'a>> {
    let mut out = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    visit(dp, context, None, false, &mut seen, &mut out);
    out
}

fn visit<'a>(
    dp: &'a Dialplan,
    name: &str,
    via: Option<&'a Include>,
    timed: bool,
    seen: &mut Vec<String>,
    out: &mut Vec<Entry<'a>>,
) {
    if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
        return;
    }
    let Some(c) = dp.context(name) else { return };
    let mut ext: Vec<&Exten> = c.extens.iter().filter(|e| e.app1.is_some()).collect();
    ext.sort_by(|a, b| exten_order(a, b));
    for e in ext {
        out.push(Entry {
            context: c,
            exten: e,
            via,
            timed,
            switch: false,
        });
    }
    for sw in &c.switches {
        out.push(Entry {
            context: c,
            exten: sw,
            via,
            timed,
            switch: true,
        });
    }
    seen.push(c.name.clone());
    for inc in &c.includes {
        visit(
            dp,
            &inc.context,
            via.or(Some(inc)),
            timed || inc.timed,
            seen,
            out,
        );
    }
}

/// Checks the orbits dialled in `context`.
pub fn check(dp: &Dialplan, context: &str, report: &mut Report) -> Result<(), LintError> {
    let Some(root) = dp.context(context) else {
        return Err(LintError::Usage(format!(
            "no context [{context}] in the Asterisk dialplan"
        )));
    };
    if dp.pattern_match_new {
        report.notes.push(
            "extenpatternmatchnew = yes: Asterisk uses its other matcher there; the lint models the default one".into(),
        );
    }
    let order = search_order(dp, context);
    report.rules += order.len();
    let mut matchers: Vec<Option<Matcher>> = order
        .iter()
        .map(|e| {
            if e.switch {
                return None;
            }
            exten_regex(&e.exten.name).and_then(|r| Matcher::new(&r, Dialect::Rust).ok())
        })
        .collect();
    // Where callpark's extensions live: reached from here, or at least defined somewhere.
    let cp_ctx = order
        .iter()
        .find(|e| is_callpark(&e.context.name, e.exten.app1.as_deref().unwrap_or("")))
        .map(|e| e.context.name.clone())
        .or_else(|| {
            dp.contexts
                .iter()
                .find(|c| {
                    c.name.to_ascii_lowercase().starts_with("callpark") && !c.extens.is_empty()
                })
                .map(|c| c.name.clone())
        });
    for ti in 0..report.targets.len() {
        let range = report.targets[ti].range.clone();
        let mut remaining = range.all();
        for (k, e) in order.iter().enumerate() {
            if remaining.is_empty() {
                break;
            }
            if e.switch {
                report.add_finding(
                    Source::Asterisk,
                    &e.exten.file,
                    e.exten.line,
                    &format!("switch => {}@{}", e.exten.name, e.context.name),
                    &root.name,
                    Certainty::MayCatch,
                    ti,
                    remaining.clone(),
                    Some("a switch is asked before the includes and answers for whatever the other end has".into()),
                );
                continue;
            }
            let Some(m) = matchers[k].as_mut() else {
                continue;
            };
            let hit = match m.matching(&range) {
                Ok(h) => h.intersect(&remaining),
                Err(w) => {
                    report.add_finding(
                        Source::Asterisk,
                        &e.exten.file,
                        e.exten.line,
                        &format!("{}@{}", e.exten.name, e.context.name),
                        &root.name,
                        Certainty::Undecided,
                        ti,
                        remaining.clone(),
                        Some(w.0),
                    );
                    continue;
                }
            };
            if hit.is_empty() {
                continue;
            }
            let app = e.exten.app1.as_deref().unwrap_or("");
            // Asterisk's own notation: extension@context.
            let label = format!("{}@{}", e.exten.name, e.context.name);
            if is_callpark(&e.context.name, app) {
                if e.exten.cid.is_none() && !e.timed {
                    remaining = remaining.difference(&hit);
                }
                continue;
            }
            if e.exten.cid.is_some() || e.timed {
                let why = if e.timed {
                    "reached through a time-restricted include".to_string()
                } else {
                    format!(
                        "only for callers matching `{}`",
                        e.exten.cid.as_deref().unwrap_or("")
                    )
                };
                report.add_finding(
                    Source::Asterisk,
                    &e.exten.file,
                    e.exten.line,
                    &label,
                    &root.name,
                    Certainty::MayCatch,
                    ti,
                    hit,
                    Some(why),
                );
                continue;
            }
            report.add_finding(
                Source::Asterisk,
                &e.exten.file,
                e.exten.line,
                &label,
                &root.name,
                Certainty::Caught,
                ti,
                hit.clone(),
                None,
            );
            remaining = remaining.difference(&hit);
        }
        report.add_finding(
            Source::Asterisk,
            &root.file,
            root.line,
            "(no extension)",
            &root.name,
            Certainty::Caught,
            ti,
            remaining,
            Some("no extension of this context or its includes runs these orbits".into()),
        );
    }
    let targets = report.targets.clone();
    let kinds: Vec<Option<(Kind, String)>> = order
        .iter()
        .map(|e| {
            let cp = is_callpark(&e.context.name, e.exten.app1.as_deref().unwrap_or(""));
            (!e.switch && !cp).then(|| classify(dp, e.exten))
        })
        .collect();
    // A range to move to is free when no destination of this context matches any of it
    // (catch-alls there are fine: the usual fix protects the orbits from them).
    let mut is_free = |c: &NumRange| {
        order.iter().zip(&kinds).all(|(e, k)| {
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
            match fix_for(f, &order, root, cp_ctx.as_deref(), &targets) {
                Ok(fix) => {
                    f.fix = fix;
                    continue;
                }
                Err(collision) => {
                    f.kind = Kind::Conflicts;
                    f.kind_why = Some(collision);
                }
            }
        }
        f.fix = f
            .caught
            .iter()
            .map(|(t, _)| {
                let free = super::free_ranges(&ranges[*t], &ranges, 3, &mut is_free);
                super::move_fix(&ranges[*t], &free, &format!("[{}]", root.name))
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    Ok(())
}

fn fix_for(
    f: &super::Finding,
    order: &[Entry],
    root: &Context,
    cp_ctx: Option<&str>,
    targets: &[super::Target],
) -> Result<String, String> {
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
        for p in fix::asterisk_patterns(range, runs) {
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

/// Why adding extensions `names` (priority 1, no caller-id match) to `ctx` would clash with
/// one it has: equal as `ext_cmp` compares them (`_11[0-9]X` is `_11XX` to Asterisk).
fn collision(ctx: &Context, names: &[String]) -> Option<String> {
    names.iter().find_map(|p| {
        ctx.extens
            .iter()
            .find(|e| e.cid.is_none() && e.app1.is_some() && ext_cmp(&e.name, p) == Ordering::Equal)
            .map(|old| {
                format!(
                    "the fix would add `exten => {p},1` to [{}], which already has `{}` ({}:{}): Asterisk refuses the second one and the first loses its priority 1; move the orbits instead",
                    ctx.name, old.name, old.file, old.line
                )
            })
    })
}

/// The extension Asterisk runs for `dialled` in `context` (the default matcher), with the
/// context it lives in; caller-id and time conditions are taken as met.
pub fn winner<'a>(
    dp: &'a Dialplan,
    context: &str,
    dialled: &str,
) -> Option<(&'a Context, &'a Exten)> {
    let span: callpark_core::orbit::Span = dialled.parse().ok()?;
    let one = NumRange::from_span(&span);
    search_order(dp, context)
        .into_iter()
        .find(|e| !exten_matches(&e.exten.name, &one).is_empty())
        .map(|e| (e.context, e.exten))
}

/// `RunSet` of the numbers of `range` an extension name matches (for tests and tools).
pub fn exten_matches(name: &str, range: &NumRange) -> RunSet {
    exten_regex(name)
        .and_then(|r| Matcher::new(&r, Dialect::Rust).ok())
        .and_then(|mut m| m.matching(range).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_follows_asterisk() {
        let mut v = vec![
            "_X.", "_7XX", "_70X", "_7[0-4]X", "_NXX", "_ZXX", "701", "_7!", "_7.",
        ];
        v.sort_by(|a, b| ext_cmp(a, b));
        assert_eq!(
            v,
            [
                "701", "_70X", "_7[0-4]X", "_7XX", "_7.", "_7!", "_NXX", "_ZXX", "_X."
            ]
        );
    }

    #[test]
    fn both_spellings_of_exten_lines() {
        let dp = parse_str(
            "[a]\nexten = 100,1,Set(A=>1)\nexten=>_7XX,hint,Custom:x\n same => 1,NoOp()\n",
            "x.conf",
        )
        .unwrap();
        let names: Vec<&str> = dp.contexts[0]
            .extens
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["100", "_7XX"]);
        assert_eq!(dp.contexts[0].extens[1].line, 4);
    }

    #[test]
    fn priorities_as_pbx_config_reads_them() {
        let dp = parse_str(
            "[a]\n\
             exten => 701,n,NoOp(first line: skipped)\n\
             exten => 702,hint,Custom:702\n\
             exten => 702,n,NoOp(hint then n: priority 0, skipped)\n\
             exten => 703,1(start),NoOp()\n\
             exten => 704,n,NoOp(priority 2: no 1)\n\
             exten => 703,start+1,NoOp(priority 2 by label)\n\
             exten => 706,hint,Custom:706\n\
             exten => 706,n+2,NoOp(hint then n is 0: skipped, +2 or not)\n\
             exten => 707,s+1,NoOp(s is the hint's -1: priority 0, skipped)\n\
             exten => 708,hint,Custom:708\n\
             exten => 708,1,NoOp()\n",
            "x.conf",
        );
        let e = parse_str("[a]\nexten => 7,0,NoOp()\n", "x.conf").unwrap_err();
        assert_eq!(e.to_string(), "x.conf:2: priority `0` is below 1");
        let e = parse_str("[a]\nexten => 7,go,NoOp()\n", "x.conf").unwrap_err();
        assert!(e.to_string().contains("a label of this extension"));
        let dp = dp.unwrap();
        let with_1: Vec<&str> = dp.contexts[0]
            .extens
            .iter()
            .filter(|e| e.app1.is_some())
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(with_1, ["703", "708"]);
    }

    #[test]
    fn a_fix_equal_to_an_existing_extension_collides() {
        let dp = parse_str(
            "[f]\nexten => 1100,1,Goto(ivr,s,1)\nexten => _11[0-9]X,1,NoOp()\n same => n,Goto(ivr,s,1)\nexten => 1101,hint,PJSIP/1101\n",
            "x.conf",
        )
        .unwrap();
        let c = dp.context("f").unwrap();
        let why = collision(c, &["1100".to_string()]).unwrap();
        assert!(why.contains("already has `1100` (x.conf:2)"), "{why}");
        // `ext_cmp` equality, not spelling: Asterisk takes `_11XX` for `_11[0-9]X`.
        assert!(collision(c, &["_11XX".to_string()]).is_some());
        // A hint is not a priority 1: adding `1101,1` is what Asterisk expects.
        assert!(collision(c, &["1101".to_string(), "_110Z".to_string()]).is_none());
        // `same =>` keeps the commas of its application.
        assert_eq!(c.extens[1].apps, ["NoOp()", "Goto(ivr,s,1)"]);
    }

    #[test]
    fn regex_of_patterns() {
        assert_eq!(exten_regex("_7XX").unwrap(), "^7[0-9][0-9]$");
        assert_eq!(exten_regex("_*7.5").unwrap(), r"^\*7(?s:.)+");
        assert_eq!(exten_regex("70-1").unwrap(), "^701$");
        assert!(exten_regex("_7[12").is_none());
    }
}
