//! Orbits, orbit ranges and the orbit table.
//!
//! An orbit follows Lync Server 2013's format: either `*` or `#` followed by 1 to 8 digits whose
//! first digit is not 0 and whose value is above 100 (`*92000`, `#6000`), or 1 to 9 digits whose
//! first digit is not 0 (`300`, `41212`). Because the first digit is never 0, the number of digits
//! follows from the value, so an orbit is fully described by its prefix and its value.
//!
//! Orbits come in [`Span`]s (`*700-*799`); a named span owned by a pool is an [`OrbitRange`],
//! and the validated set of all ranges is the [`OrbitTable`]. Which orbits of a pool are free
//! is [`PoolOrbits`](crate::park::PoolOrbits)'s business: a bitmap per range (`alloc.rs`).
//!
//! ```
//! use callpark_core::orbit::{Orbit, Prefix, Span};
//!
//! let o: Orbit = "*701".parse()?;
//! assert_eq!((o.prefix(), o.value(), o.digits()), (Prefix::Star, 701, 3));
//! assert_eq!(o.to_string(), "*701");
//! // The first digit is never 0, and a prefixed orbit is above 100.
//! assert!("0701".parse::<Orbit>().is_err());
//! assert!("*100".parse::<Orbit>().is_err());
//!
//! let span: Span = "*700-*799".parse()?;
//! assert_eq!(span.len(), 100);
//! assert!(span.contains(o));
//! assert!(!span.contains("701".parse()?));
//! assert_eq!(span.at(1), Some(o));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod alloc;

pub(crate) use alloc::FreeSet;

use std::fmt;
use std::str::FromStr;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Largest number of orbits one range may hold (Lync's limit).
pub const MAX_RANGE_SIZE: u64 = 1_000_000;

/// The prefix an orbit starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum Prefix {
    /// Digits only (`7000`).
    None,
    /// `*` (`*701`).
    Star,
    /// `#` (`#5000`).
    Hash,
}

impl Prefix {
    /// The prefix as written: `""`, `"*"` or `"#"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Prefix::None => "",
            Prefix::Star => "*",
            Prefix::Hash => "#",
        }
    }
}

/// One orbit number, e.g. `*701`, `#5000` or `7000`: parsed with [`str::parse`], written back
/// with [`Display`](fmt::Display).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Orbit {
    prefix: Prefix,
    value: u32,
}

/// Why a string is not a valid orbit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OrbitError {
    /// No digits at all.
    #[error("`{0}` is empty; an orbit is `*` or `#` and 1-8 digits, or 1-9 digits")]
    Empty(String),
    /// Something other than digits after the prefix.
    #[error(
        "`{0}` has a character that is not a digit; an orbit is `*` or `#` and 1-8 digits, or 1-9 digits"
    )]
    NotDigits(String),
    /// The first digit is 0.
    #[error("`{0}` starts with 0; the first digit of an orbit must be 1-9")]
    LeadingZero(String),
    /// More than 8 digits after `*`/`#`, or more than 9 without.
    #[error("`{0}` has too many digits: at most 8 after `*`/`#`, at most 9 without a prefix")]
    TooLong(String),
    /// `*` or `#` and a value of 100 or less.
    #[error("`{0}` must be above 100 when it starts with `*` or `#`")]
    TooSmall(String),
}

impl Orbit {
    /// Builds an orbit from its parts, checking Lync's rules.
    pub fn new(prefix: Prefix, value: u32) -> Result<Orbit, OrbitError> {
        format!("{}{}", prefix.as_str(), value).parse()
    }

    /// The prefix: `*`, `#` or none.
    pub fn prefix(self) -> Prefix {
        self.prefix
    }

    /// The digits after the prefix, as a number.
    pub fn value(self) -> u32 {
        self.value
    }

    /// Number of digits (without the prefix).
    pub fn digits(self) -> u32 {
        self.value.checked_ilog10().unwrap_or(0) + 1
    }

    /// The orbit `n` places after this one, if it keeps the same prefix and length.
    pub fn offset(self, n: u64) -> Option<Orbit> {
        let v = u64::from(self.value).checked_add(n)?;
        let v = u32::try_from(v).ok()?;
        let o = Orbit {
            prefix: self.prefix,
            value: v,
        };
        (o.digits() == self.digits()).then_some(o)
    }
}

impl FromStr for Orbit {
    type Err = OrbitError;

    fn from_str(s: &str) -> Result<Orbit, OrbitError> {
        let (prefix, digits) = match s.as_bytes().first() {
            None => return Err(OrbitError::Empty(s.to_string())),
            Some(b'*') => (Prefix::Star, &s[1..]),
            Some(b'#') => (Prefix::Hash, &s[1..]),
            Some(_) => (Prefix::None, s),
        };
        if digits.is_empty() {
            return Err(OrbitError::Empty(s.to_string()));
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(OrbitError::NotDigits(s.to_string()));
        }
        if digits.starts_with('0') {
            return Err(OrbitError::LeadingZero(s.to_string()));
        }
        let max = if prefix == Prefix::None { 9 } else { 8 };
        if digits.len() > max {
            return Err(OrbitError::TooLong(s.to_string()));
        }
        let value: u32 = digits
            .parse()
            .map_err(|_| OrbitError::NotDigits(s.to_string()))?;
        if prefix != Prefix::None && value <= 100 {
            return Err(OrbitError::TooSmall(s.to_string()));
        }
        Ok(Orbit { prefix, value })
    }
}

impl fmt::Display for Orbit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.prefix.as_str(), self.value)
    }
}

#[cfg(feature = "serde")]
impl Serialize for Orbit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> Deserialize<'de> for Orbit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Orbit, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A contiguous run of orbits: same prefix, same length, `first <= last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// The lowest orbit of the span.
    pub first: Orbit,
    /// The highest orbit of the span (`first` for a span of one).
    pub last: Orbit,
}

/// Why two orbits do not make a span.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpanError {
    /// The ends have different prefixes.
    #[error("first `{0}` and last `{1}` must have the same prefix (`*`, `#` or none)")]
    PrefixMismatch(Orbit, Orbit),
    /// The ends have different numbers of digits.
    #[error("first `{0}` and last `{1}` must have the same number of digits")]
    LengthMismatch(Orbit, Orbit),
    /// The first end is above the last.
    #[error("first `{0}` is above last `{1}`")]
    Reversed(Orbit, Orbit),
}

impl Span {
    /// The orbits from `first` to `last`, which must share prefix and length.
    pub fn new(first: Orbit, last: Orbit) -> Result<Span, SpanError> {
        if first.prefix != last.prefix {
            return Err(SpanError::PrefixMismatch(first, last));
        }
        if first.digits() != last.digits() {
            return Err(SpanError::LengthMismatch(first, last));
        }
        if first.value > last.value {
            return Err(SpanError::Reversed(first, last));
        }
        Ok(Span { first, last })
    }

    /// Number of orbits in the span.
    pub fn len(&self) -> u64 {
        u64::from(self.last.value - self.first.value) + 1
    }

    /// A span always holds at least one orbit.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `o` is one of the span's orbits.
    pub fn contains(&self, o: Orbit) -> bool {
        o.prefix == self.first.prefix && o.value >= self.first.value && o.value <= self.last.value
    }

    /// Position of `o` in the span.
    pub(crate) fn index_of(&self, o: Orbit) -> Option<u64> {
        self.contains(o)
            .then(|| u64::from(o.value - self.first.value))
    }

    /// The orbit at position `i`.
    pub fn at(&self, i: u64) -> Option<Orbit> {
        (i < self.len()).then(|| self.first.offset(i).expect("inside the span"))
    }

    /// The first orbit both spans hold, if any.
    pub(crate) fn first_shared(&self, other: &Span) -> Option<Orbit> {
        if self.first.prefix != other.first.prefix || self.first.digits() != other.first.digits() {
            return None;
        }
        let lo = self.first.value.max(other.first.value);
        let hi = self.last.value.min(other.last.value);
        (lo <= hi).then_some(Orbit {
            prefix: self.first.prefix,
            value: lo,
        })
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Parses `*700-*799` or a single orbit `*700`.
impl FromStr for Span {
    type Err = SpanParseError;

    fn from_str(s: &str) -> Result<Span, SpanParseError> {
        let s = s.trim();
        // The separator is the `-` after the first character: orbits never contain `-`.
        let (a, b) = match s.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (s, s),
        };
        let first: Orbit = a.parse().map_err(|e| SpanParseError::Orbit(s.into(), e))?;
        let last: Orbit = b.parse().map_err(|e| SpanParseError::Orbit(s.into(), e))?;
        Span::new(first, last).map_err(|e| SpanParseError::Span(s.into(), e))
    }
}

/// Why a string is not a span: the text, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpanParseError {
    /// One of its ends is not an orbit.
    #[error("orbit range `{0}`: {1}")]
    Orbit(String, OrbitError),
    /// Its ends are orbits that make no span.
    #[error("orbit range `{0}`: {1}")]
    Span(String, SpanError),
}

/// One configured orbit range (`[[orbit_range]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrbitRange {
    /// The range's name, unique in the table.
    pub name: String,
    /// Its orbits.
    pub span: Span,
    /// The PBX ("pool") that owns the range and holds its parked calls.
    pub pool: String,
    /// Parking lot (e.g. a department) the range serves; `None` is the pool's general lot.
    pub lot: Option<String>,
}

/// A rule of the orbit table that the configuration breaks.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TableError {
    /// A range holds more than [`MAX_RANGE_SIZE`] orbits.
    #[error(
        "orbit range `{name}` holds {size} orbits; one range holds at most {MAX_RANGE_SIZE}: split it"
    )]
    TooLarge {
        /// The range's name.
        name: String,
        /// How many orbits it holds.
        size: u64,
    },
    /// Two ranges share orbits (even ranges of different pools may not).
    #[error(
        "orbit ranges `{a}` (pool `{pool_a}`) and `{b}` (pool `{pool_b}`) both hold orbit `{orbit}`; ranges must be globally unique"
    )]
    Overlap {
        /// The first range's name.
        a: String,
        /// The first range's pool.
        pool_a: String,
        /// The second range's name.
        b: String,
        /// The second range's pool.
        pool_b: String,
        /// The lowest orbit both hold.
        orbit: Orbit,
    },
    /// Two ranges have the same name.
    #[error("two orbit ranges are named `{0}`; give each range its own name")]
    DuplicateName(String),
}

/// The whole orbit table, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrbitTable {
    ranges: Vec<OrbitRange>,
}

impl OrbitTable {
    /// Validates Lync's table rules: size per range, unique names, globally unique orbits.
    ///
    /// ```
    /// use callpark_core::orbit::{OrbitRange, OrbitTable, TableError};
    ///
    /// let range = |name: &str, pool: &str, span: &str| OrbitRange {
    ///     name: name.into(),
    ///     span: span.parse().unwrap(),
    ///     pool: pool.into(),
    ///     lot: None,
    /// };
    /// let table = OrbitTable::new(vec![range("sales", "pbx1", "*700-*799"), range("ops", "pbx2", "7000-7099")])?;
    /// assert_eq!(table.total(), 200);
    /// assert_eq!(table.range_of("*750".parse()?).unwrap().pool, "pbx1");
    ///
    /// let e = OrbitTable::new(vec![range("a", "pbx1", "*700-*799"), range("b", "pbx2", "*790-*890")]);
    /// assert!(matches!(e, Err(TableError::Overlap { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(ranges: Vec<OrbitRange>) -> Result<OrbitTable, TableError> {
        let mut names = std::collections::HashSet::new();
        for r in &ranges {
            if !names.insert(r.name.as_str()) {
                return Err(TableError::DuplicateName(r.name.clone()));
            }
            if r.span.len() > MAX_RANGE_SIZE {
                return Err(TableError::TooLarge {
                    name: r.name.clone(),
                    size: r.span.len(),
                });
            }
        }
        // Sorting by (prefix, length, first) puts any overlapping pair next to each other in
        // the order of their first orbits, so one pass finds the lowest shared orbit.
        let mut order: Vec<usize> = (0..ranges.len()).collect();
        let key = |r: &OrbitRange| {
            (
                r.span.first.prefix,
                r.span.first.digits(),
                r.span.first.value,
            )
        };
        order.sort_by_key(|&i| key(&ranges[i]));
        let mut widest: Option<usize> = None; // range reaching furthest among those seen
        for &i in &order {
            if let Some(w) = widest {
                if let Some(orbit) = ranges[w].span.first_shared(&ranges[i].span) {
                    let (a, b) = (&ranges[w], &ranges[i]);
                    return Err(TableError::Overlap {
                        a: a.name.clone(),
                        pool_a: a.pool.clone(),
                        b: b.name.clone(),
                        pool_b: b.pool.clone(),
                        orbit,
                    });
                }
                let same_kind = ranges[w].span.first.prefix == ranges[i].span.first.prefix
                    && ranges[w].span.first.digits() == ranges[i].span.first.digits();
                if !same_kind || ranges[i].span.last.value > ranges[w].span.last.value {
                    widest = Some(i);
                }
            } else {
                widest = Some(i);
            }
        }
        Ok(OrbitTable { ranges })
    }

    /// Every range, in configured order.
    pub fn ranges(&self) -> &[OrbitRange] {
        &self.ranges
    }

    /// Ranges owned by `pool`, in table order.
    pub fn pool_ranges<'a>(&'a self, pool: &'a str) -> impl Iterator<Item = &'a OrbitRange> + 'a {
        self.ranges.iter().filter(move |r| r.pool == pool)
    }

    /// The range holding `orbit`.
    pub fn range_of(&self, orbit: Orbit) -> Option<&OrbitRange> {
        self.ranges.iter().find(|r| r.span.contains(orbit))
    }

    /// Total number of orbits in the table.
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(|r| r.span.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &str) -> Orbit {
        s.parse().unwrap()
    }

    fn range(name: &str, pool: &str, span: &str) -> OrbitRange {
        OrbitRange {
            name: name.into(),
            span: span.parse().unwrap(),
            pool: pool.into(),
            lot: None,
        }
    }

    #[test]
    fn lync_format_accepts_and_rejects() {
        for good in [
            "*92000",
            "#6000",
            "300",
            "41212",
            "*101",
            "#99999999",
            "999999999",
            "1",
        ] {
            assert_eq!(o(good).to_string(), good);
        }
        let bad = [
            ("", "empty"),
            ("*", "empty"),
            ("*100", "above 100"),
            ("#0700", "starts with 0"),
            ("0700", "starts with 0"),
            ("*123456789", "too many"),
            ("1234567890", "too many"),
            ("7a0", "not a digit"),
            ("**70", "not a digit"),
        ];
        for (s, why) in bad {
            let e = s.parse::<Orbit>().unwrap_err().to_string();
            assert!(e.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn spans_need_same_prefix_and_length() {
        assert_eq!("*700-*799".parse::<Span>().unwrap().len(), 100);
        assert!(matches!(
            "*700-#799".parse::<Span>(),
            Err(SpanParseError::Span(_, SpanError::PrefixMismatch(..)))
        ));
        assert!(matches!(
            "700-1799".parse::<Span>(),
            Err(SpanParseError::Span(_, SpanError::LengthMismatch(..)))
        ));
        assert!(matches!(
            "799-700".parse::<Span>(),
            Err(SpanParseError::Span(_, SpanError::Reversed(..)))
        ));
        let s: Span = "7000".parse().unwrap();
        assert_eq!((s.len(), s.at(0), s.at(1)), (1, Some(o("7000")), None));
    }

    #[test]
    fn overlap_across_pools_names_both_ranges_and_first_shared_orbit() {
        let e = OrbitTable::new(vec![
            range("sales", "pbx-a", "*700-*799"),
            range("ops", "pbx-b", "*750-*850"),
        ])
        .unwrap_err();
        assert_eq!(
            e,
            TableError::Overlap {
                a: "sales".into(),
                pool_a: "pbx-a".into(),
                b: "ops".into(),
                pool_b: "pbx-b".into(),
                orbit: o("*750"),
            }
        );
        // A long range swallowing a later short one is found even past a non-overlapping one.
        let e = OrbitTable::new(vec![
            range("big", "a", "5000-5999"),
            range("small", "b", "5100-5100"),
            range("mid", "c", "5500-5600"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("`5100`"), "{e}");
        let e = OrbitTable::new(vec![
            range("big", "a", "5000-5999"),
            range("x", "b", "5100-5100"),
            range("y", "c", "5900-5950"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("`5100`"), "{e}");
    }

    #[test]
    fn distinct_prefixes_and_lengths_never_overlap() {
        let t = OrbitTable::new(vec![
            range("a", "p", "*700-*799"),
            range("b", "p", "#700-#799"),
            range("c", "p", "700-799"),
            range("d", "p", "7000-7999"),
        ])
        .unwrap();
        assert_eq!(t.total(), 1300);
        assert_eq!(t.range_of(o("#750")).unwrap().name, "b");
    }

    #[test]
    fn range_size_and_names_are_checked() {
        let e = OrbitTable::new(vec![range("huge", "p", "1000000-2000000")]).unwrap_err();
        assert_eq!(
            e,
            TableError::TooLarge {
                name: "huge".into(),
                size: 1_000_001
            }
        );
        OrbitTable::new(vec![range("max", "p", "1000000-1999999")]).unwrap();
        let e = OrbitTable::new(vec![range("a", "p", "100-199"), range("a", "p", "200-299")])
            .unwrap_err();
        assert_eq!(e, TableError::DuplicateName("a".into()));
    }
}
