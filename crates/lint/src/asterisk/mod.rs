//! Asterisk `extensions.conf`: which extension runs each orbit in a context.
//!
//! Asterisk keeps the extensions of a context sorted (`ext_cmp` in `main/pbx.c`: exact
//! extensions first, then patterns, the more specific character first) and, with the default
//! matcher (`extenpatternmatchnew = no`), runs the first one in that order that matches and has
//! priority 1; then it searches the context's includes, in order, depth first, each context at
//! most once. This module rebuilds that order from the text and walks it with the orbit sets.

mod check;
mod fix;
mod order;
mod parse;
pub(crate) mod pattern;

pub use self::check::{check, classify};
pub use self::order::{Entry, ext_cmp, search_order, winner};
pub use self::parse::{load, parse_str};
pub use self::pattern::{Letters, exten_matches, span_patterns};

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
