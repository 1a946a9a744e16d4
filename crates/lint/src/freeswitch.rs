//! FreeSWITCH dialplan XML: which extension takes each orbit in a context.
//!
//! FreeSWITCH tries the extensions of a context in document order. Within one, conditions run
//! in order: a true condition queues its actions, a false one its anti-actions, and `break`
//! (`on-false` by default, `on-true`, `always`, `never`) says whether to go on. An extension
//! that queued anything takes the call and ends the hunt, unless it has `continue="true"`;
//! then only what it routes or rewrites (transfer, bridge, `set destination_number`...) takes
//! the orbit. Conditions on fields other than `destination_number` (caller, time, variables)
//! cannot be decided here, so what they lead to is "may catch". Expressions come from the
//! `expression` attribute or an `<expression>` child; `regex="all|any|xor"` conditions and
//! nested conditions follow mod_dialplan_xml's `parse_exten` (see `evaluate`).
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
    /// `regex="all|any|xor"` whose `<regex>` children all test `destination_number` (or
    /// nothing, which passes).
    Regexes {
        rule: RegexRule,
        items: Vec<RegexItem>,
    },
    /// Another field, time of day, or regexes on those: the lint cannot know.
    Unknown(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegexRule {
    Any,
    All,
    Xor,
}

/// One `<regex>` of a decided `regex="..."` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexItem {
    /// The expression on `destination_number`; `None` for a `<regex>` without a field, which
    /// FreeSWITCH counts as passed.
    pub expr: Option<String>,
    /// It has a field and a `(` in its expression: FreeSWITCH keeps its match (for `$1`,
    /// and, in "all" and "xor", for what the condition returns).
    pub captures: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub test: Test,
    /// `field="${name}"` with its expression: decidable when `name` was set inline before.
    pub var_test: Option<(String, String)>,
    pub brk: Break,
    pub actions: Vec<Action>,
    pub anti_actions: Vec<Action>,
    /// Conditions inside this one: FreeSWITCH evaluates them when this one proceeded and did
    /// not break.
    pub nested: Vec<Condition>,
    /// `require-nested` (true unless set false): when false, what the nested conditions
    /// return is ignored and the extension goes on as if they matched.
    pub require_nested: bool,
    /// `regex="..."`, decided or not.
    pub regex: Option<RegexRule>,
    pub line: usize,
}

impl Condition {
    /// The `destination_number` expressions this condition tests (its own, or its regexes').
    pub fn destination_exprs(&self) -> Vec<&str> {
        match &self.test {
            Test::Destination(e) => vec![e.as_str()],
            Test::Regexes { items, .. } => items.iter().filter_map(|i| i.expr.as_deref()).collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub name: String,
    pub cont: bool,
    pub conditions: Vec<Condition>,
    pub file: String,
    pub line: usize,
}

impl Extension {
    /// Every condition, nested ones right after the one that holds them (document order).
    pub(crate) fn all_conditions(&self) -> Vec<&Condition> {
        fn add<'a>(cs: &'a [Condition], out: &mut Vec<&'a Condition>) {
            for c in cs {
                out.push(c);
                add(&c.nested, out);
            }
        }
        let mut out = Vec::new();
        add(&self.conditions, &mut out);
        out
    }
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

/// A `<condition>` being read: its test is known only at its end, since the expression may
/// come from an `<expression>` child.
struct PendingCond {
    field: Option<String>,
    expr_attr: Option<String>,
    /// The text of an `<expression>` child: it wins over the attribute, even when empty.
    expr_child: Option<String>,
    timed: bool,
    /// `regex="all|any|xor"`: the `<regex>` children decide.
    regex: Option<String>,
    regexes: Vec<PendingRegex>,
    brk: Break,
    require_nested: bool,
    actions: Vec<Action>,
    anti_actions: Vec<Action>,
    nested: Vec<Condition>,
    line: usize,
}

/// A `<regex field=... expression=...>` of a `regex="..."` condition.
#[derive(Default)]
struct PendingRegex {
    field: Option<String>,
    expr_attr: Option<String>,
    expr_child: Option<String>,
    timed: bool,
}

/// Where the text of the element being read goes.
enum TextInto {
    Nothing,
    /// An `<expression>`: of the open `<regex>` when there is one, else of the condition.
    Expression(String),
    /// An action written `<action application="set">name=value</action>`.
    Action(String),
}

/// The time-of-day attributes `switch_xml_std_datetime_check` reads.
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

fn is_destination_field(f: &str) -> bool {
    f.eq_ignore_ascii_case("destination_number") || f.eq_ignore_ascii_case("${destination_number}")
}

impl PendingCond {
    fn finish(self) -> Condition {
        // mod_dialplan_xml takes an `<expression>` child's text as it is (CDATA and text
        // pieces joined, blanks kept), and the attribute only when there is no such child.
        let expr = self.expr_child.or(self.expr_attr);
        let test = match (self.regex.as_deref(), self.field.as_deref(), expr.clone()) {
            (Some(rule), _, _) => regex_test(rule, self.timed, self.regexes),
            (None, Some(f), Some(x)) if is_destination_field(f) => {
                if self.timed {
                    Test::Unknown("a time of day as well".into())
                } else if x.contains("${") {
                    // FreeSWITCH expands the expression before matching it: a variable may
                    // hold any text, so only numbers the expression matches with any text in
                    // its place may pass.
                    Test::Expanded(relax_variables(&x))
                } else {
                    Test::Destination(x)
                }
            }
            // An empty field is the empty string (no profile field has no name): the
            // expression decides once and for all.
            (None, Some(""), x) if !self.timed => {
                let x = x.unwrap_or_default();
                match regex::Regex::new(&x) {
                    Ok(re) => Test::Fixed(re.is_match("")),
                    Err(_) => Test::Unknown(format!("expression `{x}`")),
                }
            }
            (None, Some(f), _) => Test::Unknown(format!("field `{f}`")),
            (None, None, _) if self.timed => Test::Unknown("the time of day".into()),
            (None, None, _) => Test::Always,
        };
        let var_test = self
            .field
            .as_deref()
            .filter(|_| self.regex.is_none())
            .and_then(|f| f.strip_prefix("${")?.strip_suffix('}'))
            .filter(|n| !n.contains(['$', '{', '(', ' ']))
            .zip(expr)
            .map(|(n, x)| (n.to_string(), x));
        Condition {
            test,
            var_test,
            brk: self.brk,
            actions: self.actions,
            anti_actions: self.anti_actions,
            nested: self.nested,
            require_nested: self.require_nested,
            regex: self.regex.as_deref().map(regex_rule),
            line: self.line,
        }
    }
}

/// FreeSWITCH: "all" and "xor" by name (any case), anything else is "any".
fn regex_rule(rule: &str) -> RegexRule {
    if rule.eq_ignore_ascii_case("all") {
        RegexRule::All
    } else if rule.eq_ignore_ascii_case("xor") {
        RegexRule::Xor
    } else {
        RegexRule::Any
    }
}

/// A `regex="all|any|xor"` condition: decided when every `<regex>` tests `destination_number`
/// with a plain expression (or has no field: FreeSWITCH counts it as passed).
fn regex_test(rule: &str, timed: bool, regexes: Vec<PendingRegex>) -> Test {
    let rule = regex_rule(rule);
    let unknown = |why: String| Test::Unknown(why);
    if timed {
        return unknown("a time of day beside regex=\"...\"".into());
    }
    if regexes.is_empty() {
        // No <regex>: FreeSWITCH leaves `proceed` as the condition before set it.
        return unknown("a regex=\"...\" condition without <regex>".into());
    }
    let mut items = Vec::new();
    for r in regexes {
        let expr = r.expr_child.or(r.expr_attr).unwrap_or_default();
        match r.field.as_deref() {
            _ if r.timed => return unknown("a <regex> on the time of day".into()),
            None => items.push(RegexItem {
                expr: None,
                captures: false,
            }),
            Some(f) if is_destination_field(f) && !expr.contains("${") => items.push(RegexItem {
                captures: expr.contains('('),
                expr: Some(expr),
            }),
            Some(f) => return unknown(format!("<regex field=\"{f}\" expression=\"{expr}\">")),
        }
    }
    Test::Regexes { rule, items }
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
    // Text is kept whole: FreeSWITCH keeps the blanks of an <expression>'s text.
    reader.config_mut().trim_text(false);
    let mut dp = Dialplan::default();
    let mut ctx: Option<FsContext> = None;
    let mut ext: Option<Extension> = None;
    // Open conditions, outermost first (a condition may hold conditions).
    let mut conds: Vec<PendingCond> = Vec::new();
    let mut regex: Option<PendingRegex> = None;
    let mut into = TextInto::Nothing;
    // The action whose text is being read, and whether it is an anti-action.
    let mut action: Option<(Action, bool)> = None;
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
                "condition" if ext.is_some() => {
                    // mod_dialplan_xml ignores a `break` it does not know (on-false).
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
                    conds.push(PendingCond {
                        field: attr(&e, "field"),
                        expr_attr: attr(&e, "expression"),
                        expr_child: None,
                        timed: TIME.iter().any(|k| attr(&e, k).is_some()),
                        regex: attr(&e, "regex"),
                        regexes: Vec::new(),
                        brk,
                        // Read by FreeSWITCH on the condition that holds nested ones.
                        require_nested: attr(&e, "require-nested").is_none_or(|v| switch_true(&v)),
                        actions: Vec::new(),
                        anti_actions: Vec::new(),
                        nested: Vec::new(),
                        line,
                    });
                    if empty {
                        close_condition(&mut conds, ext.as_mut());
                    }
                }
                "regex" if !conds.is_empty() => {
                    let r = PendingRegex {
                        field: attr(&e, "field"),
                        expr_attr: attr(&e, "expression"),
                        expr_child: None,
                        timed: TIME.iter().any(|k| attr(&e, k).is_some()),
                    };
                    if empty {
                        conds.last_mut().unwrap().regexes.push(r);
                    } else {
                        regex = Some(r);
                    }
                }
                "expression" if !conds.is_empty() => {
                    if empty {
                        set_expression(&mut conds, regex.as_mut(), String::new());
                    } else {
                        into = TextInto::Expression(String::new());
                    }
                }
                "action" | "anti-action" => {
                    let a = Action {
                        application: attr(&e, "application").unwrap_or_default(),
                        data: attr(&e, "data").unwrap_or_default(),
                        inline: attr(&e, "inline").is_some_and(|v| switch_true(&v)),
                    };
                    if empty {
                        push_action(&mut conds, a, name == "anti-action");
                    } else {
                        action = Some((a, name == "anti-action"));
                        into = TextInto::Action(String::new());
                    }
                }
                _ => {}
            }
            continue;
        }
        match ev {
            Event::Text(t) => {
                if let TextInto::Expression(s) | TextInto::Action(s) = &mut into {
                    s.push_str(
                        &t.unescape()
                            .map(|v| v.to_string())
                            .unwrap_or_else(|_| String::from_utf8_lossy(&t).to_string()),
                    );
                }
            }
            Event::CData(t) => {
                if let TextInto::Expression(s) | TextInto::Action(s) = &mut into {
                    s.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::End(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).to_ascii_lowercase();
                match name.as_str() {
                    "expression" => {
                        if let TextInto::Expression(s) =
                            std::mem::replace(&mut into, TextInto::Nothing)
                        {
                            set_expression(&mut conds, regex.as_mut(), s);
                        }
                    }
                    "regex" => {
                        if let (Some(r), Some(c)) = (regex.take(), conds.last_mut()) {
                            c.regexes.push(r);
                        }
                    }
                    "action" | "anti-action" => {
                        if let Some((mut a, anti)) = action.take() {
                            // FreeSWITCH: the element's text when it has some, else `data`.
                            if let TextInto::Action(s) =
                                std::mem::replace(&mut into, TextInto::Nothing)
                                && !s.is_empty()
                            {
                                a.data = s;
                            }
                            push_action(&mut conds, a, anti);
                        }
                    }
                    "condition" => close_condition(&mut conds, ext.as_mut()),
                    "extension" => {
                        while !conds.is_empty() {
                            close_condition(&mut conds, ext.as_mut());
                        }
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
    for c in &mut dp.contexts {
        // Inline actions run during the hunt, so what an extension sets inline is there for
        // the conditions of every later extension (queued ones only run once the call is
        // taken: they change nothing here).
        let mut carried = Vec::new();
        for x in &mut c.extensions {
            decide_inline_vars(&mut x.conditions, &mut carried.clone());
            carry_inline_vars(x, &mut carried);
        }
    }
    Ok(dp)
}

/// What `x` leaves set for the extensions after it: a literal value set inline by a condition
/// that every call entering `x` evaluates and that is always true (the conditions before it
/// never stop the extension: `break="never"`, or a constant truth they do not break on); any other inline set makes the value unknown,
/// as only some calls ran it.
fn carry_inline_vars(x: &Extension, carried: &mut Vec<(String, Option<String>)>) {
    let mut reached = true;
    for c in &x.conditions {
        let truth = match c.test {
            Test::Always | Test::Fixed(true) => Some(true),
            Test::Fixed(false) => Some(false),
            _ => None,
        };
        let surely = reached && truth == Some(true);
        let sets = c.actions.iter().map(|a| (a, surely));
        let anti = c.anti_actions.iter().map(|a| (a, false));
        for (a, runs) in sets.chain(anti).filter(|(a, _)| a.inline) {
            if let Some(k) = inline_set(a) {
                let value = a.data.split_once('=').map(|(_, v)| v).unwrap_or_default();
                let value = (runs && !value.contains('$')).then(|| value.to_string());
                carried.push((k, value));
            }
        }
        let mut inner = Vec::new();
        nested_inline_vars(&c.nested, &mut inner);
        carried.extend(inner.into_iter().map(|k| (k, None)));
        // Every call goes on to the next condition only when this one's constant truth does
        // not stop the extension and nothing nested may fail it.
        reached = reached
            && c.nested.is_empty()
            && matches!(
                (truth, c.brk),
                (_, Break::Never) | (Some(true), Break::OnFalse) | (Some(false), Break::OnTrue)
            );
    }
}

/// The variables conditions nested somewhere in `conds` set inline.
fn nested_inline_vars(conds: &[Condition], out: &mut Vec<String>) {
    for c in conds {
        out.extend(
            c.actions
                .iter()
                .chain(&c.anti_actions)
                .filter(|a| a.inline)
                .filter_map(inline_set),
        );
        nested_inline_vars(&c.nested, out);
    }
}

fn set_expression(conds: &mut [PendingCond], regex: Option<&mut PendingRegex>, s: String) {
    match regex {
        Some(r) => r.expr_child = Some(s),
        None => {
            if let Some(c) = conds.last_mut() {
                c.expr_child = Some(s);
            }
        }
    }
}

fn push_action(conds: &mut [PendingCond], a: Action, anti: bool) {
    if let Some(c) = conds.last_mut() {
        if anti {
            c.anti_actions.push(a);
        } else {
            c.actions.push(a);
        }
    }
}

/// Ends the innermost open condition: into the one that holds it, or the extension.
fn close_condition(conds: &mut Vec<PendingCond>, ext: Option<&mut Extension>) {
    let Some(c) = conds.pop() else { return };
    let c = c.finish();
    match conds.last_mut() {
        Some(parent) => parent.nested.push(c),
        None => {
            if let Some(x) = ext {
                x.conditions.push(c);
            }
        }
    }
}

/// Conditions on a variable that an earlier condition of the same extension surely set
/// inline (`set name=value inline="true"` in an unconditional condition: every number that
/// reaches a later condition went through it) are decided on that value, as FreeSWITCH would
/// during the hunt. A set that only some calls run makes the value unknown again; so does any
/// set inside nested conditions for the conditions after their parent (not every call
/// reaches them).
fn decide_inline_vars(conds: &mut [Condition], known: &mut Vec<(String, Option<String>)>) {
    for c in conds {
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
            if let Some(k) = inline_set(a) {
                let value = a.data.split_once('=').map(|(_, v)| v).unwrap_or_default();
                let value = (runs && !value.contains('$')).then(|| value.to_string());
                known.push((k, value));
            }
        }
        if !c.nested.is_empty() {
            let mut inner = known.clone();
            decide_inline_vars(&mut c.nested, &mut inner);
            for (k, _) in inner.drain(known.len()..) {
                known.push((k, None));
            }
        }
    }
}

/// The variable an inline `set`/`export` gives a value.
fn inline_set(a: &Action) -> Option<String> {
    matches!(
        a.application.to_ascii_lowercase().as_str(),
        "set" | "export"
    )
    .then(|| a.data.split_once('=').map(|(k, _)| k.trim().to_string()))
    .flatten()
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
        || x.all_conditions().iter().any(|c| {
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
    let conds = x.all_conditions();
    let exprs: Vec<&str> = conds.iter().flat_map(|c| c.destination_exprs()).collect();
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
        conds
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

/// One extension against `range`, as mod_dialplan_xml hunts it (`parse_exten`). Conditions
/// run in order on the numbers that reach them; each is true or false. A condition
/// "proceeds" when it is true, or false with anti-actions (a `regex="all|xor"` one may also
/// proceed otherwise, see `regex_sets`); the extension takes the call when the last condition
/// evaluated proceeded (`continue="true"` aside: the hunt goes on). `break` decides which
/// numbers reach the next condition. A condition holding conditions evaluates them when it
/// proceeded and did not break, with their own `break`s; what the last of them returns
/// replaces its own outcome (always "proceeded" under `require-nested="false"`), and when
/// that fails the extension stops there, failed, unless the holder has `break="never"`.
/// Actions queued on the way (`inline="true"` ones run at once and queue nothing) run when
/// the call is finally taken, by this extension or a later one, so a queued `transfer` (or
/// any routing application) takes the call even when the extension does not. A condition the
/// lint cannot decide (another field, the time of day, a pattern it cannot read) is tried
/// both ways: "sure" is what every way takes, "maybe" what some way takes.
fn evaluate(
    x: &Extension,
    matchers: &mut [CondMatchers],
    range: &NumRange,
    undecided: &mut Option<String>,
) -> Outcome {
    let all = range.all();
    let conds = x.all_conditions();
    let mut depends = None;
    let mut verdicts = Vec::with_capacity(conds.len());
    for (c, m) in conds.iter().zip(matchers.iter_mut()) {
        verdicts.push(verdict(c, m, range, undecided, &mut depends));
    }
    // The choices the walk is tried with: (condition, whether it is its truth or, for a
    // regex="all|xor" condition the lint cannot decide, whether it proceeds).
    let mut unknown: Vec<(usize, bool)> = Vec::new();
    for (i, v) in verdicts.iter().enumerate() {
        if v.truth.is_err() {
            unknown.push((i, true));
        }
        if matches!(v.proceed, Proceed::Either) {
            unknown.push((i, false));
        }
    }
    let run = |bits: &dyn Fn(usize, bool) -> bool| -> RunSet {
        let mut w = Walk {
            verdicts: &verdicts,
            bits,
            routed: RunSet::new(),
        };
        let proceeded = w.level(&x.conditions, 0, all.clone());
        if x.cont {
            w.routed
        } else {
            proceeded.union(&w.routed)
        }
    };
    if unknown.len() > MAX_UNKNOWN {
        let maybe = run(&|_, _| true).union(&run(&|_, _| false));
        return Outcome {
            sure: RunSet::new(),
            maybe: if maybe.is_empty() { RunSet::new() } else { all },
            depends,
        };
    }
    let (mut sure, mut maybe) = (all.clone(), RunSet::new());
    for bits in 0u32..(1 << unknown.len()) {
        let taken = run(&|i, truth| {
            let k = unknown.iter().position(|&u| u == (i, truth)).unwrap_or(0);
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

/// The matchers of one condition's expressions (`None`: a `<regex>` without a field).
type CondMatchers = Vec<Option<Result<Matcher, String>>>;

/// What `proceed` holds after a condition's test, before its anti-actions.
enum Proceed {
    /// The truth of the condition.
    Truth,
    /// These numbers (a decided `regex="all|xor"` condition).
    Set(RunSet),
    /// Unknown: tried both ways.
    Either,
}

struct Verdict {
    /// Ok(the numbers it holds true for), or Err(the numbers it may hold true for) when that
    /// depends on what the lint cannot know.
    truth: Result<RunSet, RunSet>,
    proceed: Proceed,
}

fn verdict(
    c: &Condition,
    m: &mut [Option<Result<Matcher, String>>],
    range: &NumRange,
    undecided: &mut Option<String>,
    depends: &mut Option<String>,
) -> Verdict {
    let all = range.all();
    let mut matching = |m: &mut Option<Result<Matcher, String>>| -> Option<RunSet> {
        match m {
            None => Some(all.clone()),
            Some(Ok(m)) => match m.matching(range) {
                Ok(t) => Some(t),
                Err(w) => {
                    undecided.get_or_insert(w.0);
                    None
                }
            },
            Some(Err(e)) => {
                undecided.get_or_insert(e.clone());
                None
            }
        }
    };
    let truth = match &c.test {
        Test::Always | Test::Fixed(true) => Ok(all.clone()),
        Test::Fixed(false) => Ok(RunSet::new()),
        Test::Destination(_) => m
            .first_mut()
            .and_then(&mut matching)
            .ok_or_else(|| all.clone()),
        Test::Expanded(e) => match m.first_mut().and_then(&mut matching) {
            Some(t) if t.is_empty() => Ok(t),
            Some(t) => {
                depends.get_or_insert_with(|| format!("depends on the variables in `{e}`"));
                Err(t)
            }
            None => Err(all.clone()),
        },
        Test::Regexes { rule, items } => {
            let sets: Option<Vec<RunSet>> = m.iter_mut().map(&mut matching).collect();
            match sets {
                Some(sets) => {
                    let (t, p) = regex_sets(*rule, items, &sets, &all);
                    return Verdict {
                        truth: Ok(t),
                        proceed: Proceed::Set(p),
                    };
                }
                None => Err(all.clone()),
            }
        }
        Test::Unknown(w) => {
            depends.get_or_insert_with(|| format!("depends on {w}"));
            Err(all.clone())
        }
    };
    // A regex="all" or "xor" condition may proceed whatever its truth (see `regex_sets`).
    let either = match &c.test {
        Test::Regexes { rule, .. } => *rule != RegexRule::Any,
        Test::Unknown(_) => c.regex.is_some_and(|r| r != RegexRule::Any),
        _ => false,
    };
    Verdict {
        truth,
        proceed: if either {
            Proceed::Either
        } else {
            Proceed::Truth
        },
    }
}

/// A `regex="..."` condition from the numbers each `<regex>` matches: (where it is true, where
/// `proceed` is set after it), as mod_dialplan_xml runs them. "any" stops at the first match
/// and is true with one; "all" stops at the first failure and is true with none; "xor" runs
/// them all and is true with exactly one. `proceed` is the last result evaluated, except that
/// FreeSWITCH keeps the last capturing `<regex>` (with a field and a `(`) and, when that one
/// matched, restores `proceed` to true: an "all" condition failing after a capturing match,
/// or an "xor" one whose last capturing regex matched, proceeds although false.
fn regex_sets(
    rule: RegexRule,
    items: &[RegexItem],
    sets: &[RunSet],
    all: &RunSet,
) -> (RunSet, RunSet) {
    match rule {
        RegexRule::Any => {
            let t = sets.iter().fold(RunSet::new(), |a, s| a.union(s));
            (t.clone(), t)
        }
        RegexRule::All => {
            let (mut reached, mut p) = (all.clone(), RunSet::new());
            let mut captured = false;
            for (item, s) in items.iter().zip(sets) {
                let failed = reached.difference(s);
                if captured {
                    p = p.union(&failed);
                }
                reached = reached.intersect(s);
                captured |= item.captures;
            }
            (reached.clone(), p.union(&reached))
        }
        RegexRule::Xor => {
            let (mut none, mut one) = (all.clone(), RunSet::new());
            for s in sets {
                one = one.difference(s).union(&none.intersect(s));
                none = none.difference(s);
            }
            let last = sets.last().cloned().unwrap_or_default();
            let p = match items.iter().rposition(|i| i.captures) {
                Some(c) => last.union(&sets[c]),
                None => last,
            };
            (one, p)
        }
    }
}

/// One way of trying an extension's undecided conditions.
struct Walk<'a> {
    verdicts: &'a [Verdict],
    /// For an undecided condition: its truth (`true`) or whether it proceeds (`false`).
    bits: &'a dyn Fn(usize, bool) -> bool,
    /// Numbers for which a queued routing action ran.
    routed: RunSet,
}

impl Walk<'_> {
    /// The conditions of one level (`first`: the index of the first in document order) on
    /// the numbers `alive`: the numbers for which it returns "proceeded".
    fn level(&mut self, conds: &[Condition], first: usize, mut alive: RunSet) -> RunSet {
        // `proceed` per number: of those still in the loop, and of those that left it.
        let (mut cur, mut left) = (RunSet::new(), RunSet::new());
        let mut i = first;
        for c in conds {
            let here = i;
            i += size(c);
            if alive.is_empty() {
                break;
            }
            let v = &self.verdicts[here];
            let t = match &v.truth {
                Ok(t) => t.intersect(&alive),
                Err(may) if (self.bits)(here, true) => may.intersect(&alive),
                Err(_) => RunSet::new(),
            };
            let f = alive.difference(&t);
            let raw = match &v.proceed {
                Proceed::Truth => t.clone(),
                Proceed::Set(p) => p.intersect(&alive),
                Proceed::Either if (self.bits)(here, false) => alive.clone(),
                Proceed::Either => RunSet::new(),
            };
            cur = if c.anti_actions.is_empty() {
                raw
            } else {
                raw.intersect(&t).union(&f)
            };
            if c.actions.iter().any(|a| !a.inline && routes(a)) {
                self.routed = self.routed.union(&t);
            }
            if c.anti_actions.iter().any(|a| !a.inline && routes(a)) {
                self.routed = self.routed.union(&f);
            }
            let stop = match c.brk {
                Break::OnFalse => f,
                Break::OnTrue => t,
                Break::Always => alive.clone(),
                Break::Never => RunSet::new(),
            };
            left = left.union(&cur.intersect(&stop));
            alive = alive.difference(&stop);
            cur = cur.intersect(&alive);
            if !c.nested.is_empty() && !cur.is_empty() {
                let entered = cur.clone();
                let passed = self.level(&c.nested, here + 1, entered.clone());
                let passed = if c.require_nested {
                    passed
                } else {
                    entered.clone()
                };
                let failed = entered.difference(&passed);
                // A failed nested level ends the extension (returning false), except under
                // break="never", which goes on to the next condition.
                if c.brk != Break::Never {
                    alive = alive.difference(&failed);
                }
                cur = cur.difference(&failed);
            }
        }
        left.union(&cur)
    }
}

/// A condition and the ones nested in it.
fn size(c: &Condition) -> usize {
    1 + c.nested.iter().map(size).sum::<usize>()
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
    // mod_dialplan_xml takes the first <context> whose name matches, ignoring case
    // (switch_xml_find_child, strcasecmp); another of the same name is never hunted.
    let same: Vec<&FsContext> = dp
        .contexts
        .iter()
        .filter(|c| c.name.eq_ignore_ascii_case(context))
        .collect();
    let Some(first) = same.first() else {
        return Err(LintError::Usage(format!(
            "no <context name=\"{context}\"> in the FreeSWITCH dialplan"
        )));
    };
    for other in &same[1..] {
        report.notes.push(format!(
            "<context name=\"{}\"> at {}:{} is never used: FreeSWITCH hunts only the first of that name ({}:{}); move its extensions there",
            other.name, other.file, other.line, first.file, first.line
        ));
    }
    let ctxs = [*first];
    let exts: Vec<&Extension> = ctxs.iter().flat_map(|c| &c.extensions).collect();
    report.rules += exts.len();
    // Per extension, per condition in document order (nested ones after their parent), the
    // matchers of its expressions (one per `<regex>` of a `regex="..."` condition).
    let mut matchers: Vec<Vec<CondMatchers>> = exts
        .iter()
        .map(|x| {
            x.all_conditions()
                .iter()
                .map(|c| match &c.test {
                    Test::Destination(e) | Test::Expanded(e) => {
                        vec![Some(Matcher::new(e, Dialect::Pcre))]
                    }
                    Test::Regexes { items, .. } => items
                        .iter()
                        .map(|i| i.expr.as_deref().map(|e| Matcher::new(e, Dialect::Pcre)))
                        .collect(),
                    _ => Vec::new(),
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
                    || x.all_conditions().iter().all(|cond| {
                        cond.destination_exprs().iter().all(|e| {
                            Matcher::new(e, Dialect::Pcre)
                                .ok()
                                .and_then(|mut m| m.matching(c).ok())
                                .is_none_or(|hit| hit.is_empty())
                        })
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
                    .all_conditions()
                    .iter()
                    .flat_map(|c| c.destination_exprs())
                    .flat_map(exact_numbers)
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
