//! Asterisk's `.conf` files as lines, edited in place: every line the administrator wrote
//! (comments, blank lines, spacing, order) stays as it was, except the few that setup changes.
//!
//! The syntax is that of Asterisk's config parser (main/config.c): `[name]` or
//! `[name](options)` starts a section (a context in extensions.conf); `key = value` and
//! `key => value` set keys; `;` starts a comment unless escaped as `\;`; `;--` (not `;---`)
//! opens a block comment that `--;` closes; `#include`, `#tryinclude` and `#exec` are
//! directives. Keys are compared without regard to case, as `ast_variable_retrieve` does.

use std::sync::LazyLock;

use regex::Regex;

/// What one line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Blank,
    /// A line that is only a comment.
    Comment,
    /// A line inside a `;-- ... --;` block comment: Asterisk never reads it.
    Block,
    /// `[name]` or `[name](!,template)`.
    Header {
        name: String,
        options: Vec<String>,
    },
    /// `key = value` or `key => value`, the value without its comment, `\;` unescaped.
    Key {
        key: String,
        value: String,
    },
    /// `#include file`, `#tryinclude "file"`, `#exec cmd`: the word (lower case) and argument,
    /// without quotes or angle brackets.
    Directive {
        word: String,
        arg: String,
    },
    /// Anything else (Asterisk warns about such lines and skips them).
    Other,
}

/// A section: its header's line and the line after its last (the next header, or the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub options: Vec<String>,
    pub header: usize,
    pub end: usize,
}

impl Section {
    /// Whether the section is a template (`(!)`), which Asterisk never uses by itself.
    pub fn is_template(&self) -> bool {
        self.options.iter().any(|o| o == "!")
    }
}

/// A configuration file, line by line.
#[derive(Debug, Clone)]
pub struct Conf {
    lines: Vec<String>,
    kinds: Vec<Kind>,
    /// The line ending the file uses, so that added lines match it.
    eol: &'static str,
    /// Whether the last line ended with a line ending.
    ends_with_eol: bool,
}

impl Conf {
    pub fn parse(text: &str) -> Conf {
        let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mut c = Conf {
            kinds: Vec::new(),
            lines,
            eol,
            ends_with_eol: text.is_empty() || text.ends_with('\n'),
        };
        c.classify();
        c
    }

    fn classify(&mut self) {
        let mut depth = 0u32;
        self.kinds = self.lines.iter().map(|l| classify(l, &mut depth)).collect();
    }

    /// The text, with the file's own line endings.
    pub fn text(&self) -> String {
        let mut s = self.lines.join(self.eol);
        if self.ends_with_eol && !self.lines.is_empty() {
            s.push_str(self.eol);
        }
        s
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn line(&self, i: usize) -> &str {
        &self.lines[i]
    }

    pub fn kind(&self, i: usize) -> &Kind {
        &self.kinds[i]
    }

    /// Every section, in file order.
    pub fn sections(&self) -> Vec<Section> {
        let mut out: Vec<Section> = Vec::new();
        for (i, k) in self.kinds.iter().enumerate() {
            if let Kind::Header { name, options } = k {
                if let Some(last) = out.last_mut() {
                    last.end = i;
                }
                out.push(Section {
                    name: name.clone(),
                    options: options.clone(),
                    header: i,
                    end: self.lines.len(),
                });
            }
        }
        out
    }

    /// The first section called `name`.
    pub fn section(&self, name: &str) -> Option<Section> {
        self.sections().into_iter().find(|s| s.name == name)
    }

    /// The keys of a section, in order: (line, key, value).
    pub fn keys<'a>(&'a self, s: &Section) -> impl Iterator<Item = (usize, &'a str, &'a str)> {
        (s.header + 1..s.end).filter_map(|i| match &self.kinds[i] {
            Kind::Key { key, value } => Some((i, key.as_str(), value.as_str())),
            _ => None,
        })
    }

    /// The first `key` of a section: its line and value.
    pub fn get<'a>(&'a self, s: &Section, key: &str) -> Option<(usize, &'a str)> {
        self.keys(s)
            .find(|(_, k, _)| k.eq_ignore_ascii_case(key))
            .map(|(i, _, v)| (i, v))
    }

    /// Inserts `line` before line `at`.
    pub fn insert(&mut self, at: usize, line: &str) {
        self.lines.insert(at, line.to_string());
        self.classify();
    }

    /// Adds lines at the end of the file, after a blank line unless the file is empty or ends
    /// with one.
    pub fn append(&mut self, lines: &[String]) {
        if self.lines.last().is_some_and(|l| !l.trim().is_empty()) {
            self.lines.push(String::new());
        }
        self.lines.extend(lines.iter().cloned());
        self.ends_with_eol = true;
        self.classify();
    }

    /// Makes `key` of the first section `section` hold a value `good` accepts, writing `value`
    /// when it does not: into the existing key (its spacing and comment kept), else into the
    /// section's commented-out example of it (`;enabled=yes`), else after the section's last
    /// key. The section is added at the end when the file has none of that name.
    pub fn ensure(&mut self, section: &str, key: &str, good: impl Fn(&str) -> bool, value: &str) {
        let Some(s) = self.section(section) else {
            self.append(&[format!("[{section}]"), format!("{key} = {value}")]);
            return;
        };
        if let Some((i, v)) = self.get(&s, key) {
            if !good(v) {
                self.lines[i] = replace_value(&self.lines[i], value);
                self.classify();
            }
            return;
        }
        let line = format!("{key} = {}", escape(value));
        if let Some(i) = self.commented_example(&s, key) {
            self.lines[i] = line;
            self.classify();
            return;
        }
        let after = self
            .keys(&s)
            .map(|(i, _, _)| i)
            .chain(
                (s.header + 1..s.end).filter(|i| matches!(self.kinds[*i], Kind::Directive { .. })),
            )
            .max()
            .unwrap_or(s.header);
        self.insert(after + 1, &line);
    }

    /// Sets `key` of the first section `section` to exactly `value`.
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        self.ensure(section, key, |v| v == value, value);
    }

    /// The line of a commented-out `key = ...` in the section, before any commented-out section
    /// header (whose examples belong to that other, commented-out section).
    fn commented_example(&self, s: &Section, key: &str) -> Option<usize> {
        let want = Regex::new(&format!(r"(?i)^\s*;\s?{}\s*=", regex::escape(key))).ok()?;
        for i in s.header + 1..s.end {
            if self.kinds[i] != Kind::Comment {
                continue;
            }
            let t = self.lines[i]
                .trim_start()
                .trim_start_matches(';')
                .trim_start();
            if t.starts_with('[') {
                return None;
            }
            if want.is_match(&self.lines[i]) {
                return Some(i);
            }
        }
        None
    }
}

/// Asterisk's `ast_true`: yes, true, y, t, 1, on.
pub fn ast_true(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "yes" | "true" | "y" | "t" | "1" | "on"
    )
}

/// Asterisk's `ast_false`: no, false, n, f, 0, off.
pub fn ast_false(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "no" | "false" | "n" | "f" | "0" | "off"
    )
}

/// Where the comment of `line` starts: the first `;` not escaped as `\;`.
fn comment_at(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    (0..b.len()).find(|&i| b[i] == b';' && (i == 0 || b[i - 1] != b'\\'))
}

static HEADER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\[([^\]]*)\]\s*(?:\(([^)]*)\))?").expect("header regex"));

fn classify(line: &str, depth: &mut u32) -> Kind {
    if *depth > 0 {
        if line.contains("--;") {
            *depth -= 1;
        }
        return Kind::Block;
    }
    let code = match comment_at(line) {
        Some(i) => {
            let rest = &line[i..];
            if rest.starts_with(";--") && !rest.starts_with(";---") && !rest[3..].contains("--;") {
                *depth += 1;
            }
            &line[..i]
        }
        None => line,
    };
    let c = code.trim();
    if c.is_empty() {
        return if line.trim().is_empty() {
            Kind::Blank
        } else {
            Kind::Comment
        };
    }
    if c.starts_with('[') {
        if let Some(m) = HEADER.captures(c) {
            return Kind::Header {
                name: m[1].trim().to_string(),
                options: m.get(2).map_or_else(Vec::new, |o| {
                    o.as_str()
                        .split(',')
                        .map(|x| x.trim().to_string())
                        .collect()
                }),
            };
        }
        return Kind::Other;
    }
    if let Some(d) = c.strip_prefix('#') {
        let (word, arg) = d.split_once(char::is_whitespace).unwrap_or((d, ""));
        let arg = arg.trim();
        let arg = arg
            .strip_prefix('"')
            .and_then(|a| a.strip_suffix('"'))
            .or_else(|| arg.strip_prefix('<').and_then(|a| a.strip_suffix('>')))
            .unwrap_or(arg);
        return Kind::Directive {
            word: word.to_ascii_lowercase(),
            arg: arg.to_string(),
        };
    }
    match c.split_once('=') {
        Some((k, v)) => Kind::Key {
            key: k.trim().to_string(),
            value: v.strip_prefix('>').unwrap_or(v).trim().replace("\\;", ";"),
        },
        None => Kind::Other,
    }
}

/// A value as written in a file: `;` escaped.
fn escape(v: &str) -> String {
    v.replace(';', "\\;")
}

/// `line` (a key line) with its value replaced, the key, separator, spacing and comment kept.
fn replace_value(line: &str, value: &str) -> String {
    let code_end = comment_at(line).unwrap_or(line.len());
    let code = &line[..code_end];
    let Some(eq) = code.find('=') else {
        return line.to_string();
    };
    let mut sep_end = eq + 1;
    if code[sep_end..].starts_with('>') {
        sep_end += 1;
    }
    let end = code.trim_end().len();
    if end <= sep_end {
        // `key =` with no value: the value one space after the separator, the rest kept.
        return format!("{} {}{}", &line[..sep_end], escape(value), &line[sep_end..]);
    }
    let start = sep_end + code[sep_end..].len() - code[sep_end..].trim_start().len();
    format!("{}{}{}", &line[..start], escape(value), &line[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_classified_as_asterisk_reads_them() {
        let c = Conf::parse(
            "[general](+)\nenabled = yes ; on\n;bindport=8088\nkey => a\\;b\n#include \"x.conf\"\n;-- block\nenabled = no\n--;\n;--- rule\nx\n",
        );
        assert_eq!(
            c.kind(0),
            &Kind::Header {
                name: "general".into(),
                options: vec!["+".into()]
            }
        );
        assert_eq!(
            c.kind(1),
            &Kind::Key {
                key: "enabled".into(),
                value: "yes".into()
            }
        );
        assert_eq!(c.kind(2), &Kind::Comment);
        assert_eq!(
            c.kind(3),
            &Kind::Key {
                key: "key".into(),
                value: "a;b".into()
            }
        );
        assert_eq!(
            c.kind(4),
            &Kind::Directive {
                word: "include".into(),
                arg: "x.conf".into()
            }
        );
        assert_eq!(c.kind(6), &Kind::Block);
        assert_eq!(c.kind(7), &Kind::Block);
        // `;---` is a plain comment, not a block.
        assert_eq!(c.kind(8), &Kind::Comment);
        assert_eq!(c.kind(9), &Kind::Other);
    }

    #[test]
    fn the_text_comes_back_unchanged() {
        for t in ["", "a=1", "a=1\n", "[s]\r\na=1\r\n", "\n\n;x\n"] {
            assert_eq!(Conf::parse(t).text(), t);
        }
    }

    #[test]
    fn a_value_is_replaced_with_its_spacing_and_comment_kept() {
        assert_eq!(
            replace_value("enabled = no  ; off", "yes"),
            "enabled = yes  ; off"
        );
        assert_eq!(replace_value("bindport=8088", "8188"), "bindport=8188");
        assert_eq!(replace_value("include => a", "b"), "include => b");
        assert_eq!(replace_value("password =", "x"), "password = x");
        assert_eq!(
            replace_value("password =   ; none", "x"),
            "password = x   ; none"
        );
    }

    #[test]
    fn ensure_keeps_a_good_value_uncomments_an_example_or_adds_after_the_last_key() {
        let mut c = Conf::parse(
            "[general]\nservername=Asterisk\n;\n;enabled=yes\nbindaddr=0.0.0.0\n;bindport=8088\n\n;[example]\n;prefix=x\n[other]\n",
        );
        c.ensure("general", "enabled", ast_true, "yes");
        c.set("general", "bindport", "8188");
        c.set("general", "prefix", "ari");
        c.ensure("general", "servername", |_| true, "no");
        assert_eq!(
            c.text(),
            "[general]\nservername=Asterisk\n;\nenabled = yes\nbindaddr=0.0.0.0\nbindport = 8188\nprefix = ari\n\n;[example]\n;prefix=x\n[other]\n"
        );
    }

    #[test]
    fn a_missing_section_is_added_at_the_end() {
        let mut c = Conf::parse("[general]\nenabled = yes");
        c.set("callpark", "type", "user");
        assert_eq!(
            c.text(),
            "[general]\nenabled = yes\n\n[callpark]\ntype = user\n"
        );
    }

    #[test]
    fn a_commented_example_inside_a_block_comment_is_not_uncommented() {
        let mut c = Conf::parse("[general]\n;--\n;enabled=yes\n--;\nx = 1\n");
        c.set("general", "enabled", "yes");
        assert_eq!(
            c.text(),
            "[general]\n;--\n;enabled=yes\n--;\nx = 1\nenabled = yes\n"
        );
    }
}
