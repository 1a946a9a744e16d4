//! Patterns as the DFA engine reads them: each dialect's spelling rewritten into Rust's, parsed,
//! and their groups' names.

use regex_syntax::hir::Hir;

use super::Dialect;

/// Rewrites the dialect's syntax into Rust's where they only differ in spelling.
pub(super) fn to_rust_syntax(p: &str, dialect: Dialect) -> String {
    if dialect == Dialect::Rust {
        return p.to_string();
    }
    let mut out = String::with_capacity(p.len());
    let mut chars = p.chars().peekable();
    let mut in_class = false;
    let mut quote_name = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                // PCRE's `\Q...\E`: everything up to `\E` (or the end) is literal text.
                if n == 'Q' && dialect == Dialect::Pcre {
                    while let Some(q) = chars.next() {
                        if q == '\\' && chars.peek() == Some(&'E') {
                            chars.next();
                            break;
                        }
                        out.push_str(&regex_syntax::escape(q.encode_utf8(&mut [0; 4])));
                    }
                    continue;
                }
                // `\Z` is "end, or before a final newline"; orbits hold no newline.
                if n == 'Z' && !in_class {
                    out.push_str("\\z");
                } else {
                    out.push('\\');
                    out.push(n);
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().unwrap());
                }
                if chars.peek() == Some(&']') {
                    out.push(chars.next().unwrap());
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '(' if !in_class && dialect == Dialect::DotNet => {
                // .NET also spells named groups `(?'name'...)`.
                out.push(c);
                if chars.peek() == Some(&'?') {
                    out.push(chars.next().unwrap());
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                        out.push('<');
                        quote_name = true;
                    }
                }
            }
            '\'' if quote_name => {
                out.push('>');
                quote_name = false;
            }
            _ => out.push(c),
        }
    }
    out
}

pub(super) fn parse_hir(rust: &str) -> Result<Hir, Box<regex_syntax::Error>> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(rust)
        .map_err(Box::new)
}

/// Adds the names of the capture groups in `h` at their indexes.
pub(super) fn collect_names(h: &Hir, names: &mut Vec<Option<String>>) {
    use regex_syntax::hir::HirKind;
    match h.kind() {
        HirKind::Capture(c) => {
            let i = c.index as usize;
            if names.len() <= i {
                names.resize(i + 1, None);
            }
            names[i] = c.name.as_deref().map(String::from);
            collect_names(&c.sub, names);
        }
        HirKind::Concat(v) | HirKind::Alternation(v) => {
            for s in v {
                collect_names(s, names);
            }
        }
        HirKind::Repetition(r) => collect_names(&r.sub, names),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotnet_spellings_become_rust() {
        assert_eq!(
            to_rust_syntax(r"^(?'ext'\d{4})\Z", Dialect::DotNet),
            r"^(?<ext>\d{4})\z"
        );
        assert_eq!(to_rust_syntax(r"[\Z']", Dialect::DotNet), r"[\Z']");
    }
}
