//! Dial patterns for runs of orbits: a run `[lo, hi]` of fixed-width numbers is split into
//! pieces, each a sequence of digit classes, whose union is exactly the run, and the pieces are
//! spelled as regexes (FreeSWITCH conditions, the lint's Lync fixes).
//!
//! The include files callpark generates (`callpark dialplan asterisk|freeswitch`) route orbit
//! ranges with these pieces and the lint writes its fixes with them; sharing one split keeps
//! the two from disagreeing about which numbers a range covers. Asterisk's spelling of a piece
//! lives with the reading of Asterisk patterns (`asterisk::pattern`); how the fixes assemble
//! the pieces is the lint's own business ([`crate::fix`]).

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
}
