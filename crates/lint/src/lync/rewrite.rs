//! A rule's .NET `Pattern` and `Translation` made into what the engine uses: a matcher, the
//! substitution's parts, and what `Regex.Replace` makes of an orbit with them.

use regex_syntax::hir::{Hir, HirKind, Look};

use super::LyncRule;
use crate::automaton::{Dialect, MAX_ENUMERATE, Matcher, MatcherError, NumRange, Undecided};
use crate::runs::RunSet;

/// One piece of a .NET substitution string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    /// A group by the engine's index (0 is the whole match).
    Group(usize),
    /// `` $` ``: the input before the match.
    Before,
    /// `$'`: the input after the match.
    After,
    /// `$+`: the last group.
    Last,
    /// `$_`: the whole input.
    Input,
}

/// .NET numbers unnamed groups first, then named ones; `names[i]` is the name of the engine's
/// group `i` (engine numbering is left to right). Returns, for .NET number `n`, engine index.
fn dotnet_numbering(names: &[Option<String>]) -> Vec<usize> {
    let mut order = vec![0];
    order.extend((1..names.len()).filter(|&i| names[i].is_none()));
    order.extend((1..names.len()).filter(|&i| names[i].is_some()));
    order
}

/// Parses a .NET substitution (`$1`, `${name}`, `$$`, `$&`, ...) against the pattern's groups.
fn parse_translation(t: &str, names: &[Option<String>]) -> Vec<Part> {
    let numbering = dotnet_numbering(names);
    let mut parts: Vec<Part> = Vec::new();
    let mut lit = String::new();
    let b = t.as_bytes();
    let mut i = 0;
    let flush = |lit: &mut String, parts: &mut Vec<Part>| {
        if !lit.is_empty() {
            parts.push(Part::Lit(std::mem::take(lit)));
        }
    };
    while i < b.len() {
        if b[i] != b'$' || i + 1 >= b.len() {
            let ch = t[i..].chars().next().unwrap();
            lit.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let n = b[i + 1];
        let simple = match n {
            b'$' => Some(Part::Lit("$".into())),
            b'&' => Some(Part::Group(0)),
            b'`' => Some(Part::Before),
            b'\'' => Some(Part::After),
            b'+' => Some(Part::Last),
            b'_' => Some(Part::Input),
            _ => None,
        };
        if let Some(p) = simple {
            if let Part::Lit(s) = p {
                lit.push_str(&s);
            } else {
                flush(&mut lit, &mut parts);
                parts.push(p);
            }
            i += 2;
            continue;
        }
        if n == b'{' {
            if let Some(end) = t[i + 2..].find('}') {
                let name = &t[i + 2..i + 2 + end];
                let group = if let Ok(num) = name.parse::<usize>() {
                    numbering.get(num).copied()
                } else {
                    names.iter().position(|x| x.as_deref() == Some(name))
                };
                if let Some(g) = group {
                    flush(&mut lit, &mut parts);
                    parts.push(Part::Group(g));
                    i += 3 + end;
                    continue;
                }
            }
        }
        if n.is_ascii_digit() {
            // .NET takes the longest run of digits that names a group.
            let mut j = i + 1;
            let mut best = None;
            let mut num = 0usize;
            while j < b.len() && b[j].is_ascii_digit() {
                num = num
                    .saturating_mul(10)
                    .saturating_add((b[j] - b'0') as usize);
                if num < numbering.len() {
                    best = Some((j + 1, numbering[num]));
                }
                j += 1;
            }
            if let Some((end, g)) = best {
                flush(&mut lit, &mut parts);
                parts.push(Part::Group(g));
                i = end;
                continue;
            }
        }
        lit.push('$');
        i += 1;
    }
    flush(&mut lit, &mut parts);
    parts
}

fn expand(
    parts: &[Part],
    text: &str,
    groups: &[Option<(usize, usize)>],
    numbering: &[usize],
) -> String {
    let whole = groups[0].unwrap_or((0, 0));
    let mut s = String::new();
    for p in parts {
        match p {
            Part::Lit(l) => s.push_str(l),
            Part::Group(g) => {
                if let Some(Some((a, b))) = groups.get(*g) {
                    s.push_str(&text[*a..*b]);
                }
            }
            Part::Before => s.push_str(&text[..whole.0]),
            Part::After => s.push_str(&text[whole.1..]),
            Part::Input => s.push_str(text),
            Part::Last => {
                if let Some((a, b)) = numbering
                    .iter()
                    .skip(1)
                    .rev()
                    .find_map(|&g| groups.get(g).copied().flatten())
                {
                    s.push_str(&text[a..b]);
                }
            }
        }
    }
    s
}

/// What `Regex.Replace(text, pattern, translation)` returns.
pub fn rewrite(m: &mut Matcher, parts: &[Part], text: &str) -> Result<String, Undecided> {
    let numbering = dotnet_numbering(&m.group_names());
    let mut out = String::new();
    let mut at = 0;
    for g in m.captures(text)? {
        let (a, b) = g[0].expect("group 0 takes part");
        out.push_str(&text[at..a]);
        out.push_str(&expand(parts, text, &g, &numbering));
        at = b;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

/// Token of the structural identity check.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(Vec<u8>),
    Group(usize),
}

fn push_tok(v: &mut Vec<Tok>, t: Tok) {
    if let (Some(Tok::Lit(a)), Tok::Lit(b)) = (v.last_mut(), &t) {
        a.extend_from_slice(b);
        return;
    }
    if t != Tok::Lit(Vec::new()) {
        v.push(t);
    }
}

/// The pattern without its outer anchors, as literals and whole groups, if it is that simple.
fn body_tokens(h: &Hir) -> Option<Vec<Tok>> {
    let items: Vec<&Hir> = match h.kind() {
        HirKind::Concat(v) => v.iter().collect(),
        _ => vec![h],
    };
    let mut toks = Vec::new();
    let n = items.len();
    for (i, it) in items.into_iter().enumerate() {
        match it.kind() {
            HirKind::Look(Look::Start) if i == 0 => {}
            HirKind::Look(Look::End) if i + 1 == n => {}
            HirKind::Literal(l) => push_tok(&mut toks, Tok::Lit(l.0.to_vec())),
            HirKind::Capture(c) => push_tok(&mut toks, Tok::Group(c.index as usize)),
            _ => return None,
        }
    }
    Some(toks)
}

/// How a rule treats the orbits its pattern matches, when that follows from its shape alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Every replacement equals the text it replaces.
    Keeps,
    /// Every replacement writes a character no orbit has (`+`, `;`, a letter...).
    Changes,
    /// Depends on the orbit.
    Depends,
}

pub fn shape(m: &Matcher, parts: &[Part]) -> Shape {
    let foreign = parts.iter().any(|p| match p {
        Part::Lit(l) => l
            .chars()
            .any(|c| !(c.is_ascii_digit() || c == '*' || c == '#')),
        _ => false,
    });
    if foreign {
        return Shape::Changes;
    }
    if parts == [Part::Group(0)] {
        return Shape::Keeps;
    }
    let Some(body) = m.hir().and_then(body_tokens) else {
        return Shape::Depends;
    };
    let mut tr = Vec::new();
    for p in parts {
        match p {
            Part::Lit(l) => push_tok(&mut tr, Tok::Lit(l.as_bytes().to_vec())),
            Part::Group(0) => {
                for t in &body {
                    push_tok(&mut tr, t.clone());
                }
            }
            Part::Group(g) => push_tok(&mut tr, Tok::Group(*g)),
            _ => return Shape::Depends,
        }
    }
    if tr == body {
        Shape::Keeps
    } else {
        Shape::Depends
    }
}

/// A rule ready to check.
pub struct Compiled<'a> {
    pub rule: &'a LyncRule,
    pub matcher: Result<Matcher, MatcherError>,
    parts: Vec<Part>,
    shape: Shape,
}

impl<'a> Compiled<'a> {
    pub fn new(rule: &'a LyncRule) -> Compiled<'a> {
        let matcher = Matcher::new(&rule.pattern, Dialect::DotNet);
        let (parts, shape) = match &matcher {
            Ok(m) => {
                let parts = parse_translation(&rule.translation, &m.group_names());
                let s = shape(m, &parts);
                (parts, s)
            }
            Err(_) => (Vec::new(), Shape::Depends),
        };
        Compiled {
            rule,
            matcher,
            parts,
            shape,
        }
    }

    pub fn label(&self) -> String {
        if self.rule.name.is_empty() {
            self.rule.pattern.clone()
        } else {
            self.rule.name.clone()
        }
    }

    /// Splits `hit` (orbits the pattern matches) into (changed, kept).
    pub fn split(&mut self, range: &NumRange, hit: &RunSet) -> Result<(RunSet, RunSet), Undecided> {
        match self.shape {
            Shape::Keeps => return Ok((RunSet::new(), hit.clone())),
            Shape::Changes => return Ok((hit.clone(), RunSet::new())),
            Shape::Depends => {}
        }
        if hit.count() > MAX_ENUMERATE {
            return Err(Undecided(format!(
                "translation `{}` keeps some orbits and changes others, and the {} orbits it applies to are more than {MAX_ENUMERATE} to try one by one",
                self.rule.translation,
                hit.count()
            )));
        }
        let m = self.matcher.as_mut().expect("matched, so compiled");
        let (mut changed, mut kept) = (RunSet::new(), RunSet::new());
        for v in hit.values() {
            let t = range.text(v);
            if rewrite(m, &self.parts, &t)? == t {
                kept.push(v, v);
            } else {
                changed.push(v, v);
            }
        }
        Ok((changed, kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutions_follow_dotnet() {
        let names = vec![None, None, Some("ext".to_string()), None];
        // .NET numbers the unnamed groups (engine 1, 3) before the named one (engine 2).
        assert_eq!(
            parse_translation("+1425$1${ext}$2$$x$10", &names),
            vec![
                Part::Lit("+1425".into()),
                Part::Group(1),
                Part::Group(2),
                Part::Group(3),
                Part::Lit("$x".into()),
                Part::Group(1),
                Part::Lit("0".into()),
            ]
        );
        assert_eq!(
            parse_translation("$9", &names),
            vec![Part::Lit("$9".into())]
        );
    }

    #[test]
    fn shapes() {
        let s = |p: &str, t: &str| {
            let m = Matcher::new(p, Dialect::DotNet).unwrap();
            shape(&m, &parse_translation(t, &m.group_names()))
        };
        assert_eq!(s(r"^(\*7\d\d)$", "$1"), Shape::Keeps);
        assert_eq!(s(r"^\*(7\d\d)$", "*$1"), Shape::Keeps);
        assert_eq!(s(r"^(?<o>\*7\d\d)$", "${o}"), Shape::Keeps);
        assert_eq!(s(r"^\*7\d\d$", "$0"), Shape::Keeps);
        assert_eq!(s(r"^(\d{4})$", "+1425555$1"), Shape::Changes);
        assert_eq!(s(r"^(\d{4})$", "5$1"), Shape::Depends);
        assert_eq!(s(r"^\*?(7\d\d)$", "*$1"), Shape::Depends);
    }
}
