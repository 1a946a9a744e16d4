//! FreeSWITCH's preprocessor: `X-PRE-PROCESS` includes and `$${name}` variables, giving the
//! lines of the document with the file and line each came from.

use std::path::{Path, PathBuf};

use super::Include;
use crate::LintError;
use crate::files;

/// One line of the preprocessed document and where it came from.
pub(super) struct Src {
    pub(super) file: String,
    pub(super) line: usize,
}

/// FreeSWITCH's preprocessor: `<X-PRE-PROCESS cmd="include" data="..."/>` (glob, relative to
/// the including file) and `cmd="set"` variables used as `$${name}`.
pub(super) fn preprocess(
    path: &Path,
    vars: &mut Vec<(String, String)>,
    out: &mut Vec<(String, Src)>,
    includes: &mut Vec<Include>,
    stack: &mut Vec<PathBuf>,
    from: Option<(&str, usize)>,
) -> Result<(), LintError> {
    let canon = path.canonicalize().unwrap_or(path.to_path_buf());
    let file = path.display().to_string();
    if stack.contains(&canon) {
        let (f, l) = from.unwrap_or(("", 0));
        return Err(LintError::parse(f, l, format!("{file} includes itself")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| match from {
        Some((f, l)) => LintError::parse(f, l, format!("include {file}: {e}")),
        None => LintError::Read {
            file: file.clone(),
            msg: e.to_string(),
        },
    })?;
    stack.push(canon);
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.starts_with("<X-PRE-PROCESS") || t.starts_with("<x-pre-process") {
            let get = |k: &str| {
                let at = t.find(&format!("{k}=\""))? + k.len() + 2;
                let end = t[at..].find('"')? + at;
                Some(t[at..end].to_string())
            };
            let cmd = get("cmd").unwrap_or_default();
            let data = get("data").unwrap_or_default();
            match cmd.as_str() {
                "include" => {
                    let included = files::expand(&dir.join(subst(&data, vars)));
                    includes.push(Include {
                        file: file.clone(),
                        line,
                        data: data.clone(),
                        files: included.iter().map(|f| f.display().to_string()).collect(),
                    });
                    for f in included {
                        preprocess(&f, vars, out, includes, stack, Some((&file, line)))?;
                    }
                }
                "set" => {
                    if let Some((k, v)) = data.split_once('=') {
                        vars.push((k.trim().to_string(), subst(v, vars)));
                    }
                }
                _ => {}
            }
            continue;
        }
        out.push((
            subst(raw, vars),
            Src {
                file: file.clone(),
                line,
            },
        ));
    }
    stack.pop();
    Ok(())
}

fn subst(s: &str, vars: &[(String, String)]) -> String {
    if !s.contains("$${") {
        return s.to_string();
    }
    let mut out = s.to_string();
    for (k, v) in vars.iter().rev() {
        out = out.replace(&format!("$${{{k}}}"), v);
    }
    out
}
