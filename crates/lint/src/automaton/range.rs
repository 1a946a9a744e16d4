//! The numbers a pattern is decided against.

use callpark_core::orbit::Span;

use crate::runs::RunSet;

/// A run of fixed-width numbers after a fixed prefix: `prefix` + `lo..=hi` written with
/// `width` digits. An orbit range is one; the engine also takes wider ones (10^9 numbers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NumRange {
    pub prefix: String,
    pub width: u32,
    pub lo: u64,
    pub hi: u64,
}

impl NumRange {
    pub fn new(prefix: &str, width: u32, lo: u64, hi: u64) -> NumRange {
        assert!(width <= 18 && lo <= hi && hi < 10u64.pow(width));
        NumRange {
            prefix: prefix.to_string(),
            width,
            lo,
            hi,
        }
    }

    pub(crate) fn from_span(span: &Span) -> NumRange {
        NumRange::new(
            span.first.prefix().as_str(),
            span.first.digits(),
            u64::from(span.first.value()),
            u64::from(span.last.value()),
        )
    }

    pub fn len(&self) -> u64 {
        self.hi - self.lo + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The dialled string for value `v`.
    pub fn text(&self, v: u64) -> String {
        format!("{}{:0w$}", self.prefix, v, w = self.width as usize)
    }

    pub fn all(&self) -> RunSet {
        RunSet::single(self.lo, self.hi)
    }
}

impl std::fmt::Display for NumRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.text(self.lo))
        } else {
            write!(f, "{}-{}", self.text(self.lo), self.text(self.hi))
        }
    }
}
