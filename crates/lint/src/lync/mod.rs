//! Lync / Skype for Business / Teams voice normalization rules.
//!
//! Read from the forms administrators have: PowerShell (`New-`, `Set-`, `Remove-
//! CsVoiceNormalizationRule` lines, as exported scripts hold them), the CSV of
//! `Get-CsVoiceNormalizationRule | Export-Csv`, and JSON (`ConvertTo-Json` of the rules, or of
//! dial plans with `NormalizationRules`). Rules of one dial plan apply in priority order and the
//! first whose pattern matches wins; it catches an orbit when its translation changes it.
//!
//! The translation is applied as `Regex.Replace` does: each match of the pattern is replaced by
//! the expanded translation, so the orbit is untouched exactly when every replacement equals
//! the text it replaces.

use regex_syntax::hir::{Hir, HirKind, Look};

use super::automaton::{Dialect, MAX_ENUMERATE, Matcher, NumRange, Undecided};
use super::fix;
use super::runs::RunSet;
use super::{Certainty, LintError, Report, Source};

/// Lync's defaults when a rule gives no `-Pattern` / `-Translation`.
pub(crate) const DEFAULT_PATTERN: &str = r"^(\d{11})$";
pub(crate) const DEFAULT_TRANSLATION: &str = "+$1";

/// One normalization rule as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LyncRule {
    pub file: String,
    pub line: usize,
    /// The dial plan (`Global`, `Site:Redmond`, `Tag:RedmondUsers`, `Service:Registrar:pool`).
    pub dial_plan: String,
    pub name: String,
    pub pattern: String,
    pub translation: String,
    /// Position in the dial plan, 0 first, once the file is read.
    pub priority: i64,
    /// Something about how the rule was written that changes what Lync gets.
    pub warning: Option<String>,
}

/// Reads rules from `text`; the form is told by the file name, else by the content.
pub fn parse(text: &str, file: &str) -> Result<Vec<LyncRule>, LintError> {
    let lower = file.to_ascii_lowercase();
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let first = trimmed
        .lines()
        .find(|l| !l.starts_with("#TYPE"))
        .unwrap_or("")
        .to_ascii_lowercase();
    let rules = if lower.ends_with(".json") || trimmed.starts_with('[') || trimmed.starts_with('{')
    {
        parse_json(text, file)?
    } else if lower.ends_with(".csv")
        || trimmed.starts_with("#TYPE")
        || (first.contains("pattern") && first.contains(',') && !first.contains("-pattern"))
    {
        parse_csv(text, file)?
    } else {
        parse_ps1(text, file)?
    };
    // A file that yields no rule is almost surely the wrong file or form: say so.
    if rules.is_empty()
        && !text
            .to_ascii_lowercase()
            .contains("remove-csvoicenormalizationrule")
    {
        return Err(LintError::parse(
            file,
            1,
            "no normalization rule found (expected New-CsVoiceNormalizationRule lines, an Export-Csv file or JSON)",
        ));
    }
    Ok(rules)
}

/// Rules grouped by dial plan, each plan in the order the rules apply.
pub fn dial_plans(rules: &[LyncRule]) -> Vec<(String, Vec<&LyncRule>)> {
    let mut plans: Vec<(String, Vec<&LyncRule>)> = Vec::new();
    for r in rules {
        match plans
            .iter_mut()
            .find(|(p, _)| p.eq_ignore_ascii_case(&r.dial_plan))
        {
            Some((_, v)) => v.push(r),
            None => plans.push((r.dial_plan.clone(), vec![r])),
        }
    }
    for (_, v) in &mut plans {
        // Stable: rules of equal priority keep file order.
        v.sort_by_key(|r| r.priority);
    }
    plans
}

// ---------------------------------------------------------------- PowerShell

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

/// Splits `Site:Redmond/Rule name` into dial plan and rule name.
fn split_identity(id: &str) -> (String, String) {
    match id.rsplit_once('/') {
        Some((plan, name)) => (plan.to_string(), name.to_string()),
        None => ("Global".to_string(), id.to_string()),
    }
}

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

// ---------------------------------------------------------------- CSV

pub fn parse_csv(text: &str, file: &str) -> Result<Vec<LyncRule>, LintError> {
    let text = text.trim_start_matches('\u{feff}');
    // Export-Csv writes a `#TYPE ...` line first; skip it but keep line numbers true.
    let skipped = text
        .lines()
        .take_while(|l| l.starts_with('#') || l.trim().is_empty())
        .count();
    let body: String = text.lines().skip(skipped).collect::<Vec<_>>().join("\n");
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(body.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| LintError::parse(file, skipped + 1, e.to_string()))?
        .clone();
    let col = |n: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(n))
    };
    let (identity, priority, pattern, translation, name, parent) = (
        col("Identity"),
        col("Priority"),
        col("Pattern"),
        col("Translation"),
        col("Name"),
        col("Parent"),
    );
    if pattern.is_none() {
        return Err(LintError::parse(
            file,
            skipped + 1,
            "no Pattern column (expected the header of Get-CsVoiceNormalizationRule | Export-Csv)",
        ));
    }
    let mut rules = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let line_guess = skipped + 2 + n;
        let rec = rec.map_err(|e| {
            let line = e
                .position()
                .map(|p| p.line() as usize + skipped)
                .unwrap_or(line_guess);
            LintError::parse(file, line, e.to_string())
        })?;
        let line = rec
            .position()
            .map(|p| p.line() as usize + skipped)
            .unwrap_or(line_guess);
        let field = |c: Option<usize>| c.and_then(|i| rec.get(i)).map(str::to_string);
        let (plan, id_name) = match field(identity) {
            Some(id) if !id.is_empty() => split_identity(&id),
            _ => (
                field(parent).unwrap_or_else(|| "Global".into()),
                String::new(),
            ),
        };
        let name = field(name).filter(|s| !s.is_empty()).unwrap_or(id_name);
        let prio = match field(priority).filter(|s| !s.trim().is_empty()) {
            Some(p) => p.trim().parse::<i64>().map_err(|_| {
                LintError::parse(file, line, format!("Priority `{p}` is not a number"))
            })?,
            None => rules.len() as i64,
        };
        rules.push(LyncRule {
            file: file.to_string(),
            line,
            dial_plan: plan,
            name,
            pattern: field(pattern).unwrap_or_else(|| DEFAULT_PATTERN.into()),
            translation: field(translation).unwrap_or_else(|| DEFAULT_TRANSLATION.into()),
            priority: prio,
            warning: None,
        });
    }
    Ok(rules)
}

// ---------------------------------------------------------------- JSON

fn jget<'a>(o: &'a serde_json::Value, k: &str) -> Option<&'a serde_json::Value> {
    o.as_object()?
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(k))
        .map(|(_, v)| v)
}

fn jstr(o: &serde_json::Value, k: &str) -> Option<String> {
    match jget(o, k)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Line of each `"Pattern":` key, in document order: the line a JSON rule is reported at.
fn pattern_key_lines(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let low = l.to_ascii_lowercase();
        let mut from = 0;
        while let Some(p) = low[from..].find("\"pattern\"") {
            let rest = low[from + p + 9..].trim_start();
            if rest.starts_with(':') {
                out.push(i + 1);
            }
            from += p + 9;
        }
    }
    out
}

pub fn parse_json(text: &str, file: &str) -> Result<Vec<LyncRule>, LintError> {
    let v: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| LintError::parse(file, e.line(), e.to_string()))?;
    let lines = pattern_key_lines(text);
    let mut rules = Vec::new();
    let items: Vec<&serde_json::Value> = match &v {
        serde_json::Value::Array(a) => a.iter().collect(),
        o => vec![o],
    };
    let mut add = |r: &serde_json::Value, plan_hint: Option<&str>, index: usize| {
        let (plan, id_name) = match jstr(r, "Identity") {
            Some(id) => split_identity(&id),
            None => (
                plan_hint
                    .map(str::to_string)
                    .or_else(|| jstr(r, "Parent"))
                    .unwrap_or_else(|| "Global".into()),
                String::new(),
            ),
        };
        let plan = match plan_hint {
            Some(h) if jstr(r, "Identity").is_none() => h.to_string(),
            _ => plan,
        };
        let line = lines.get(rules.len()).copied().unwrap_or(1);
        let priority = jget(r, "Priority")
            .and_then(|p| p.as_i64())
            .unwrap_or(index as i64);
        rules.push(LyncRule {
            file: file.to_string(),
            line,
            dial_plan: plan,
            name: jstr(r, "Name").unwrap_or(id_name),
            pattern: jstr(r, "Pattern").unwrap_or_else(|| DEFAULT_PATTERN.into()),
            translation: jstr(r, "Translation").unwrap_or_else(|| DEFAULT_TRANSLATION.into()),
            priority,
            warning: None,
        });
    };
    for (i, item) in items.iter().enumerate() {
        if !item.is_object() {
            return Err(LintError::parse(
                file,
                1,
                "expected rule or dial plan objects",
            ));
        }
        if let Some(list) = jget(item, "NormalizationRules").and_then(|l| l.as_array()) {
            let plan = jstr(item, "Identity").unwrap_or_else(|| "Global".into());
            for (j, r) in list.iter().enumerate() {
                add(r, Some(&plan), j);
            }
        } else {
            add(item, None, i);
        }
    }
    Ok(rules)
}

// ---------------------------------------------------------------- translation

/// One piece of a .NET substitution string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    /// A group by the engine's index (0 is the whole match).
    Group(usize),
    /// `` $` ``: the input before the match.
    Before,
    /// `$'`: the input after the match.
    After,
    /// `$+`: the last group.
    Last,
    /// `$_`: the whole input.
    Input,
}

/// .NET numbers unnamed groups first, then named ones; `names[i]` is the name of the engine's
/// group `i` (engine numbering is left to right). Returns, for .NET number `n`, engine index.
fn dotnet_numbering(names: &[Option<String>]) -> Vec<usize> {
    let mut order = vec![0];
    order.extend((1..names.len()).filter(|&i| names[i].is_none()));
    order.extend((1..names.len()).filter(|&i| names[i].is_some()));
    order
}

/// Parses a .NET substitution (`$1`, `${name}`, `$$`, `$&`, ...) against the pattern's groups.
pub(crate) fn parse_translation(t: &str, names: &[Option<String>]) -> Vec<Part> {
    let numbering = dotnet_numbering(names);
    let mut parts: Vec<Part> = Vec::new();
    let mut lit = String::new();
    let b = t.as_bytes();
    let mut i = 0;
    let flush = |lit: &mut String, parts: &mut Vec<Part>| {
        if !lit.is_empty() {
            parts.push(Part::Lit(std::mem::take(lit)));
        }
    };
    while i < b.len() {
        if b[i] != b'$' || i + 1 >= b.len() {
            let ch = t[i..].chars().next().unwrap();
            lit.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let n = b[i + 1];
        let simple = match n {
            b'$' => Some(Part::Lit("$".into())),
            b'&' => Some(Part::Group(0)),
            b'`' => Some(Part::Before),
            b'\'' => Some(Part::After),
            b'+' => Some(Part::Last),
            b'_' => Some(Part::Input),
            _ => None,
        };
        if let Some(p) = simple {
            if let Part::Lit(s) = p {
                lit.push_str(&s);
            } else {
                flush(&mut lit, &mut parts);
                parts.push(p);
            }
            i += 2;
            continue;
        }
        if n == b'{' {
            if let Some(end) = t[i + 2..].find('}') {
                let name = &t[i + 2..i + 2 + end];
                let group = if let Ok(num) = name.parse::<usize>() {
                    numbering.get(num).copied()
                } else {
                    names.iter().position(|x| x.as_deref() == Some(name))
                };
                if let Some(g) = group {
                    flush(&mut lit, &mut parts);
                    parts.push(Part::Group(g));
                    i += 3 + end;
                    continue;
                }
            }
        }
        if n.is_ascii_digit() {
            // .NET takes the longest run of digits that names a group.
            let mut j = i + 1;
            let mut best = None;
            let mut num = 0usize;
            while j < b.len() && b[j].is_ascii_digit() {
                num = num
                    .saturating_mul(10)
                    .saturating_add((b[j] - b'0') as usize);
                if num < numbering.len() {
                    best = Some((j + 1, numbering[num]));
                }
                j += 1;
            }
            if let Some((end, g)) = best {
                flush(&mut lit, &mut parts);
                parts.push(Part::Group(g));
                i = end;
                continue;
            }
        }
        lit.push('$');
        i += 1;
    }
    flush(&mut lit, &mut parts);
    parts
}

fn expand(
    parts: &[Part],
    text: &str,
    groups: &[Option<(usize, usize)>],
    numbering: &[usize],
) -> String {
    let whole = groups[0].unwrap_or((0, 0));
    let mut s = String::new();
    for p in parts {
        match p {
            Part::Lit(l) => s.push_str(l),
            Part::Group(g) => {
                if let Some(Some((a, b))) = groups.get(*g) {
                    s.push_str(&text[*a..*b]);
                }
            }
            Part::Before => s.push_str(&text[..whole.0]),
            Part::After => s.push_str(&text[whole.1..]),
            Part::Input => s.push_str(text),
            Part::Last => {
                if let Some((a, b)) = numbering
                    .iter()
                    .skip(1)
                    .rev()
                    .find_map(|&g| groups.get(g).copied().flatten())
                {
                    s.push_str(&text[a..b]);
                }
            }
        }
    }
    s
}

/// What `Regex.Replace(text, pattern, translation)` returns.
pub fn rewrite(m: &mut Matcher, parts: &[Part], text: &str) -> Result<String, Undecided> {
    let numbering = dotnet_numbering(&m.group_names());
    let mut out = String::new();
    let mut at = 0;
    for g in m.captures(text)? {
        let (a, b) = g[0].expect("group 0 takes part");
        out.push_str(&text[at..a]);
        out.push_str(&expand(parts, text, &g, &numbering));
        at = b;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

/// Token of the structural identity check.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(Vec<u8>),
    Group(usize),
}

fn push_tok(v: &mut Vec<Tok>, t: Tok) {
    if let (Some(Tok::Lit(a)), Tok::Lit(b)) = (v.last_mut(), &t) {
        a.extend_from_slice(b);
        return;
    }
    if t != Tok::Lit(Vec::new()) {
        v.push(t);
    }
}

/// The pattern without its outer anchors, as literals and whole groups, if it is that simple.
fn body_tokens(h: &Hir) -> Option<Vec<Tok>> {
    let items: Vec<&Hir> = match h.kind() {
        HirKind::Concat(v) => v.iter().collect(),
        _ => vec![h],
    };
    let mut toks = Vec::new();
    let n = items.len();
    for (i, it) in items.into_iter().enumerate() {
        match it.kind() {
            HirKind::Look(Look::Start) if i == 0 => {}
            HirKind::Look(Look::End) if i + 1 == n => {}
            HirKind::Literal(l) => push_tok(&mut toks, Tok::Lit(l.0.to_vec())),
            HirKind::Capture(c) => push_tok(&mut toks, Tok::Group(c.index as usize)),
            _ => return None,
        }
    }
    Some(toks)
}

/// How a rule treats the orbits its pattern matches, when that follows from its shape alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Every replacement equals the text it replaces.
    Keeps,
    /// Every replacement writes a character no orbit has (`+`, `;`, a letter...).
    Changes,
    /// Depends on the orbit.
    Depends,
}

pub fn shape(m: &Matcher, parts: &[Part]) -> Shape {
    let foreign = parts.iter().any(|p| match p {
        Part::Lit(l) => l
            .chars()
            .any(|c| !(c.is_ascii_digit() || c == '*' || c == '#')),
        _ => false,
    });
    if foreign {
        return Shape::Changes;
    }
    if parts == [Part::Group(0)] {
        return Shape::Keeps;
    }
    let Some(body) = m.hir().and_then(body_tokens) else {
        return Shape::Depends;
    };
    let mut tr = Vec::new();
    for p in parts {
        match p {
            Part::Lit(l) => push_tok(&mut tr, Tok::Lit(l.as_bytes().to_vec())),
            Part::Group(0) => {
                for t in &body {
                    push_tok(&mut tr, t.clone());
                }
            }
            Part::Group(g) => push_tok(&mut tr, Tok::Group(*g)),
            _ => return Shape::Depends,
        }
    }
    if tr == body {
        Shape::Keeps
    } else {
        Shape::Depends
    }
}

/// A rule ready to check.
pub struct Compiled<'a> {
    pub rule: &'a LyncRule,
    pub matcher: Result<Matcher, String>,
    parts: Vec<Part>,
    shape: Shape,
}

impl<'a> Compiled<'a> {
    pub fn new(rule: &'a LyncRule) -> Compiled<'a> {
        let matcher = Matcher::new(&rule.pattern, Dialect::DotNet);
        let (parts, shape) = match &matcher {
            Ok(m) => {
                let parts = parse_translation(&rule.translation, &m.group_names());
                let s = shape(m, &parts);
                (parts, s)
            }
            Err(_) => (Vec::new(), Shape::Depends),
        };
        Compiled {
            rule,
            matcher,
            parts,
            shape,
        }
    }

    pub fn label(&self) -> String {
        if self.rule.name.is_empty() {
            self.rule.pattern.clone()
        } else {
            self.rule.name.clone()
        }
    }

    /// Splits `hit` (orbits the pattern matches) into (changed, kept).
    pub fn split(&mut self, range: &NumRange, hit: &RunSet) -> Result<(RunSet, RunSet), Undecided> {
        match self.shape {
            Shape::Keeps => return Ok((RunSet::new(), hit.clone())),
            Shape::Changes => return Ok((hit.clone(), RunSet::new())),
            Shape::Depends => {}
        }
        if hit.count() > MAX_ENUMERATE {
            return Err(Undecided(format!(
                "translation `{}` keeps some orbits and changes others, and the {} orbits it applies to are more than {MAX_ENUMERATE} to try one by one",
                self.rule.translation,
                hit.count()
            )));
        }
        let m = self.matcher.as_mut().expect("matched, so compiled");
        let (mut changed, mut kept) = (RunSet::new(), RunSet::new());
        for v in hit.values() {
            let t = range.text(v);
            if rewrite(m, &self.parts, &t)? == t {
                kept.push(v, v);
            } else {
                changed.push(v, v);
            }
        }
        Ok((changed, kept))
    }
}

/// Checks every dial plan of `rules` against the report's targets.
pub fn check(rules: &[LyncRule], report: &mut Report) {
    report.rules += rules.len();
    for r in rules {
        if let Some(w) = &r.warning {
            report
                .notes
                .push(format!("{}:{}: rule `{}`: {w}", r.file, r.line, r.name));
        }
    }
    for (plan, list) in dial_plans(rules) {
        let mut compiled: Vec<Compiled> = list.iter().map(|r| Compiled::new(r)).collect();
        for ti in 0..report.targets.len() {
            let range = report.targets[ti].range.clone();
            check_plan(&plan, &mut compiled, ti, &range, report);
        }
    }
    for f in report
        .findings
        .iter_mut()
        .filter(|f| f.source == Source::Lync && f.fix.is_empty())
    {
        f.fix = lync_fix(f, &report.targets, rules);
        // A normalization rule rewrites numbers: there is no destination to conflict with.
        f.kind_why = Some(
            "a normalization rule rewrites the number before routing: callpark's rule goes in front of it"
                .into(),
        );
    }
}

fn check_plan(
    plan: &str,
    rules: &mut [Compiled],
    ti: usize,
    range: &NumRange,
    report: &mut Report,
) {
    let mut remaining = range.all();
    let mut kept_by: Vec<(usize, RunSet)> = Vec::new();
    for (ri, c) in rules.iter_mut().enumerate() {
        if remaining.is_empty() {
            break;
        }
        let label = c.label();
        let r = c.rule;
        let finding = |report: &mut Report, certainty, set: RunSet, why: Option<String>| {
            report.add_finding(
                Source::Lync,
                &r.file,
                r.line,
                &label,
                plan,
                certainty,
                ti,
                set,
                why,
            )
        };
        // A pattern that does not compile, or whose answer the automaton cannot give, leaves
        // what is still unclaimed undecided: never passed.
        let matched = match &mut c.matcher {
            Ok(m) => m.matching(range).map_err(|Undecided(why)| why),
            Err(e) => Err(e.clone()),
        };
        let hit = match matched {
            Ok(h) => h.intersect(&remaining),
            Err(why) => {
                finding(report, Certainty::Undecided, remaining.clone(), Some(why));
                continue;
            }
        };
        if hit.is_empty() {
            continue;
        }
        match c.split(range, &hit) {
            Ok((changed, kept)) => {
                finding(report, Certainty::Caught, changed, None);
                if !kept.is_empty() {
                    report.add_protection(
                        Source::Lync,
                        &r.file,
                        r.line,
                        &label,
                        plan,
                        ti,
                        kept.clone(),
                    );
                    kept_by.push((ri, kept));
                }
            }
            Err(Undecided(why)) => {
                finding(report, Certainty::Undecided, hit.clone(), Some(why));
            }
        }
        remaining = remaining.difference(&hit);
    }
    // Rules below a protecting rule that would have changed what it kept: say so.
    for (ki, kept) in kept_by {
        let (head, tail) = rules.split_at_mut(ki + 1);
        let protector = &head[ki];
        for c in tail.iter_mut() {
            let Ok(m) = &mut c.matcher else { continue };
            let Ok(h) = m.matching(range) else { continue };
            let would = h.intersect(&kept);
            if would.is_empty() {
                continue;
            }
            let changes = match c.split(range, &would) {
                Ok((ch, _)) => !ch.is_empty(),
                Err(_) => true,
            };
            if changes {
                let name = c.label();
                if let Some(p) = report.protections.iter_mut().find(|p| {
                    p.source == Source::Lync
                        && p.file == protector.rule.file
                        && p.line == protector.rule.line
                        && p.scope == plan
                }) && !p.shields.contains(&name)
                {
                    p.shields.push(name);
                }
            }
        }
    }
}

fn ps_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A protecting rule placed right above the catching one.
fn lync_fix(f: &super::Finding, targets: &[super::Target], rules: &[LyncRule]) -> String {
    let parts = fix::caught_parts(f, targets);
    let (pattern, translation) = fix::protecting_pattern(&parts);
    let names: Vec<String> = parts
        .iter()
        .flat_map(|(r, s)| {
            s.runs().iter().map(move |&(a, b)| {
                if a == b {
                    r.text(a)
                } else {
                    format!("{}-{}", r.text(a), r.text(b))
                }
            })
        })
        .collect();
    let mut name = format!("Keep park orbits {}", names.join(","));
    if name.len() > 60 {
        name = "Keep park orbits".into();
    }
    let priority = rules
        .iter()
        .find(|r| {
            r.file == f.file && r.line == f.line && r.dial_plan.eq_ignore_ascii_case(&f.scope)
        })
        .map(|r| r.priority)
        .unwrap_or(0);
    format!(
        "New-CsVoiceNormalizationRule -Parent {} -Name {} -Pattern {} -Translation {} -Priority {priority}   # above rule '{}'",
        ps_quote(&f.scope),
        ps_quote(&name),
        ps_quote(&pattern),
        ps_quote(&translation),
        f.rule
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutions_follow_dotnet() {
        let names = vec![None, None, Some("ext".to_string()), None];
        // .NET numbers the unnamed groups (engine 1, 3) before the named one (engine 2).
        assert_eq!(
            parse_translation("+1425$1${ext}$2$$x$10", &names),
            vec![
                Part::Lit("+1425".into()),
                Part::Group(1),
                Part::Group(2),
                Part::Group(3),
                Part::Lit("$x".into()),
                Part::Group(1),
                Part::Lit("0".into()),
            ]
        );
        assert_eq!(
            parse_translation("$9", &names),
            vec![Part::Lit("$9".into())]
        );
    }

    #[test]
    fn shapes() {
        let s = |p: &str, t: &str| {
            let m = Matcher::new(p, Dialect::DotNet).unwrap();
            shape(&m, &parse_translation(t, &m.group_names()))
        };
        assert_eq!(s(r"^(\*7\d\d)$", "$1"), Shape::Keeps);
        assert_eq!(s(r"^\*(7\d\d)$", "*$1"), Shape::Keeps);
        assert_eq!(s(r"^(?<o>\*7\d\d)$", "${o}"), Shape::Keeps);
        assert_eq!(s(r"^\*7\d\d$", "$0"), Shape::Keeps);
        assert_eq!(s(r"^(\d{4})$", "+1425555$1"), Shape::Changes);
        assert_eq!(s(r"^(\d{4})$", "5$1"), Shape::Depends);
        assert_eq!(s(r"^\*?(7\d\d)$", "*$1"), Shape::Depends);
    }

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
