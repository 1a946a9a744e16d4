//! Dial patterns for runs of orbits: a run `[lo, hi]` of fixed-width numbers is split into
//! pieces, each a sequence of digit classes, whose union is exactly the run.
//!
//! The include files callpark generates (`callpark dialplan asterisk|freeswitch`) route orbit
//! ranges with these patterns and the lint writes its fixes with them; sharing one split keeps
//! the two from disagreeing about which numbers a range covers. How the fixes assemble the
//! pieces is the lint's own business ([`crate::fix`]).

/// One digit position: the inclusive range of digits (0-9) it accepts.
pub(crate) type DigitClass = (u8, u8);

/// Splits `[lo, hi]` (both written with `width` digits, zero-padded) into sequences of digit
/// classes whose union is exactly the range: the classic split at the first digit where the
/// bounds differ.
pub(crate) fn range_pieces(width: u32, lo: u64, hi: u64) -> Vec<Vec<DigitClass>> {
    let digits = |v: u64| -> Vec<u8> {
        format!("{v:0w$}", w = width as usize)
            .bytes()
            .map(|b| b - b'0')
            .collect()
    };
    let mut out = Vec::new();
    split(&digits(lo), &digits(hi), &mut Vec::new(), &mut out);
    out
}

fn split(lo: &[u8], hi: &[u8], head: &mut Vec<DigitClass>, out: &mut Vec<Vec<DigitClass>>) {
    let Some((&l, lrest)) = lo.split_first() else {
        out.push(head.clone());
        return;
    };
    let (&h, hrest) = hi.split_first().expect("same width");
    if l == h {
        head.push((l, l));
        split(lrest, hrest, head, out);
        head.pop();
        return;
    }
    let all_lo = lrest.iter().all(|&d| d == 0);
    let all_hi = hrest.iter().all(|&d| d == 9);
    let (mut first, mut last) = (l, h);
    if !all_lo {
        head.push((l, l));
        split(lrest, &vec![9; lrest.len()], head, out);
        head.pop();
        first += 1;
    }
    if !all_hi {
        last -= 1;
    }
    if first <= last {
        let mut piece = head.clone();
        piece.push((first, last));
        piece.extend(std::iter::repeat_n((0, 9), lrest.len()));
        out.push(piece);
    }
    if !all_hi {
        head.push((h, h));
        split(&vec![0; hrest.len()], hrest, head, out);
        head.pop();
    }
}

/// How an Asterisk pattern writes the classes 1-9 and 2-9, for which Asterisk has letters.
/// Asterisk reads both spellings alike; each output keeps the one it has been shipped with, so
/// files already deployed and the lines the docs quote stay the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Letters {
    /// `Z` and `N`: the lint's fixes (and `normalization/asterisk/callpark-orbits.conf`).
    Short,
    /// `[1-9]` and `[2-9]`: the generated include (`dialplan/asterisk/callpark.conf`).
    Brackets,
}

/// The Asterisk extension for one piece after `prefix`: a plain extension when every class is
/// one digit, else a `_` pattern (`X` for 0-9, `[a-b]` for other ranges).
fn asterisk_pattern(prefix: &str, piece: &[DigitClass], letters: Letters) -> String {
    let mut s = prefix.to_string();
    let mut literal = true;
    for &c in piece {
        match (c, letters) {
            ((a, b), _) if a == b => {
                s.push(char::from(b'0' + a));
                continue;
            }
            ((0, 9), _) => s.push('X'),
            ((1, 9), Letters::Short) => s.push('Z'),
            ((2, 9), Letters::Short) => s.push('N'),
            ((a, b), _) => s.push_str(&format!("[{a}-{b}]")),
        }
        literal = false;
    }
    if literal { s } else { format!("_{s}") }
}

/// The Asterisk extensions that together match exactly `prefix` + `[lo, hi]`.
pub fn asterisk_patterns(
    prefix: &str,
    width: u32,
    lo: u64,
    hi: u64,
    letters: Letters,
) -> Vec<String> {
    range_pieces(width, lo, hi)
        .iter()
        .map(|p| asterisk_pattern(prefix, p, letters))
        .collect()
}

fn regex_class(c: DigitClass) -> String {
    match c {
        (a, b) if a == b => ((b'0' + a) as char).to_string(),
        (0, 9) => r"\d".into(),
        (a, b) if b == a + 1 => format!("[{a}{b}]"),
        (a, b) => format!("[{a}-{b}]"),
    }
}

/// A regex for one piece (`70[1-9]`, `7[1-9]\\d`), repeated classes counted (`\\d{2}`).
pub(crate) fn regex_piece(p: &[DigitClass]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while i < p.len() {
        let mut j = i;
        while j < p.len() && p[j] == p[i] {
            j += 1;
        }
        let c = regex_class(p[i]);
        match j - i {
            1 => s.push_str(&c),
            2 if c.len() == 1 => {
                s.push_str(&c);
                s.push_str(&c);
            }
            n => s.push_str(&format!("{c}{{{n}}}")),
        }
        i = j;
    }
    s
}

/// Escapes the orbit prefix (`*`, `#`) for a regex.
pub(crate) fn regex_prefix(prefix: &str) -> String {
    prefix
        .chars()
        .map(|c| match c {
            '*' => r"\*".to_string(),
            '#' => "#".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Regex alternatives (prefix included, no anchors) that together match exactly
/// `prefix` + `[lo, hi]`, as FreeSWITCH's dialplan conditions and the lint's fixes write them.
pub fn regex_alternatives(prefix: &str, width: u32, lo: u64, hi: u64) -> Vec<String> {
    let prefix = regex_prefix(prefix);
    range_pieces(width, lo, hi)
        .iter()
        .map(|p| format!("{prefix}{}", regex_piece(p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(piece: &[DigitClass], v: u64, width: u32) -> bool {
        format!("{v:0w$}", w = width as usize)
            .bytes()
            .zip(piece)
            .all(|(d, &(a, b))| (a..=b).contains(&(d - b'0')))
    }

    /// Every number of the width is covered by exactly one piece iff it lies in the range.
    #[test]
    fn pieces_cover_exactly_once() {
        for (w, lo, hi) in [
            (3, 701, 799),
            (4, 7000, 7099),
            (3, 123, 876),
            (3, 100, 999),
            (4, 1999, 2000),
            (4, 1000, 1000),
            (4, 2345, 6789),
            (4, 5500, 5599),
            (2, 10, 99),
            (1, 4, 7),
            (3, 5, 42),
        ] {
            let pieces = range_pieces(w, lo, hi);
            for v in 0..10u64.pow(w) {
                let hits = pieces.iter().filter(|p| covers(p, v, w)).count();
                let inside = (lo..=hi).contains(&v);
                assert_eq!(
                    hits,
                    usize::from(inside),
                    "{w} {lo}-{hi}: {v} in {pieces:?}"
                );
            }
        }
    }

    #[test]
    fn asterisk_spellings() {
        let short = asterisk_patterns("", 3, 701, 799, Letters::Short);
        assert_eq!(short, ["_70Z", "_7ZX"]);
        let brackets = asterisk_patterns("", 3, 701, 799, Letters::Brackets);
        assert_eq!(brackets, ["_70[1-9]", "_7[1-9]X"]);
        assert_eq!(
            asterisk_patterns("*", 4, 7000, 7099, Letters::Brackets),
            ["_*70XX"]
        );
        assert_eq!(asterisk_patterns("", 3, 700, 700, Letters::Short), ["700"]);
        assert_eq!(
            asterisk_patterns("#", 3, 200, 999, Letters::Short),
            ["_#NXX"]
        );
        assert_eq!(
            asterisk_patterns("", 3, 130, 159, Letters::Short),
            ["_1[3-5]X"]
        );
    }
}
