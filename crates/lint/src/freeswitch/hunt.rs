//! How mod_dialplan_xml hunts one extension (`parse_exten`): which orbits its conditions,
//! `break`s, nested conditions and queued actions make it take.

use super::{Action, Break, Condition, Extension, RegexItem, RegexRule, Test};
use crate::automaton::{Matcher, MatcherError, NumRange};
use crate::runs::RunSet;

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

/// Orbits for which one extension surely / maybe takes the call.
pub(super) struct Outcome {
    pub(super) sure: RunSet,
    pub(super) maybe: RunSet,
    /// The first condition on something the lint cannot know that the outcome depends on.
    pub(super) depends: Option<String>,
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
pub(super) fn evaluate(
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
pub(super) type CondMatchers = Vec<Option<Result<Matcher, MatcherError>>>;

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
    m: &mut [Option<Result<Matcher, MatcherError>>],
    range: &NumRange,
    undecided: &mut Option<String>,
    depends: &mut Option<String>,
) -> Verdict {
    let all = range.all();
    let mut matching = |m: &mut Option<Result<Matcher, MatcherError>>| -> Option<RunSet> {
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
                undecided.get_or_insert(e.to_string());
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
