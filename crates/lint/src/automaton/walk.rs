//! The walk that decides a pattern against a range on its lazy DFA.
//!
//! A range of orbits is the language `prefix · [lo, hi]` over fixed-width decimal strings. Its
//! automaton is the usual digit automaton with two "still on the bound" flags. We walk it in
//! lock-step with the lazy DFA of the pattern: wherever both flags are off, the rest of the
//! subtree depends only on (DFA state, digits left), so that subtree is computed once, kept as
//! runs, and reused; a subtree in which the DFA is already dead or has already seen a match is
//! one run at once. So the cost grows with the number of digits and of DFA states, not with the
//! number of orbits, and the answer is the exact set, as maximal runs.

use std::collections::HashMap;
use std::rc::Rc;

use regex_automata::Anchored;
use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::util::start;

use super::{MAX_RUNS, NumRange, Undecided};
use crate::runs::RunSet;

pub(super) struct DfaState {
    cache: Cache,
    clears: usize,
    /// Runs (as offsets) of the free subtree of `digits` digits entered in a DFA state.
    memo: HashMap<(LazyStateID, u32), Rc<RunSet>>,
}

impl DfaState {
    pub(super) fn new(dfa: &DFA) -> DfaState {
        DfaState {
            cache: dfa.create_cache(),
            clears: 0,
            memo: HashMap::new(),
        }
    }
}

/// The numbers of `range` whose text `dfa` matches somewhere, by a walk that keeps what it
/// learns in `st` for the next range.
pub(super) fn matching(
    dfa: &DFA,
    st: &mut DfaState,
    range: &NumRange,
) -> Result<RunSet, Undecided> {
    Walk {
        dfa,
        st,
        range,
        lo: digits_of(range.lo, range.width),
        hi: digits_of(range.hi, range.width),
    }
    .run()
}

/// A walk position: a live DFA state, or one of the two states whose subtree is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Dead,
    Hit,
    Live(LazyStateID),
}

fn digits_of(v: u64, width: u32) -> Vec<u8> {
    format!("{v:0w$}", w = width as usize).into_bytes()
}

struct Walk<'a> {
    dfa: &'a DFA,
    st: &'a mut DfaState,
    range: &'a NumRange,
    lo: Vec<u8>,
    hi: Vec<u8>,
}

impl Walk<'_> {
    fn run(&mut self) -> Result<RunSet, Undecided> {
        if self.st.cache.clear_count() != self.st.clears {
            self.st.memo.clear();
            self.st.clears = self.st.cache.clear_count();
        }
        let cfg = start::Config::new().anchored(Anchored::No);
        let id = self
            .dfa
            .start_state(&mut self.st.cache, &cfg)
            .map_err(|e| Undecided(e.to_string()))?;
        let mut s = St::Live(id);
        for &b in self.range.prefix.as_bytes() {
            s = self.step(s, b)?;
        }
        let mut out = RunSet::new();
        self.tight(s, 0, true, true, 0, &mut out)?;
        Ok(out)
    }

    fn step(&mut self, s: St, b: u8) -> Result<St, Undecided> {
        let St::Live(id) = s else { return Ok(s) };
        let n = self
            .dfa
            .next_state(&mut self.st.cache, id, b)
            .map_err(|e| Undecided(e.to_string()))?;
        if self.st.cache.clear_count() != self.st.clears {
            // State ids held up the stack are stale once the cache was cleared.
            return Err(Undecided(
                "the pattern's DFA outgrew its cache; simplify the pattern".into(),
            ));
        }
        // Match states come one byte late: a match state here means a match ended before `b`,
        // and a search that found a match stays matched whatever follows.
        Ok(if n.is_match() {
            St::Hit
        } else if n.is_dead() {
            St::Dead
        } else if n.is_quit() {
            return Err(Undecided(format!("the DFA gave up on byte {b:#x}")));
        } else {
            St::Live(n)
        })
    }

    fn accepts_at_end(&mut self, s: St) -> Result<bool, Undecided> {
        match s {
            St::Dead => Ok(false),
            St::Hit => Ok(true),
            St::Live(id) => {
                let n = self
                    .dfa
                    .next_eoi_state(&mut self.st.cache, id)
                    .map_err(|e| Undecided(e.to_string()))?;
                Ok(n.is_match())
            }
        }
    }

    /// Walks the subtree at digit `pos` where the digits so far equal the bound(s) whose flag
    /// is set; `base` is the value of the digits so far, shifted into place.
    fn tight(
        &mut self,
        s: St,
        pos: usize,
        lo_t: bool,
        hi_t: bool,
        base: u64,
        out: &mut RunSet,
    ) -> Result<(), Undecided> {
        let r = self.range.width - pos as u32;
        let p = 10u64.pow(r);
        let sub_lo = if lo_t { self.range.lo % p } else { 0 };
        let sub_hi = if hi_t { self.range.hi % p } else { p - 1 };
        match s {
            St::Dead => return Ok(()),
            St::Hit => {
                out.push(base + sub_lo, base + sub_hi);
                return Ok(());
            }
            St::Live(_) => {}
        }
        if !lo_t && !hi_t {
            let sub = self.free(s, r)?;
            for &(a, b) in sub.runs() {
                out.push(base + a, base + b);
            }
            return check_size(out);
        }
        if r == 0 {
            if self.accepts_at_end(s)? {
                out.push(base, base);
            }
            return Ok(());
        }
        let unit = p / 10;
        let dlo = if lo_t { self.lo[pos] - b'0' } else { 0 };
        let dhi = if hi_t { self.hi[pos] - b'0' } else { 9 };
        for d in dlo..=dhi {
            let c = self.step(s, b'0' + d)?;
            self.tight(
                c,
                pos + 1,
                lo_t && d == dlo,
                hi_t && d == dhi,
                base + u64::from(d) * unit,
                out,
            )?;
        }
        check_size(out)
    }

    /// Offsets in `[0, 10^r)` of the `r`-digit suffixes accepted from state `s`.
    fn free(&mut self, s: St, r: u32) -> Result<Rc<RunSet>, Undecided> {
        let id = match s {
            St::Dead => return Ok(Rc::new(RunSet::new())),
            St::Hit => return Ok(Rc::new(RunSet::single(0, 10u64.pow(r) - 1))),
            St::Live(id) => id,
        };
        if let Some(hit) = self.st.memo.get(&(id, r)) {
            return Ok(hit.clone());
        }
        let mut out = RunSet::new();
        if r == 0 {
            if self.accepts_at_end(s)? {
                out.push(0, 0);
            }
        } else {
            let unit = 10u64.pow(r - 1);
            for d in 0..10u8 {
                let c = self.step(s, b'0' + d)?;
                let sub = self.free(c, r - 1)?;
                for &(a, b) in sub.runs() {
                    out.push(u64::from(d) * unit + a, u64::from(d) * unit + b);
                }
                check_size(&out)?;
            }
        }
        let out = Rc::new(out);
        self.st.memo.insert((id, r), out.clone());
        Ok(out)
    }
}

fn check_size(out: &RunSet) -> Result<(), Undecided> {
    if out.runs().len() > MAX_RUNS {
        return Err(Undecided(format!(
            "the orbits it matches fall apart into more than {MAX_RUNS} separate runs"
        )));
    }
    Ok(())
}
