//! The orbits one pool owns, and which of them are free.

use crate::orbit::{FreeSet, Orbit, OrbitRange, OrbitTable};

/// The orbits one pool owns, with which of them are free.
///
/// ```
/// use callpark_core::orbit::{OrbitRange, OrbitTable};
/// use callpark_core::park::PoolOrbits;
///
/// let range = |name: &str, span: &str, lot: Option<&str>| OrbitRange {
///     name: name.into(),
///     span: span.parse().unwrap(),
///     pool: "pbx1".into(),
///     lot: lot.map(Into::into),
/// };
/// let table = OrbitTable::new(vec![
///     range("general", "701-703", None),
///     range("sales", "801-899", Some("sales")),
/// ])?;
/// let mut orbits = PoolOrbits::new(&table, "pbx1");
/// assert_eq!(orbits.allocate(Some("sales")), Some("801".parse()?));
/// assert_eq!(orbits.allocate(None), Some("701".parse()?));
/// // A directed park takes a named orbit: `Some(false)` when it is in use already.
/// assert_eq!(orbits.take("702".parse()?), Some(true));
/// assert_eq!(orbits.take("702".parse()?), Some(false));
/// assert_eq!(orbits.allocate(None), Some("703".parse()?));
/// assert!(orbits.release("701".parse()?));
/// assert_eq!(orbits.allocate(None), Some("701".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PoolOrbits {
    ranges: Vec<(OrbitRange, FreeSet)>,
}

impl PoolOrbits {
    /// The ranges of `table` that `pool` owns, every orbit free.
    pub fn new(table: &OrbitTable, pool: &str) -> PoolOrbits {
        PoolOrbits {
            ranges: table
                .pool_ranges(pool)
                .map(|r| (r.clone(), FreeSet::new(r.span.len())))
                .collect(),
        }
    }

    /// The lowest free orbit, ranges taken in table order; only ranges of `lot` when given.
    pub fn allocate(&mut self, lot: Option<&str>) -> Option<Orbit> {
        self.allocate_where(|l| lot.is_none() || l == lot)
    }

    /// The lowest free orbit of the ranges whose lot (`None`: the general lot) `pick` takes.
    pub(super) fn allocate_where(&mut self, pick: impl Fn(Option<&str>) -> bool) -> Option<Orbit> {
        for (r, free) in &mut self.ranges {
            if !pick(r.lot.as_deref()) {
                continue;
            }
            if let Some(i) = free.take_lowest() {
                return r.span.at(i);
            }
        }
        None
    }

    /// The lot of one of this pool's orbits: `None` if the pool does not own it,
    /// `Some(None)` for the general lot.
    pub fn lot_of(&self, orbit: Orbit) -> Option<Option<&str>> {
        self.ranges
            .iter()
            .find(|(r, _)| r.span.contains(orbit))
            .map(|(r, _)| r.lot.as_deref())
    }

    /// Takes a named orbit (directed park, restore). `None`: not ours; `Some(false)`: in use.
    pub fn take(&mut self, orbit: Orbit) -> Option<bool> {
        let (r, free) = self
            .ranges
            .iter_mut()
            .find(|(r, _)| r.span.contains(orbit))?;
        Some(free.take(r.span.index_of(orbit)?))
    }

    /// Frees an orbit; false if it was not held.
    pub fn release(&mut self, orbit: Orbit) -> bool {
        match self.ranges.iter_mut().find(|(r, _)| r.span.contains(orbit)) {
            Some((r, free)) => r.span.index_of(orbit).is_some_and(|i| free.release(i)),
            None => false,
        }
    }

    /// Whether `orbit` is one of this pool's.
    pub fn owns(&self, orbit: Orbit) -> bool {
        self.ranges.iter().any(|(r, _)| r.span.contains(orbit))
    }

    /// (range, used, free) per range.
    pub fn usage(&self) -> impl Iterator<Item = (&OrbitRange, u64, u64)> {
        self.ranges
            .iter()
            .map(|(r, f)| (r, f.len() - f.free(), f.free()))
    }
}
