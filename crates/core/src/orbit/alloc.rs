//! A set of free slots with constant-time "lowest free" lookup.
//!
//! Three levels of 64-bit words: a bit in level 0 is one slot (1 = free); a bit in level 1 says
//! the matching level-0 word has a free slot; likewise level 2 over level 1. Finding the lowest
//! free slot reads one word per level, so it costs the same for 100 orbits as for 10^6 (the
//! largest range), and a 10^6-orbit range takes about 128 KiB.

/// Which slots (orbits of a range, by index) are free; the lowest free one in constant time.
#[derive(Debug, Clone)]
pub(crate) struct FreeSet {
    len: u64,
    l0: Vec<u64>,
    l1: Vec<u64>,
    l2: Vec<u64>,
    free: u64,
}

fn words(bits: u64) -> usize {
    bits.div_ceil(64) as usize
}

fn full_words(bits: u64) -> Vec<u64> {
    let mut v = vec![u64::MAX; words(bits)];
    let rem = bits % 64;
    if rem != 0 {
        *v.last_mut().expect("at least one word") = (1u64 << rem) - 1;
    }
    v
}

impl FreeSet {
    /// `len` slots, all free. `len` may be at most 64^4 (16.7 million).
    pub fn new(len: u64) -> FreeSet {
        assert!(len <= 64 * 64 * 64 * 64, "FreeSet holds at most 64^4 slots");
        let l0 = full_words(len);
        let l1 = full_words(l0.len() as u64);
        let l2 = full_words(l1.len() as u64);
        assert!(l2.len() <= 64);
        FreeSet {
            len,
            l0,
            l1,
            l2,
            free: len,
        }
    }

    /// Number of slots, free or not.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Number of free slots.
    pub fn free(&self) -> u64 {
        self.free
    }

    /// Whether slot `i` exists and is free.
    pub fn is_free(&self, i: u64) -> bool {
        i < self.len && self.l0[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// The lowest free slot.
    pub fn lowest_free(&self) -> Option<u64> {
        let w2 = self.l2.iter().position(|&w| w != 0)?;
        let i1 = w2 * 64 + self.l2[w2].trailing_zeros() as usize;
        let i0 = i1 * 64 + self.l1[i1].trailing_zeros() as usize;
        Some(i0 as u64 * 64 + u64::from(self.l0[i0].trailing_zeros()))
    }

    /// Marks slot `i` used; false if it was not free.
    pub fn take(&mut self, i: u64) -> bool {
        if !self.is_free(i) {
            return false;
        }
        let i0 = (i / 64) as usize;
        self.l0[i0] &= !(1 << (i % 64));
        if self.l0[i0] == 0 {
            let i1 = i0 / 64;
            self.l1[i1] &= !(1 << (i0 % 64));
            if self.l1[i1] == 0 {
                self.l2[i1 / 64] &= !(1 << (i1 % 64));
            }
        }
        self.free -= 1;
        true
    }

    /// Marks slot `i` free; false if it was already free or out of range.
    pub fn release(&mut self, i: u64) -> bool {
        if i >= self.len || self.is_free(i) {
            return false;
        }
        let i0 = (i / 64) as usize;
        self.l0[i0] |= 1 << (i % 64);
        let i1 = i0 / 64;
        self.l1[i1] |= 1 << (i0 % 64);
        self.l2[i1 / 64] |= 1 << (i1 % 64);
        self.free += 1;
        true
    }

    /// Takes the lowest free slot.
    pub fn take_lowest(&mut self) -> Option<u64> {
        let i = self.lowest_free()?;
        self.take(i);
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn takes_lowest_and_reuses_released() {
        let mut s = FreeSet::new(130);
        for want in 0..130 {
            assert_eq!(s.take_lowest(), Some(want));
        }
        assert_eq!(s.take_lowest(), None);
        assert!(s.release(65));
        assert!(!s.release(65));
        assert!(s.release(3));
        assert_eq!(s.take_lowest(), Some(3));
        assert_eq!(s.take_lowest(), Some(65));
        assert_eq!(s.free(), 0);
        assert!(!s.release(130));
    }

    #[test]
    fn largest_range_sizes() {
        let mut s = FreeSet::new(1_000_000);
        assert!(s.take(999_999));
        assert_eq!(s.lowest_free(), Some(0));
        for i in 0..999_999 {
            s.take(i);
        }
        assert_eq!(s.lowest_free(), None);
        s.release(777_777);
        assert_eq!(s.lowest_free(), Some(777_777));
        let heap_bytes = (s.l0.capacity() + s.l1.capacity() + s.l2.capacity()) * 8;
        assert!(heap_bytes < 130_000);
    }

    proptest! {
        #[test]
        fn agrees_with_a_btreeset(len in 1u64..5000, ops in prop::collection::vec((any::<bool>(), 0u64..5000), 0..400)) {
            let mut s = FreeSet::new(len);
            let mut used = BTreeSet::new();
            for (take, i) in ops {
                let i = i % len;
                if take {
                    prop_assert_eq!(s.take(i), used.insert(i));
                } else {
                    prop_assert_eq!(s.release(i), used.remove(&i));
                }
                let lowest = (0..len).find(|x| !used.contains(x));
                prop_assert_eq!(s.lowest_free(), lowest);
                prop_assert_eq!(s.free(), len - used.len() as u64);
            }
        }
    }
}
