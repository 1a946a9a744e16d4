//! Reading `extensions.conf` and the files it `#include`s into contexts (extensions, includes,
//! switches). What an extension's name matches is `pattern.rs`'s.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use super::order::exten_order;
use super::{Context, Dialplan, Exten, Include};
use crate::LintError;
use crate::files;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
