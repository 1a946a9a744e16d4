//! Sets of orbit values kept as sorted, disjoint, non-adjacent runs `[lo, hi]`.
//!
//! Every result of the lint is such a set: the engine never enumerates orbits, it splits and
//! merges runs, so a set of 10^9 orbits costs as much as a set of 100 when it is one run.

/// A set of integers as maximal runs, ordered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSet {
    runs: Vec<(u64, u64)>,
}

impl RunSet {
    pub fn new() -> RunSet {
        RunSet { runs: Vec::new() }
    }

    pub fn single(lo: u64, hi: u64) -> RunSet {
        RunSet {
            runs: vec![(lo, hi)],
        }
    }

    /// Builds a set from runs that are already ordered; touching runs are merged.
    pub fn from_sorted(runs: impl IntoIterator<Item = (u64, u64)>) -> RunSet {
        let mut s = RunSet::new();
        for (lo, hi) in runs {
            s.push(lo, hi);
        }
        s
    }

    /// Appends a run that starts after every run already in the set.
    pub fn push(&mut self, lo: u64, hi: u64) {
        debug_assert!(lo <= hi);
        if let Some(last) = self.runs.last_mut() {
            // Callers push in order; a run that touches or overlaps the last one extends it.
            if lo <= last.1.saturating_add(1) {
                last.1 = last.1.max(hi);
                return;
            }
        }
        self.runs.push((lo, hi));
    }

    pub fn runs(&self) -> &[(u64, u64)] {
        &self.runs
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Number of integers in the set.
    pub fn count(&self) -> u64 {
        self.runs.iter().map(|(a, b)| b - a + 1).sum()
    }

    pub fn first(&self) -> Option<u64> {
        self.runs.first().map(|r| r.0)
    }

    pub fn contains(&self, v: u64) -> bool {
        let i = self.runs.partition_point(|r| r.1 < v);
        self.runs.get(i).is_some_and(|r| r.0 <= v)
    }

    pub(crate) fn intersect(&self, other: &RunSet) -> RunSet {
        let (a, b) = (&self.runs, &other.runs);
        let (mut i, mut j) = (0, 0);
        let mut out = RunSet::new();
        while i < a.len() && j < b.len() {
            let lo = a[i].0.max(b[j].0);
            let hi = a[i].1.min(b[j].1);
            if lo <= hi {
                out.push(lo, hi);
            }
            if a[i].1 < b[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        out
    }

    pub(crate) fn union(&self, other: &RunSet) -> RunSet {
        let mut all: Vec<(u64, u64)> = self.runs.iter().chain(&other.runs).copied().collect();
        all.sort_unstable();
        let mut out = RunSet::new();
        for (lo, hi) in all {
            out.push(lo, hi);
        }
        out
    }

    pub fn difference(&self, other: &RunSet) -> RunSet {
        let mut out = RunSet::new();
        let b = &other.runs;
        let mut j = 0;
        for &(lo, hi) in &self.runs {
            let mut cur = lo;
            while j < b.len() && b[j].1 < cur {
                j += 1;
            }
            let mut k = j;
            let mut done = false;
            while k < b.len() && b[k].0 <= hi {
                if b[k].0 > cur {
                    out.push(cur, b[k].0 - 1);
                }
                if b[k].1 >= hi {
                    done = true;
                    break;
                }
                cur = b[k].1 + 1;
                k += 1;
            }
            if !done && cur <= hi {
                out.push(cur, hi);
            }
        }
        out
    }

    /// Iterates the values; callers bound the count first.
    pub fn values(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs.iter().flat_map(|&(a, b)| a..=b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn set(v: &BTreeSet<u64>) -> RunSet {
        RunSet::from_sorted(v.iter().map(|&x| (x, x)))
    }

    proptest! {
        #[test]
        fn set_operations_agree_with_btreeset(
            a in proptest::collection::btree_set(0u64..60, 0..40),
            b in proptest::collection::btree_set(0u64..60, 0..40),
        ) {
            let (ra, rb) = (set(&a), set(&b));
            prop_assert_eq!(ra.intersect(&rb), set(&a.intersection(&b).copied().collect()));
            prop_assert_eq!(ra.union(&rb), set(&a.union(&b).copied().collect()));
            prop_assert_eq!(ra.difference(&rb), set(&a.difference(&b).copied().collect()));
            prop_assert_eq!(ra.count(), a.len() as u64);
            for x in 0..60 {
                prop_assert_eq!(ra.contains(x), a.contains(&x));
            }
        }
    }
}
