//! Reading the dialplan XML (after the preprocessor) into contexts, extensions and their
//! conditions, as mod_dialplan_xml reads them.

use std::path::Path;

use quick_xml::events::{BytesStart, Event};

use super::inline::{carry_inline_vars, decide_inline_vars};
use super::preprocess::{Src, preprocess};
use super::{Action, Break, Condition, Dialplan, Extension, FsContext, RegexItem, RegexRule, Test};
use crate::LintError;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::freeswitch::classify::is_callpark;

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
