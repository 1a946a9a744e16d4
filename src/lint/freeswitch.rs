//! FreeSWITCH dialplan XML: which extension takes each orbit in a context.
//!
//! FreeSWITCH tries the extensions of a context in document order. Within one, conditions run
//! in order: a true condition queues its actions, a false one its anti-actions, and `break`
//! (`on-false` by default, `on-true`, `always`, `never`) says whether to go on. An extension
//! that queued anything takes the call and ends the hunt, unless it has `continue="true"`;
//! then only what it routes or rewrites (transfer, bridge, `set destination_number`...) takes
//! the orbit. Conditions on fields other than `destination_number` (caller, time, variables)
//! cannot be decided here, so what they lead to is "may catch".
//!
//! Callpark's extension is one named `callpark...` or whose actions name callpark (for
//! example `transfer $1 XML callpark`, or a `socket` to callpark's address with `callpark` in
//! its data).

use std::path::{Path, PathBuf};

use quick_xml::events::{BytesStart, Event};

use super::automaton::{Dialect, Matcher, NumRange};
use super::files;
use super::runs::RunSet;
use super::{Certainty, Kind, LintError, Report, Source};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub application: String,
    pub data: String,
    /// `inline="true"`: run during the hunt, never queued.
    pub inline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    OnFalse,
    OnTrue,
    Always,
    Never,
}

/// What a condition tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// `field="destination_number"` with a PCRE expression.
    Destination(String),
    /// Nothing to test: always true.
    Always,
    /// A test whose outcome is the same for every call (`field=""`).
    Fixed(bool),
    /// `destination_number` against an expression holding variables, given here with each
    /// variable as "any text": numbers it does not match surely fail.
    Expanded(String),
    /// Another field, time of day, or several regexes: the lint cannot know.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub test: Test,
    /// `field="${name}"` with its expression: decidable when `name` was set inline before.
    pub var_test: Option<(String, String)>,
    pub brk: Break,
    pub actions: Vec<Action>,
    pub anti_actions: Vec<Action>,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub name: String,
    pub cont: bool,
    pub conditions: Vec<Condition>,
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsContext {
    pub name: String,
    pub extensions: Vec<Extension>,
    pub file: String,
    pub line: usize,
}

/// An `X-PRE-PROCESS include` line and the files it brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub file: String,
    pub line: usize,
    /// Its `data` as written.
    pub data: String,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dialplan {
    pub contexts: Vec<FsContext>,
    pub includes: Vec<Include>,
}

/// One line of the preprocessed document and where it came from.
struct Src {
    file: String,
    line: usize,
}

fn attr(e: &BytesStart, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref().eq_ignore_ascii_case(name.as_bytes()))
        .map(|a| {
            a.unescape_value()
                .map(|v| v.to_string())
                .unwrap_or_else(|_| String::from_utf8_lossy(&a.value).to_string())
        })
}

/// FreeSWITCH's preprocessor: `<X-PRE-PROCESS cmd="include" data="..."/>` (glob, relative to
/// the including file) and `cmd="set"` variables used as `$${name}`.
fn preprocess(
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

/// `expr` with each `${...}` as "any text" (inside `\Q...\E` too).
fn relax_variables(expr: &str) -> String {
    let mut out = String::new();
    let (mut quoted, mut rest) = (false, expr);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("\\Q") {
            quoted = true;
            out.push_str("\\Q");
            rest = r;
        } else if let Some(r) = rest.strip_prefix("\\E") {
            quoted = false;
            out.push_str("\\E");
            rest = r;
        } else if rest.starts_with("${")
            && let Some(end) = rest.find('}')
        {
            out.push_str(if quoted { "\\E(?:.*)\\Q" } else { "(?:.*)" });
            rest = &rest[end + 1..];
        } else if rest.starts_with('\\') && rest.len() > 1 && !quoted {
            let n = rest[1..].chars().next().map_or(1, char::len_utf8) + 1;
            out.push_str(&rest[..n]);
            rest = &rest[n..];
        } else {
            let n = rest.chars().next().map_or(1, char::len_utf8);
            out.push_str(&rest[..n]);
            rest = &rest[n..];
        }
    }
    out
}

/// FreeSWITCH's `switch_true`: yes, on, true, t, enabled, active, allow, or a non-zero number.
fn switch_true(v: &str) -> bool {
    let v = v.trim().to_ascii_lowercase();
    matches!(
        v.as_str(),
        "yes" | "on" | "true" | "t" | "enabled" | "active" | "allow"
    ) || v.parse::<i64>().is_ok_and(|n| n != 0)
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

/// Reads `path` and what it includes.
pub fn load(path: &Path) -> Result<Dialplan, LintError> {
    let mut lines = Vec::new();
    let mut includes = Vec::new();
    preprocess(
        path,
        &mut Vec::new(),
        &mut lines,
        &mut includes,
        &mut Vec::new(),
        None,
    )?;
    let mut dp = parse_lines(&lines)?;
    dp.includes = includes;
    Ok(dp)
}

/// Parses a document given as text (no preprocessing).
pub fn parse_str(text: &str, file: &str) -> Result<Dialplan, LintError> {
    let lines: Vec<(String, Src)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            (
                l.to_string(),
                Src {
                    file: file.to_string(),
                    line: i + 1,
                },
            )
        })
        .collect();
    parse_lines(&lines)
}

fn parse_lines(lines: &[(String, Src)]) -> Result<Dialplan, LintError> {
    let mut text = String::new();
    let mut starts = Vec::with_capacity(lines.len());
    for (l, _) in lines {
        starts.push(text.len());
        text.push_str(l);
        text.push('\n');
    }
    let at = |pos: usize| -> (&str, usize) {
        let i = starts.partition_point(|&s| s <= pos).saturating_sub(1);
        lines
            .get(i)
            .map(|(_, s)| (s.file.as_str(), s.line))
            .unwrap_or(("", 0))
    };
    let mut reader = quick_xml::Reader::from_str(&text);
    reader.config_mut().trim_text(true);
    let mut dp = Dialplan::default();
    let mut ctx: Option<FsContext> = None;
    let mut ext: Option<Extension> = None;
    let mut cond: Option<Condition> = None;
    loop {
        let before = reader.buffer_position() as usize;
        let tag_pos = text[before..]
            .find('<')
            .map(|p| before + p)
            .unwrap_or(before);
        let ev = reader.read_event().map_err(|e| {
            let (f, l) = at(reader.error_position() as usize);
            LintError::parse(f, l, format!("XML: {e}"))
        })?;
        let (file, line) = at(tag_pos);
        let (start, empty) = match &ev {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            _ => (None, false),
        };
        if let Some(e) = start {
            let name = String::from_utf8_lossy(e.name().as_ref()).to_ascii_lowercase();
            match name.as_str() {
                "context" => {
                    ctx = Some(FsContext {
                        name: attr(&e, "name").unwrap_or_default(),
                        extensions: Vec::new(),
                        file: file.to_string(),
                        line,
                    });
                    if empty {
                        dp.contexts.push(ctx.take().unwrap());
                    }
                }
                "extension" => {
                    ext = Some(Extension {
                        name: attr(&e, "name").unwrap_or_default(),
                        cont: attr(&e, "continue").is_some_and(|v| switch_true(&v)),
                        conditions: Vec::new(),
                        file: file.to_string(),
                        line,
                    });
                    if empty && let (Some(c), Some(x)) = (ctx.as_mut(), ext.take()) {
                        c.extensions.push(x);
                    }
                }
                "condition" => {
                    // A nested condition (FreeSWITCH 1.6+): the lint reads it as the next one.
                    if let (Some(x), Some(c)) = (ext.as_mut(), cond.take()) {
                        x.conditions.push(c);
                    }
                    let field = attr(&e, "field");
                    let expr = attr(&e, "expression");
                    let brk = match attr(&e, "break")
                        .as_deref()
                        .map(str::to_ascii_lowercase)
                        .as_deref()
                    {
                        Some("on-true") => Break::OnTrue,
                        Some("always") => Break::Always,
                        Some("never") => Break::Never,
                        _ => Break::OnFalse,
                    };
                    const TIME: [&str; 13] = [
                        "year",
                        "yday",
                        "mon",
                        "mday",
                        "week",
                        "mweek",
                        "wday",
                        "hour",
                        "minute",
                        "minute-of-day",
                        "time-of-day",
                        "date-time",
                        "tod",
                    ];
                    let timed = TIME.iter().any(|k| attr(&e, k).is_some());
                    let test = match (field.as_deref(), expr) {
                        _ if attr(&e, "regex").is_some() => {
                            Test::Unknown("several regexes (regex=\"any|all|xor\")".into())
                        }
                        (Some(f), Some(x))
                            if f.eq_ignore_ascii_case("destination_number")
                                || f.eq_ignore_ascii_case("${destination_number}") =>
                        {
                            if timed {
                                Test::Unknown("a time of day as well".into())
                            } else if x.contains("${") {
                                // FreeSWITCH expands the expression before matching it: a
                                // variable may hold any text, so only numbers the expression
                                // matches with any text in its place may pass.
                                Test::Expanded(relax_variables(&x))
                            } else {
                                Test::Destination(x)
                            }
                        }
                        // An empty field is the empty string (no profile field has no name):
                        // the expression decides once and for all.
                        (Some(""), x) if !timed => {
                            let x = x.unwrap_or_default();
                            match regex::Regex::new(&x) {
                                Ok(re) => Test::Fixed(re.is_match("")),
                                Err(_) => Test::Unknown(format!("expression `{x}`")),
                            }
                        }
                        (Some(f), _) => Test::Unknown(format!("field `{f}`")),
                        (None, _) if timed => Test::Unknown("the time of day".into()),
                        (None, _) => Test::Always,
                    };
                    let var_test = field
                        .as_deref()
                        .and_then(|f| f.strip_prefix("${")?.strip_suffix('}'))
                        .filter(|n| !n.contains(['$', '{', '(', ' ']))
                        .zip(attr(&e, "expression"))
                        .map(|(n, x)| (n.to_string(), x));
                    cond = Some(Condition {
                        test,
                        var_test,
                        brk,
                        actions: Vec::new(),
                        anti_actions: Vec::new(),
                        line,
                    });
                    if empty && let (Some(x), Some(c)) = (ext.as_mut(), cond.take()) {
                        x.conditions.push(c);
                    }
                }
                "action" | "anti-action" => {
                    let a = Action {
                        application: attr(&e, "application").unwrap_or_default(),
                        data: attr(&e, "data").unwrap_or_default(),
                        inline: attr(&e, "inline").is_some_and(|v| switch_true(&v)),
                    };
                    if let Some(c) = cond.as_mut() {
                        if name == "action" {
                            c.actions.push(a);
                        } else {
                            c.anti_actions.push(a);
                        }
                    }
                }
                _ => {}
            }
            continue;
        }
        match ev {
            Event::End(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).to_ascii_lowercase();
                match name.as_str() {
                    "condition" => {
                        if let (Some(x), Some(c)) = (ext.as_mut(), cond.take()) {
                            x.conditions.push(c);
                        }
                    }
                    "extension" => {
                        if let (Some(c), Some(x)) = (ctx.as_mut(), ext.take()) {
                            c.extensions.push(x);
                        }
                    }
                    "context" => {
                        if let Some(c) = ctx.take() {
                            dp.contexts.push(c);
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    for x in dp.contexts.iter_mut().flat_map(|c| c.extensions.iter_mut()) {
        decide_inline_vars(x);
    }
    Ok(dp)
}

/// Conditions on a variable that an earlier condition of the same extension surely set
/// inline (`set name=value inline="true"` in an unconditional condition: every number that
/// reaches a later condition went through it) are decided on that value, as FreeSWITCH would
/// during the hunt. A set that only some calls run makes the value unknown again.
fn decide_inline_vars(x: &mut Extension) {
    let mut known: Vec<(String, Option<String>)> = Vec::new();
    for c in &mut x.conditions {
        if let (Test::Unknown(_), Some((name, expr))) = (&c.test, &c.var_test)
            && let Some((_, Some(value))) = known.iter().rev().find(|(k, _)| k == name)
            && let Ok(re) = regex::Regex::new(expr)
        {
            c.test = Test::Fixed(re.is_match(value));
        }
        let surely = matches!(c.test, Test::Always | Test::Fixed(true));
        let sets = c.actions.iter().map(|a| (a, surely));
        let anti = c.anti_actions.iter().map(|a| (a, false));
        for (a, runs) in sets.chain(anti).filter(|(a, _)| a.inline) {
            if matches!(
                a.application.to_ascii_lowercase().as_str(),
                "set" | "export"
            ) && let Some((k, v)) = a.data.split_once('=')
            {
                let value = (runs && !v.contains('$')).then(|| v.to_string());
                known.push((k.trim().to_string(), value));
            }
        }
    }
}

/// Applications that send the call somewhere else or end it (scripts may do either).
const ROUTING: [&str; 21] = [
    "transfer",
    "bridge",
    "execute_extension",
    "socket",
    "park",
    "valet_park",
    "redirect",
    "deflect",
    "respond",
    "hangup",
    "voicemail",
    "conference",
    "ivr",
    "intercept",
    "pickup",
    "fifo",
    "lua",
    "javascript",
    "python",
    "perl",
    "enum",
];

/// Applications that only prepare the call for what follows: an extension that runs nothing
/// else is no destination of its own.
const PREPARES: [&str; 34] = [
    "set",
    "export",
    "multiset",
    "unset",
    "multiunset",
    "push",
    "unshift",
    "set_global",
    "set_profile_var",
    "set_user",
    "set_name",
    "hash",
    "db",
    "limit",
    "group",
    "log",
    "info",
    "event",
    "verbose_events",
    "answer",
    "pre_answer",
    "ring_ready",
    "sleep",
    "sched_hangup",
    "sched_cancel",
    "record_session",
    "bind_meta_app",
    "bind_digit_action",
    "digit_action_set_realm",
    "privacy",
    "presence",
    "set_zombie_exec",
    "enable_heartbeat",
    "send_display",
];

/// Whether an action routes the call or rewrites the number (for `continue="true"`
/// extensions: anything else, such as `set`, `answer` or `playback`, lets the hunt go on).
fn routes(a: &Action) -> bool {
    let app = a.application.to_ascii_lowercase();
    if ROUTING.contains(&app.as_str()) {
        return true;
    }
    let d = a.data.trim_start().to_ascii_lowercase();
    matches!(app.as_str(), "set" | "export" | "multiset")
        && (d.starts_with("destination_number=") || d.starts_with("effective_destination"))
}

/// callpark's own extensions: those `callpark dialplan freeswitch` writes (all named
/// `callpark-...`), and hand-written ones named so or whose actions name callpark (for example
/// `transfer $1 XML callpark`, or a `socket` to callpark's address with `callpark` in its data).
fn is_callpark(x: &Extension) -> bool {
    x.name.to_ascii_lowercase().starts_with("callpark")
        || x.conditions.iter().any(|c| {
            c.actions.iter().chain(&c.anti_actions).any(|a| {
                a.data.to_ascii_lowercase().contains("callpark")
                    || a.application.to_ascii_lowercase().contains("callpark")
            })
        })
}

/// The top-level alternatives of a pattern (`a|b|(c|d)` gives `a`, `b`, `(c|d)`).
fn alternatives(expr: &str) -> Vec<&str> {
    let (mut depth, mut in_class, mut esc, mut start) = (0i32, false, false, 0);
    let mut out = Vec::new();
    for (i, c) in expr.char_indices() {
        match c {
            _ if esc => esc = false,
            '\\' => esc = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => depth -= 1,
            '|' if !in_class && depth == 0 => {
                out.push(&expr[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&expr[start..]);
    out
}

/// The text a pattern matches when it matches exactly one string (`^9196$`, `^(\*4000)$`,
/// `^\Q*98\E$`), anchored at both ends; `None` for anything else.
fn literal(expr: &str) -> Option<String> {
    let mut core = expr.strip_prefix('^')?.strip_suffix('$')?;
    while let Some(inner) = core.strip_prefix('(').and_then(|c| c.strip_suffix(')')) {
        if alternatives(inner).len() > 1 {
            return None;
        }
        core = inner;
    }
    let mut out = String::new();
    let mut chars = core.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                'Q' => {
                    let rest: String = chars.by_ref().collect();
                    let (quoted, after) = rest.split_once("\\E").unwrap_or((&rest, ""));
                    out.push_str(quoted);
                    if !after.is_empty() {
                        return None;
                    }
                    break;
                }
                n if n.is_ascii_punctuation() => out.push(n),
                _ => return None,
            },
            c if c.is_ascii_alphanumeric() || matches!(c, '*' | '#' | '+' | '-' | '_' | '@') => {
                if matches!(c, '*' | '+') {
                    return None;
                }
                out.push(c)
            }
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The strings a `destination_number` expression names exactly: the whole expression, or each
/// alternative of `^a$|^b$` or `^(a|b)$` that is one literal string (`vmain`, `*4000`).
fn exact_numbers(expr: &str) -> Vec<String> {
    let mut out: Vec<String> = alternatives(expr).into_iter().filter_map(literal).collect();
    if let Some(inner) = expr
        .strip_prefix("^(")
        .and_then(|e| e.strip_suffix(")$"))
        .filter(|i| alternatives(i).len() > 1)
    {
        out.extend(
            alternatives(inner)
                .into_iter()
                .filter_map(|a| literal(&format!("^{a}$"))),
        );
    }
    out
}

/// Whether every alternative of the expression is one literal string.
fn names_numbers(expr: &str) -> bool {
    let whole = alternatives(expr);
    if whole.iter().all(|a| literal(a).is_some()) {
        return true;
    }
    expr.strip_prefix("^(")
        .and_then(|e| e.strip_suffix(")$"))
        .is_some_and(|inner| {
            alternatives(inner)
                .iter()
                .all(|a| literal(&format!("^{a}$")).is_some())
        })
}

/// Whether an expression matches numbers of any length (`^(.*)$`, `^\*9(\d+)$`).
fn is_catch_all(expr: &str) -> bool {
    let bare = expr.replace(r"\*", "").replace(r"\+", "");
    bare.contains('*') || bare.contains('+')
}

/// What one action says about the numbers that reach it (see `classify`).
fn action_kind(a: &Action) -> Option<(Kind, String)> {
    let app = a.application.to_ascii_lowercase();
    let d = a.data.to_ascii_lowercase();
    let shown = format!("{} {}", a.application, a.data);
    let shown = shown.trim();
    match app.as_str() {
        "bridge" => {
            if d.contains("app=voicemail") {
                Some((Kind::Conflicts, format!("it takes voicemail (`{shown}`)")))
            } else if d.contains("user/") || d.contains("sofia/internal/") {
                Some((
                    Kind::Conflicts,
                    format!("it rings the phone of the dialled number (`{shown}`)"),
                ))
            } else if d.contains("gateway/") || d.contains("sofia/external/") {
                Some((
                    Kind::Catches,
                    format!("it dials out through a gateway (`{shown}`)"),
                ))
            } else {
                None
            }
        }
        "voicemail" | "conference" | "ivr" | "fifo" | "echo" | "delay_echo" | "valet_park"
        | "pickup" | "intercept" | "eavesdrop" | "three_way" | "callcenter" => {
            Some((Kind::Conflicts, format!("it runs a service (`{shown}`)")))
        }
        "transfer" | "execute_extension" | "deflect" | "redirect" => {
            Some((Kind::Catches, format!("it sends the number on (`{shown}`)")))
        }
        _ => None,
    }
}

/// Whether orbits taken by `x` are to be protected from it (`Catches`) or are its own
/// numbers (`Conflicts`), and why. An expression matching any length is a catch-all; one whose
/// alternatives are all literal strings names destinations. Otherwise the first action that
/// says something decides (`bridge user/...`, `voicemail`, `conference`, `ivr` are
/// destinations; `transfer` or a gateway sends the number on); an action the lint cannot
/// follow (a script, an application it does not know) is taken as a destination, so no fix
/// ever reorders it. An extension that only prepares the call (`set`, `answer`, `log`...) or
/// does nothing at all `Catches`: the call goes nowhere there.
pub fn classify(x: &Extension) -> (Kind, String) {
    let exprs: Vec<&str> = x
        .conditions
        .iter()
        .filter_map(|c| match &c.test {
            Test::Destination(e) => Some(e.as_str()),
            _ => None,
        })
        .collect();
    if let Some(e) = exprs.iter().find(|e| is_catch_all(e)) {
        return (
            Kind::Catches,
            format!(
                "`{e}` matches numbers of any length: a catch-all, callpark goes in front of it"
            ),
        );
    }
    if let Some(e) = exprs.iter().find(|e| names_numbers(e)) {
        return (
            Kind::Conflicts,
            if alternatives(e).len() > 1 || exact_numbers(e).len() > 1 {
                format!("`{e}` names its numbers one by one: destinations of their own")
            } else {
                format!("`{e}` names one number: a destination of its own")
            },
        );
    }
    let queued = || {
        x.conditions
            .iter()
            .flat_map(|c| c.actions.iter().chain(&c.anti_actions))
            .filter(|a| !a.inline)
    };
    if let Some(k) = queued().find_map(action_kind) {
        return k;
    }
    if let Some(a) =
        queued().find(|a| !PREPARES.contains(&a.application.to_ascii_lowercase().as_str()))
    {
        let shown = format!("{} {}", a.application, a.data);
        return (
            Kind::Conflicts,
            format!(
                "it runs `{}`, which the lint cannot follow: taken as a destination, never reordered",
                shown.trim()
            ),
        );
    }
    (
        Kind::Catches,
        "no action of it is a destination (a phone, voicemail, a conference, an IVR, a script): the call goes nowhere there".into(),
    )
}

/// Orbits for which one extension surely / maybe takes the call.
struct Outcome {
    sure: RunSet,
    maybe: RunSet,
    /// The first condition on something the lint cannot know that the outcome depends on.
    depends: Option<String>,
}

/// At most this many conditions of one extension on things the lint cannot know are tried
/// both ways (2^n walks); beyond, every number that may reach the extension "may" be taken.
const MAX_UNKNOWN: usize = 10;

/// One extension against `range`, as mod_dialplan_xml hunts it. Conditions run in order on
/// the numbers that reach them; each is true or false. A condition "proceeds" when it is
/// true, or false with anti-actions; the extension takes the call when the last condition
/// evaluated proceeded (`continue="true"` aside: the hunt goes on). `break` decides which
/// numbers reach the next condition. Actions queued on the way (`inline="true"` ones run at
/// once and queue nothing) run when the call is finally taken, by this extension or a later
/// one, so a queued `transfer` (or any routing application) takes the call even when the
/// extension does not. A condition the lint cannot decide (another field, the time of day,
/// a pattern it cannot read) is tried both ways: "sure" is what every way takes, "maybe" what
/// some way takes.
fn evaluate(
    x: &Extension,
    matchers: &mut [Option<Result<Matcher, String>>],
    range: &NumRange,
    undecided: &mut Option<String>,
) -> Outcome {
    let all = range.all();
    let mut depends = None;
    // Per condition: Ok(the numbers it holds true for), or Err(the numbers it may hold true
    // for) when that depends on what the lint cannot know.
    let verdicts: Vec<Result<RunSet, RunSet>> = x
        .conditions
        .iter()
        .zip(matchers.iter_mut())
        .map(|(c, m)| match (&c.test, m) {
            (Test::Always, _) | (Test::Fixed(true), _) => Ok(all.clone()),
            (Test::Fixed(false), _) => Ok(RunSet::new()),
            (Test::Destination(_), Some(Ok(m))) => match m.matching(range) {
                Ok(t) => Ok(t),
                Err(w) => {
                    undecided.get_or_insert(w.0);
                    Err(all.clone())
                }
            },
            (Test::Expanded(e), Some(Ok(m))) => match m.matching(range) {
                Ok(t) if t.is_empty() => Ok(t),
                Ok(t) => {
                    depends.get_or_insert_with(|| format!("depends on the variables in `{e}`"));
                    Err(t)
                }
                Err(w) => {
                    undecided.get_or_insert(w.0);
                    Err(all.clone())
                }
            },
            (Test::Destination(_) | Test::Expanded(_), Some(Err(e))) => {
                undecided.get_or_insert(e.clone());
                Err(all.clone())
            }
            (Test::Unknown(w), _) => {
                depends.get_or_insert_with(|| format!("depends on {w}"));
                Err(all.clone())
            }
            (Test::Destination(_) | Test::Expanded(_), None) => Err(all.clone()),
        })
        .collect();
    let unknown: Vec<usize> = (0..verdicts.len())
        .filter(|&i| verdicts[i].is_err())
        .collect();
    let walk = |truth: &dyn Fn(usize) -> bool| -> RunSet {
        let (mut alive, mut proceeded, mut routed) = (all.clone(), RunSet::new(), RunSet::new());
        for (i, c) in x.conditions.iter().enumerate() {
            if alive.is_empty() {
                break;
            }
            let t = match &verdicts[i] {
                Ok(t) => t.intersect(&alive),
                Err(may) if truth(i) => may.intersect(&alive),
                Err(_) => RunSet::new(),
            };
            let f = alive.difference(&t);
            let here = if c.anti_actions.is_empty() {
                t.clone()
            } else {
                alive.clone()
            };
            proceeded = proceeded.difference(&alive).union(&here);
            if c.actions.iter().any(|a| !a.inline && routes(a)) {
                routed = routed.union(&t);
            }
            if c.anti_actions.iter().any(|a| !a.inline && routes(a)) {
                routed = routed.union(&f);
            }
            alive = match c.brk {
                Break::OnFalse => t,
                Break::OnTrue => f,
                Break::Always => RunSet::new(),
                Break::Never => alive,
            };
        }
        if x.cont {
            routed
        } else {
            proceeded.union(&routed)
        }
    };
    if unknown.len() > MAX_UNKNOWN {
        let maybe = walk(&|_| true).union(&walk(&|_| false));
        return Outcome {
            sure: RunSet::new(),
            maybe: if maybe.is_empty() { RunSet::new() } else { all },
            depends,
        };
    }
    let (mut sure, mut maybe) = (all.clone(), RunSet::new());
    for bits in 0u32..(1 << unknown.len()) {
        let taken = walk(&|i| {
            let k = unknown.iter().position(|&u| u == i).unwrap_or(0);
            bits & (1 << k) != 0
        });
        sure = sure.intersect(&taken);
        maybe = maybe.union(&taken);
    }
    Outcome {
        sure,
        maybe,
        depends,
    }
}

/// Where callpark's extensions of a context come from: the `X-PRE-PROCESS include` line that
/// brought them in, or the first of them when written into the file itself.
fn callpark_place(dp: &Dialplan, exts: &[&Extension], cps: &[bool]) -> Option<String> {
    let first = exts.iter().zip(cps).find(|(_, c)| **c).map(|(x, _)| *x)?;
    Some(
        match dp.includes.iter().find(|i| i.files.contains(&first.file)) {
            Some(i) => format!(
                "the line <X-PRE-PROCESS cmd=\"include\" data=\"{}\"/> ({}:{})",
                i.data, i.file, i.line
            ),
            None => format!(
                "<extension name=\"{}\"> ({}:{})",
                first.name, first.file, first.line
            ),
        },
    )
}

/// Checks the orbits dialled in `context`.
pub fn check(dp: &Dialplan, context: &str, report: &mut Report) -> Result<(), LintError> {
    let ctxs: Vec<&FsContext> = dp.contexts.iter().filter(|c| c.name == context).collect();
    if ctxs.is_empty() {
        return Err(LintError::Usage(format!(
            "no <context name=\"{context}\"> in the FreeSWITCH dialplan"
        )));
    }
    let exts: Vec<&Extension> = ctxs.iter().flat_map(|c| &c.extensions).collect();
    report.rules += exts.len();
    let mut matchers: Vec<Vec<Option<Result<Matcher, String>>>> = exts
        .iter()
        .map(|x| {
            x.conditions
                .iter()
                .map(|c| match &c.test {
                    Test::Destination(e) | Test::Expanded(e) => {
                        Some(Matcher::new(e, Dialect::Pcre))
                    }
                    _ => None,
                })
                .collect()
        })
        .collect();
    let cps: Vec<bool> = exts.iter().map(|x| is_callpark(x)).collect();
    for ti in 0..report.targets.len() {
        let range = report.targets[ti].range.clone();
        let mut remaining = range.all();
        for (k, x) in exts.iter().enumerate() {
            if remaining.is_empty() {
                break;
            }
            let mut undecided = None;
            let o = evaluate(x, &mut matchers[k], &range, &mut undecided);
            let sure = o.sure.intersect(&remaining);
            let maybe = o.maybe.intersect(&remaining).difference(&sure);
            if cps[k] {
                remaining = remaining.difference(&sure);
                continue;
            }
            if let Some(w) = undecided {
                report.add_finding(
                    Source::FreeSwitch,
                    &x.file,
                    x.line,
                    &x.name,
                    context,
                    Certainty::Undecided,
                    ti,
                    maybe.clone(),
                    Some(w),
                );
            } else {
                report.add_finding(
                    Source::FreeSwitch,
                    &x.file,
                    x.line,
                    &x.name,
                    context,
                    Certainty::MayCatch,
                    ti,
                    maybe,
                    o.depends,
                );
            }
            report.add_finding(
                Source::FreeSwitch,
                &x.file,
                x.line,
                &x.name,
                context,
                Certainty::Caught,
                ti,
                sure.clone(),
                None,
            );
            remaining = remaining.difference(&sure);
        }
        let (file, line) = (ctxs[0].file.clone(), ctxs[0].line);
        report.add_finding(
            Source::FreeSwitch,
            &file,
            line,
            "(no extension)",
            context,
            Certainty::Caught,
            ti,
            remaining,
            Some("no extension of this context takes these orbits".into()),
        );
    }
    let targets = report.targets.clone();
    let ranges: Vec<NumRange> = targets.iter().map(|t| t.range.clone()).collect();
    let kinds: Vec<(Kind, String)> = exts.iter().map(|x| classify(x)).collect();
    // A range to move to is free when no destination of the context matches any of it
    // (conditions on other fields are ignored: a suggestion errs on the side of "taken").
    let mut is_free = |c: &NumRange| {
        exts.iter()
            .zip(&kinds)
            .enumerate()
            .all(|(k, (x, (kind, _)))| {
                *kind == Kind::Catches
                    || cps[k]
                    || x.conditions.iter().all(|cond| match &cond.test {
                        Test::Destination(e) => Matcher::new(e, Dialect::Pcre)
                            .ok()
                            .and_then(|mut m| m.matching(c).ok())
                            .is_none_or(|hit| hit.is_empty()),
                        _ => true,
                    })
            })
    };
    let mine = |f: &super::Finding| {
        f.source == Source::FreeSwitch && f.scope == context && f.fix.is_empty()
    };
    for f in report.findings.iter_mut().filter(|f| mine(f)) {
        if let Some(k) = exts
            .iter()
            .position(|x| x.file == f.file && x.line == f.line && x.name == f.rule)
        {
            (f.kind, f.kind_why) = (kinds[k].0, Some(kinds[k].1.clone()));
            // An orbit an alternative names exactly is that extension's own number, whatever
            // else its expression matches: moving callpark above it would take it away.
            if f.kind == Kind::Catches
                && let Some(n) = exts[k]
                    .conditions
                    .iter()
                    .filter_map(|c| match &c.test {
                        Test::Destination(e) => Some(exact_numbers(e)),
                        _ => None,
                    })
                    .flatten()
                    .find(|n| {
                        f.caught.iter().any(|(t, set)| {
                            let r = &ranges[*t];
                            set.values().any(|v| r.text(v) == *n)
                        })
                    })
            {
                f.kind = Kind::Conflicts;
                f.kind_why = Some(format!("it names `{n}` exactly: a destination of its own"));
            }
        }
    }
    // Orbits that are destinations further down stay out of the insertion fixes above them
    // (`unloop` may catch everything; protecting the phones from it would take them away).
    let mut owned: Vec<RunSet> = vec![RunSet::new(); targets.len()];
    for f in report
        .findings
        .iter()
        .filter(|f| mine(f) && f.kind == Kind::Conflicts)
    {
        for (t, r) in &f.caught {
            owned[*t] = owned[*t].union(r);
        }
    }
    let place = callpark_place(dp, &exts, &cps);
    for f in report.findings.iter_mut().filter(|f| mine(f)) {
        let mut g = f.clone();
        g.caught = g
            .caught
            .iter()
            .map(|(t, r)| (*t, r.difference(&owned[*t])))
            .filter(|(_, r)| !r.is_empty())
            .collect();
        f.fix = if f.kind == Kind::Catches && g.caught.is_empty() {
            "none: these orbits are destinations further down (see the conflicts)".into()
        } else if f.kind == Kind::Catches {
            let fix = fix_for(&g, place.as_deref(), ctxs[0]);
            // callpark's extensions hold every orbit of a range: in front of a destination
            // that owns some of them they would take it away. Renumbering comes first.
            if f.caught.iter().any(|(t, _)| !owned[*t].is_empty()) {
                format!(
                    "once the orbits no longer collide with the destinations (see the conflicts), {fix}"
                )
            } else {
                fix
            }
        } else {
            f.caught
                .iter()
                .map(|(t, _)| {
                    let free = super::free_ranges(&ranges[*t], &ranges, 3, &mut is_free);
                    super::move_fix(&ranges[*t], &free, &format!("context {context}"))
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
    }
    Ok(())
}

/// The fix for orbits an extension catches: callpark's extensions in front of it. When the
/// context has them, move them (their include line, or the extension); otherwise add the
/// include line of the file `callpark dialplan freeswitch` writes.
fn fix_for(f: &super::Finding, place: Option<&str>, ctx: &FsContext) -> String {
    let before = if f.rule == "(no extension)" {
        format!(
            "at the top of <context name=\"{}\"> ({}:{})",
            ctx.name, ctx.file, ctx.line
        )
    } else {
        format!(
            "above <extension name=\"{}\"> ({}:{}), best at the top of <context name=\"{}\">",
            f.rule, f.file, f.line, ctx.name
        )
    };
    match place {
        Some(p) if f.rule == "(no extension)" => format!(
            "callpark's extensions in this context ({p}) do not hold these orbits: write the file again with `callpark dialplan freeswitch` from the configuration that lists them, then reloadxml"
        ),
        Some(p) => format!("move {p} {before}"),
        None => format!(
            "write callpark's extensions with `callpark dialplan freeswitch > callpark.xml` (beside this file) and put <X-PRE-PROCESS cmd=\"include\" data=\"callpark.xml\"/> {before}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_extensions_in_order() {
        let dp = parse_str(
            r#"<include>
  <context name="default">
    <extension name="local" continue="false">
      <condition field="destination_number" expression="^(7\d\d)$" break="on-false">
        <action application="bridge" data="user/$1"/>
        <anti-action application="log" data="no"/>
      </condition>
    </extension>
    <extension name="callpark-orbits">
      <condition field="destination_number" expression="^(\*70\d\d)$"/>
    </extension>
  </context>
</include>"#,
            "default.xml",
        )
        .unwrap();
        let c = &dp.contexts[0];
        assert_eq!(c.extensions.len(), 2);
        assert_eq!(c.extensions[0].line, 3);
        assert_eq!(c.extensions[0].conditions[0].line, 4);
        assert_eq!(c.extensions[0].conditions[0].anti_actions.len(), 1);
        assert!(is_callpark(&c.extensions[1]));
    }
}
