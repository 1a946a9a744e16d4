//! The figures of the benchmarks and the fault runs: percentiles, medians, extremes, and how a
//! duration is printed. One way for all of them, so that their figures compare and the notes
//! quoting them mean the same thing everywhere.
//!
//! Percentiles are nearest-rank on the line from the smallest value to the largest: the `p`
//! quantile of `n` sorted values is the one at index `round((n - 1) * p)` ([`rank`]). No
//! interpolation: every figure is a value that was measured. `p = 0.5` is the median (of an
//! even count, the upper of the two middle values), `p = 1` the largest.

use std::time::Duration;

/// The index of the `p` quantile (`0 <= p <= 1`) in `len` sorted values: `round((len - 1) * p)`.
///
/// ```
/// use callpark_testkit::stats::rank;
///
/// assert_eq!(rank(100, 0.99), 98);
/// assert_eq!(rank(4, 0.5), 2);
/// assert_eq!(rank(1, 0.99), 0);
/// ```
pub fn rank(len: usize, p: f64) -> usize {
    assert!(len > 0, "a percentile of no values");
    assert!((0.0..=1.0).contains(&p), "percentile {p} outside 0..=1");
    ((len - 1) as f64 * p).round() as usize
}

/// The `p` quantile of values sorted already, smallest first (see [`rank`]).
pub fn percentile_sorted<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[rank(sorted.len(), p)]
}

/// The `p` quantile of `v`, in any order (see [`rank`]). Panics when `v` is empty.
pub fn percentile<T: Ord + Copy>(v: &[T], p: f64) -> T {
    let mut s = v.to_vec();
    s.sort_unstable();
    percentile_sorted(&s, p)
}

/// The median of `v`: its 0.5 quantile (of an even count, the upper middle value).
pub fn median<T: Ord + Copy>(v: &[T]) -> T {
    percentile(v, 0.5)
}

/// The `p` quantile of durations (see [`rank`]).
pub fn pct(v: &[Duration], p: f64) -> Duration {
    percentile(v, p)
}

/// Values sorted once, for several of their figures.
#[derive(Debug, Clone)]
pub struct Summary<T> {
    sorted: Vec<T>,
}

impl<T: Ord + Copy> Summary<T> {
    /// The figures of `values`, in any order.
    pub fn new(values: impl IntoIterator<Item = T>) -> Summary<T> {
        let mut sorted: Vec<T> = values.into_iter().collect();
        sorted.sort_unstable();
        Summary { sorted }
    }

    /// How many values there are.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are none (every other figure then panics).
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The `p` quantile (see [`rank`]).
    pub fn p(&self, p: f64) -> T {
        percentile_sorted(&self.sorted, p)
    }

    /// The 0.5 quantile.
    pub fn median(&self) -> T {
        self.p(0.5)
    }

    /// The smallest value.
    pub fn min(&self) -> T {
        self.p(0.0)
    }

    /// The largest value.
    pub fn max(&self) -> T {
        self.p(1.0)
    }
}

/// The longest duration seen so far, and what it was of (a cycle's number; `()` for nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slowest<K = ()> {
    /// The longest duration; zero before the first.
    pub time: Duration,
    /// What took it; the default before the first.
    pub of: K,
}

impl<K> Slowest<K> {
    /// Counts `time`, taken by `of`; the first of equal longest durations is kept.
    pub fn add(&mut self, time: Duration, of: K) {
        if time > self.time {
            self.time = time;
            self.of = of;
        }
    }
}

/// A duration in milliseconds to a tenth: `12.3 ms`.
pub fn ms(d: Duration) -> String {
    ms_to(d, 1)
}

/// A duration in milliseconds with `decimals` places: `12.34 ms` for 2.
pub fn ms_to(d: Duration, decimals: usize) -> String {
    format!("{:.*} ms", decimals, d.as_secs_f64() * 1000.0)
}

/// Microseconds, which may be negative (a difference), in milliseconds to a tenth: `-1.5 ms`.
pub fn us_ms(us: i64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_of(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank_without_interpolation() {
        let v: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(
            percentile(&v, 0.5),
            51,
            "round(99 * 0.5) = 50: the upper middle"
        );
        assert_eq!(percentile(&v, 0.9), 90);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(median(&[3, 1, 2]), 2);
        assert_eq!(median(&[4, 1, 3, 2]), 3);
        let d = ms_of(&[30, 10, 20]);
        assert_eq!(pct(&d, 0.5), Duration::from_millis(20));
        assert_eq!(pct(&d, 0.99), Duration::from_millis(30));
    }

    #[test]
    fn sorted_values_of_any_order_type() {
        let mut f = vec![2.5, -1.0, 0.5, 9.0];
        f.sort_by(f64::total_cmp);
        assert_eq!(percentile_sorted(&f, 0.0), -1.0);
        assert_eq!(percentile_sorted(&f, 0.95), 9.0);
    }

    #[test]
    #[should_panic(expected = "no values")]
    fn no_values_have_no_percentile() {
        percentile::<u32>(&[], 0.5);
    }

    #[test]
    fn a_summary_sorts_once() {
        let s = Summary::new(ms_of(&[5, 1, 4, 2, 3]));
        assert_eq!(s.len(), 5);
        assert!(!s.is_empty());
        assert_eq!(s.min(), Duration::from_millis(1));
        assert_eq!(s.median(), Duration::from_millis(3));
        assert_eq!(s.p(0.99), Duration::from_millis(5));
        assert_eq!(s.max(), Duration::from_millis(5));
        assert!(Summary::<u8>::new([]).is_empty());
    }

    #[test]
    fn the_slowest_keeps_what_took_it() {
        let mut s = Slowest::default();
        assert_eq!(s.time, Duration::ZERO);
        for (cycle, m) in [(1, 30), (2, 50), (3, 50), (4, 10)] {
            s.add(Duration::from_millis(m), cycle);
        }
        assert_eq!((s.time, s.of), (Duration::from_millis(50), 2));
    }

    #[test]
    fn durations_print_in_milliseconds() {
        assert_eq!(ms(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(ms(Duration::ZERO), "0.0 ms");
        assert_eq!(ms_to(Duration::from_micros(12_346), 2), "12.35 ms");
        assert_eq!(us_ms(-1_500), "-1.5 ms");
        assert_eq!(us_ms(260), "0.3 ms");
    }
}
