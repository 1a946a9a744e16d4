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
//! nested conditions follow mod_dialplan_xml's `parse_exten` (see `hunt::evaluate`).
//!
//! Callpark's extension is one named `callpark...` or whose actions name callpark (for
//! example `transfer $1 XML callpark`, or a `socket` to callpark's address with `callpark` in
//! its data).

mod check;
mod classify;
mod fix;
mod hunt;
mod inline;
mod parse;
mod preprocess;

pub use self::check::check;
pub use self::classify::classify;
pub use self::parse::{load, parse_str};

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
