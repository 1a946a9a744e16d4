//! PowerShell: `New-`, `Set-` and `Remove-CsVoiceNormalizationRule` statements as exported
//! scripts hold them, replayed in order so each dial plan ends as the cmdlets would leave it.

use super::{DEFAULT_PATTERN, DEFAULT_TRANSLATION, LyncRule, split_identity};
use crate::LintError;

/// Splits one PowerShell statement into words, resolving quotes the way PowerShell does for
/// literal arguments ('' in single quotes; backtick escapes and `$variables` in double quotes,
/// which expand to their values: unknown here, so empty, as for an unset variable). Each word
/// comes with the variables it expanded.
fn ps_words(s: &str) -> Vec<(String, Vec<String>)> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut vars: Vec<String> = Vec::new();
    let mut have = false;
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\'' | '\u{2018}' | '\u{2019}' => {
                have = true;
                while let Some(d) = it.next() {
                    if d == '\'' || d == '\u{2018}' || d == '\u{2019}' {
                        if it.peek() == Some(&'\'') {
                            it.next();
                            cur.push('\'');
                        } else {
                            break;
                        }
                    } else {
                        cur.push(d);
                    }
                }
            }
            '"' | '\u{201c}' | '\u{201d}' => {
                have = true;
                while let Some(d) = it.next() {
                    match d {
                        '`' => {
                            if let Some(e) = it.next() {
                                cur.push(match e {
                                    'n' => '\n',
                                    't' => '\t',
                                    '0' => '\0',
                                    e => e,
                                });
                            }
                        }
                        '"' | '\u{201c}' | '\u{201d}' => {
                            if it.peek() == Some(&'"') {
                                it.next();
                                cur.push('"');
                            } else {
                                break;
                            }
                        }
                        '$' if it.peek() == Some(&'{') => {
                            it.next();
                            let name: String = it.by_ref().take_while(|&c| c != '}').collect();
                            vars.push(format!("${{{name}}}"));
                        }
                        '$' if it
                            .peek()
                            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_') =>
                        {
                            let mut name = String::new();
                            while let Some(&c) = it.peek() {
                                if !(c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                                    break;
                                }
                                name.push(c);
                                it.next();
                            }
                            // `$true`/`$false`/`$null` are values, not text of a pattern.
                            match name.to_ascii_lowercase().as_str() {
                                "true" | "false" | "null" => cur.push_str(&format!("${name}")),
                                _ => vars.push(format!("${name}")),
                            }
                        }
                        d => cur.push(d),
                    }
                }
            }
            '#' if !have => break,
            c if c.is_whitespace() || c == ';' || c == '|' => {
                if have {
                    words.push((std::mem::take(&mut cur), std::mem::take(&mut vars)));
                    have = false;
                }
                if c == ';' || c == '|' {
                    words.push((c.to_string(), Vec::new()));
                }
            }
            c => {
                have = true;
                cur.push(c);
            }
        }
    }
    if have {
        words.push((cur, vars));
    }
    words
}

/// The part of a line before a `#` comment (quotes respected).
fn code_part(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '#' && prev_space => return &line[..i],
            None => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// Joins lines continued with a trailing backtick; yields (first line number, statement).
fn ps_statements(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let t = code_part(line).trim_end();
        let (body, cont) = match t.strip_suffix('`') {
            Some(b) => (b, true),
            None => (t, false),
        };
        match &mut cur {
            Some((_, s)) => {
                s.push(' ');
                s.push_str(body);
            }
            None => cur = Some((i + 1, body.to_string())),
        }
        if !cont {
            out.push(cur.take().unwrap());
        }
    }
    if let Some(c) = cur {
        out.push(c);
    }
    out
}

const SWITCHES: [&str; 5] = ["inmemory", "force", "whatif", "confirm", "verbose"];

pub fn parse_ps1(text: &str, file: &str) -> Result<Vec<LyncRule>, LintError> {
    // Per dial plan, rules in the order the cmdlets leave them (New with -Priority inserts).
    let mut plans: Vec<(String, Vec<LyncRule>)> = Vec::new();
    for (line, stmt) in ps_statements(text) {
        let spelled = ps_words(&stmt);
        let words: Vec<String> = spelled.iter().map(|(w, _)| w.clone()).collect();
        let Some(at) = words.iter().position(|w| {
            let w = w.to_ascii_lowercase();
            w.ends_with("-csvoicenormalizationrule")
                && (w.starts_with("new") || w.starts_with("set") || w.starts_with("remove"))
        }) else {
            continue;
        };
        let verb = words[at].to_ascii_lowercase();
        // (name, value, variables PowerShell expanded in the value)
        let mut params: Vec<(String, Option<String>, Vec<String>)> = Vec::new();
        let mut i = at + 1;
        while i < words.len() && words[i] != ";" && words[i] != "|" {
            let w = &words[i];
            if let Some(name) = w.strip_prefix('-') {
                let (name, inline) = match name.split_once(':') {
                    Some((n, v)) => (n.to_ascii_lowercase(), Some(v.to_string())),
                    None => (name.to_ascii_lowercase(), None),
                };
                if inline.is_some() || SWITCHES.contains(&name.as_str()) {
                    params.push((name, inline, spelled[i].1.clone()));
                    i += 1;
                } else {
                    let v = words.get(i + 1).cloned();
                    if v.is_none() {
                        return Err(LintError::parse(
                            file,
                            line,
                            format!("-{name} has no value"),
                        ));
                    }
                    params.push((name, v, spelled[i + 1].1.clone()));
                    i += 2;
                }
            } else {
                // A positional value is the Identity.
                params.push(("identity".into(), Some(w.clone()), Vec::new()));
                i += 1;
            }
        }
        let get = |k: &str| {
            params
                .iter()
                .rev()
                .find(|(n, _, _)| n == k)
                .and_then(|(_, v, _)| v.clone())
        };
        let expanded: Vec<String> = params
            .iter()
            .filter(|(n, _, v)| (n == "pattern" || n == "translation") && !v.is_empty())
            .map(|(n, v, vars)| {
                format!(
                    "-{n} in double quotes: PowerShell replaces {} with the variable's value (empty when unset), so Lync gets `{}`; write it in single quotes",
                    vars.join(", "),
                    v.as_deref().unwrap_or("")
                )
            })
            .collect();
        let (plan, name) = match (get("identity"), get("parent"), get("name")) {
            (Some(id), _, _) => split_identity(&id),
            (None, Some(p), Some(n)) => (p, n),
            (None, Some(p), None) => (p, String::new()),
            (None, None, Some(n)) => ("Global".into(), n),
            (None, None, None) => {
                return Err(LintError::parse(
                    file,
                    line,
                    format!("{} needs -Identity or -Parent and -Name", words[at]),
                ));
            }
        };
        let priority = match get("priority") {
            Some(p) => Some(p.trim().parse::<i64>().map_err(|_| {
                LintError::parse(file, line, format!("-Priority `{p}` is not a number"))
            })?),
            None => None,
        };
        let idx = match plans
            .iter()
            .position(|(p, _)| p.eq_ignore_ascii_case(&plan))
        {
            Some(i) => i,
            None => {
                plans.push((plan.clone(), Vec::new()));
                plans.len() - 1
            }
        };
        let list = &mut plans[idx].1;
        let existing = list.iter().position(|r| r.name.eq_ignore_ascii_case(&name));
        if verb.starts_with("remove") {
            if let Some(e) = existing {
                list.remove(e);
            }
            continue;
        }
        let mut rule = if verb.starts_with("set") {
            let Some(e) = existing else {
                return Err(LintError::parse(
                    file,
                    line,
                    format!(
                        "Set-CsVoiceNormalizationRule: no rule `{plan}/{name}` before this line"
                    ),
                ));
            };
            list.remove(e)
        } else {
            if existing.is_some() {
                return Err(LintError::parse(
                    file,
                    line,
                    format!("rule `{plan}/{name}` is created twice"),
                ));
            }
            LyncRule {
                file: file.to_string(),
                line,
                dial_plan: plan.clone(),
                name: name.clone(),
                pattern: DEFAULT_PATTERN.into(),
                translation: DEFAULT_TRANSLATION.into(),
                priority: 0,
                warning: None,
            }
        };
        if let Some(p) = get("pattern") {
            rule.pattern = p;
        }
        if let Some(t) = get("translation") {
            rule.translation = t;
        }
        rule.line = line;
        if !expanded.is_empty() {
            rule.warning = Some(expanded.join("; "));
        }
        let at = match priority {
            Some(p) => (p.max(0) as usize).min(list.len()),
            None if verb.starts_with("set") => existing.unwrap_or(list.len()).min(list.len()),
            None => list.len(),
        };
        list.insert(at, rule);
    }
    Ok(plans
        .into_iter()
        .flat_map(|(_, v)| {
            v.into_iter().enumerate().map(|(i, mut r)| {
                r.priority = i as i64;
                r
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lync::dial_plans;

    #[test]
    fn double_quotes_expand_variables() {
        let r = parse_ps1(
            "New-CsVoiceNormalizationRule -Parent Global -Name x -Pattern \"^(\\d{4})$\" -Translation \"+1425`$$1\"\n\
             New-CsVoiceNormalizationRule -Parent Global -Name y -Pattern '^(\\d{3})$' -Translation \"+1425$1\"\n",
            "q.ps1",
        )
        .unwrap();
        // `$"` and a backtick-escaped `$` stay; `$1` is an (unset) variable.
        assert_eq!(r[0].pattern, r"^(\d{4})$");
        assert_eq!(r[0].translation, "+1425$");
        assert!(r[0].warning.as_deref().unwrap().contains("$1"));
        assert_eq!(r[1].translation, "+1425");
        assert!(r[1].warning.is_some());
    }

    #[test]
    fn powershell_priorities_insert() {
        let text = "\
New-CsVoiceNormalizationRule -Parent Site:A -Name four -Pattern '^(\\d{4})$' -Translation '+1425$1'
New-CsVoiceNormalizationRule -Identity 'Site:A/keep' -Pattern '^(\\*7\\d\\d)$' `
   -Translation '$1' -Priority 0
$x = New-CsVoiceNormalizationRule -Parent \"Site:A\" -Name 'it''s' -Pattern '^9(\\d+)$' -Translation '+$1' -Priority 1 -InMemory
";
        let r = parse_ps1(text, "a.ps1").unwrap();
        let plans = dial_plans(&r);
        let names: Vec<&str> = plans[0].1.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["keep", "it's", "four"]);
        assert_eq!(plans[0].1[0].line, 2);
        assert_eq!(plans[0].1[0].translation, "$1");
    }
}
