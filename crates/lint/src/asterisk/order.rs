//! Asterisk's match order: how `ext_cmp` (`main/pbx.c`) sorts the extensions of a context and
//! how the includes are searched after them, so that the first extension in that order wins.

use std::cmp::Ordering;

use super::pattern::exten_matches;
use super::{Context, Dialplan, Exten, Include};
use crate::automaton::NumRange;

/// Compares exact extensions, ignoring `-`.
fn cmp_exten(l: &[u8], r: &[u8]) -> i32 {
    let (mut i, mut j) = (0, 0);
    loop {
        while l.get(i) == Some(&b'-') {
            i += 1;
        }
        while r.get(j) == Some(&b'-') {
            j += 1;
        }
        let a = l.get(i).copied().unwrap_or(0) as i32;
        let b = r.get(j).copied().unwrap_or(0) as i32;
        if a != b || a == 0 {
            return a - b;
        }
        i += 1;
        j += 1;
    }
}

/// The sort value of the next pattern position (and its character set in `bits`), as
/// Asterisk's `ext_cmp_pattern_pos` computes it; `None` once the pattern ended.
fn pattern_pos(p: &[u8], at: &mut Option<usize>, bits: &mut [u8; 32]) -> i32 {
    let Some(mut i) = *at else { return 0x30000 };
    loop {
        let mut c;
        loop {
            c = p.get(i).copied().unwrap_or(0);
            i += 1;
            if c != b'-' {
                break;
            }
        }
        match c {
            b'n' | b'N' => {
                bits[6] = 0x3f;
                bits[7] = 0xc0;
                *at = Some(i);
                return 0x0800 | b'2' as i32;
            }
            b'x' | b'X' => {
                bits[6] = 0xff;
                bits[7] = 0xc0;
                *at = Some(i);
                return 0x0A00 | b'0' as i32;
            }
            b'z' | b'Z' => {
                bits[6] = 0x7f;
                bits[7] = 0xc0;
                *at = Some(i);
                return 0x0900 | b'1' as i32;
            }
            b'.' => {
                *at = Some(i);
                return 0x18000;
            }
            b'!' => {
                *at = Some(i);
                return 0x28000;
            }
            0 => {
                *at = None;
                return 0x30000;
            }
            b'[' => {}
            c => {
                bits[(c / 8) as usize] = 1 << (7 - (c % 8));
                *at = Some(i);
                return 0x0100 | c as i32;
            }
        }
        let Some(end) = p[i.min(p.len())..].iter().position(|&b| b == b']') else {
            *at = Some(i);
            return 0x40000;
        };
        let end = i + end;
        let mut count = 0;
        let mut cmin: u8 = 0xff;
        while i < end {
            let c1 = p[i];
            let c2 = if i + 2 < end && p[i + 1] == b'-' {
                i += 2;
                p[i]
            } else {
                c1
            };
            cmin = cmin.min(c1);
            for c in u16::from(c1)..=u16::from(c2) {
                let c = c as u8;
                let mask = 1 << (7 - (c % 8));
                if bits[(c / 8) as usize] & mask == 0 {
                    bits[(c / 8) as usize] |= mask;
                    count += 0x100;
                }
            }
            i += 1;
        }
        i += 1;
        if count != 0 {
            *at = Some(i);
            return count | cmin as i32;
        }
    }
}

fn cmp_pattern(l: &[u8], r: &[u8]) -> i32 {
    let (mut li, mut ri) = (Some(0), Some(0));
    loop {
        let mut lb = [0u8; 32];
        let mut rb = [0u8; 32];
        let lp = pattern_pos(l, &mut li, &mut lb);
        let rp = pattern_pos(r, &mut ri, &mut rb);
        let mut cmp = lp - rp;
        if cmp == 0 {
            // Equal score: the set with the lower characters first (note the swap).
            cmp = match rb.cmp(&lb) {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            };
        }
        if cmp != 0 || li.is_none() {
            return cmp;
        }
    }
}

/// Asterisk's `ext_cmp`: the order of extensions in a context.
pub fn ext_cmp(l: &str, r: &str) -> Ordering {
    let (l, r) = (l.as_bytes(), r.as_bytes());
    let c = match (l.first() == Some(&b'_'), r.first() == Some(&b'_')) {
        (false, true) => -1,
        (true, false) => 1,
        (false, false) => cmp_exten(l, r),
        (true, true) => cmp_pattern(&l[1..], &r[1..]),
    };
    c.cmp(&0)
}

/// The order `ast_add_extension2` keeps: by name, then caller-id matches before none.
pub(super) fn exten_order(a: &Exten, b: &Exten) -> Ordering {
    ext_cmp(&a.name, &b.name).then_with(|| match (&a.cid, &b.cid) {
        (None, None) => Ordering::Equal,
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some(x), Some(y)) => ext_cmp(x, y),
    })
}

/// One extension in the order Asterisk tries them for a context.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub context: &'a Context,
    pub exten: &'a Exten,
    /// The include of the checked context this came through (`None`: its own extension).
    pub via: Option<&'a Include>,
    pub timed: bool,
    /// A `switch =>`: it answers for whatever the other end knows.
    pub switch: bool,
}

/// Every extension with a priority 1, in the order Asterisk tries them for `context`.
pub fn search_order<'a>(dp: &'a Dialplan, context: &str) -> Vec<Entry<'a>> {
    let mut out = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    visit(dp, context, None, false, &mut seen, &mut out);
    out
}

fn visit<'a>(
    dp: &'a Dialplan,
    name: &str,
    via: Option<&'a Include>,
    timed: bool,
    seen: &mut Vec<String>,
    out: &mut Vec<Entry<'a>>,
) {
    if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
        return;
    }
    let Some(c) = dp.context(name) else { return };
    let mut ext: Vec<&Exten> = c.extens.iter().filter(|e| e.app1.is_some()).collect();
    ext.sort_by(|a, b| exten_order(a, b));
    for e in ext {
        out.push(Entry {
            context: c,
            exten: e,
            via,
            timed,
            switch: false,
        });
    }
    for sw in &c.switches {
        out.push(Entry {
            context: c,
            exten: sw,
            via,
            timed,
            switch: true,
        });
    }
    seen.push(c.name.clone());
    for inc in &c.includes {
        visit(
            dp,
            &inc.context,
            via.or(Some(inc)),
            timed || inc.timed,
            seen,
            out,
        );
    }
}

/// The extension Asterisk runs for `dialled` in `context` (the default matcher), with the
/// context it lives in; caller-id and time conditions are taken as met.
pub fn winner<'a>(
    dp: &'a Dialplan,
    context: &str,
    dialled: &str,
) -> Option<(&'a Context, &'a Exten)> {
    let span: callpark_core::orbit::Span = dialled.parse().ok()?;
    let one = NumRange::from_span(&span);
    search_order(dp, context)
        .into_iter()
        .find(|e| !exten_matches(&e.exten.name, &one).is_empty())
        .map(|e| (e.context, e.exten))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_follows_asterisk() {
        let mut v = vec![
            "_X.", "_7XX", "_70X", "_7[0-4]X", "_NXX", "_ZXX", "701", "_7!", "_7.",
        ];
        v.sort_by(|a, b| ext_cmp(a, b));
        assert_eq!(
            v,
            [
                "701", "_70X", "_7[0-4]X", "_7XX", "_7.", "_7!", "_NXX", "_ZXX", "_X."
            ]
        );
    }
}
