//! Asterisk's configuration directory as the doctor reads it: extensions.conf and the files it
//! `#include`s, ari.conf, pjsip.conf, musiconhold.conf, http.conf. The dial plan itself is
//! read by the lint (it knows Asterisk's match order); the other files only need their
//! sections and settings, templates included.

use std::path::{Path, PathBuf};

use crate::lint::asterisk::{self as ast_lint, Dialplan};

/// A file as read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfFile {
    pub path: PathBuf,
    pub text: String,
}

/// What reading one configuration file gave.
#[derive(Debug, Clone)]
pub enum Loaded<T> {
    /// Not there: the check that needs it is skipped, not failed (Asterisk may run elsewhere).
    Absent,
    /// There, but unreadable or not what Asterisk would accept.
    Unreadable(String),
    Read(T),
}

impl<T> Loaded<T> {
    pub fn read(&self) -> Option<&T> {
        match self {
            Loaded::Read(t) => Some(t),
            _ => None,
        }
    }
}

/// One `[section]` of a configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// `[name](!)`: a template, not an object of its own.
    pub template: bool,
    /// `[name](a,b)`: the templates it starts from, in order.
    pub from: Vec<String>,
    /// `key = value` lines in order; a later line of the same key wins.
    pub entries: Vec<(String, String)>,
    pub file: String,
    pub line: usize,
}

/// A configuration file and everything it includes, as sections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conf {
    pub sections: Vec<Section>,
}

/// How deep `#include`s may nest: deeper, a file is taken to include itself.
const MAX_DEPTH: usize = 16;

impl Conf {
    /// One file's text, its `#include` lines left out (tests and files without any).
    pub fn parse_str(text: &str, file: &str) -> Conf {
        let mut c = Conf::default();
        let mut block = false;
        for (n, raw) in text.lines().enumerate() {
            c.line(raw, file, n + 1, &mut block);
        }
        c
    }

    /// Adds one line; returns the file an `#include`/`#tryinclude` line names, if it is one.
    fn line(&mut self, raw: &str, file: &str, line: usize, block: &mut bool) -> Option<String> {
        let text = strip_comment(raw, block);
        let t = text.trim();
        if t.is_empty() {
            return None;
        }
        if let Some(rest) = t
            .strip_prefix("#include")
            .or_else(|| t.strip_prefix("#tryinclude"))
        {
            return Some(
                rest.trim()
                    .trim_matches(|c| c == '"' || c == '<' || c == '>')
                    .to_string(),
            );
        }
        if t.starts_with('#') {
            return None;
        }
        if let Some(rest) = t.strip_prefix('[') {
            let end = rest.find(']').unwrap_or(rest.len());
            let name = rest[..end].trim().to_string();
            let opts: Vec<String> = rest
                .get(end + 1..)
                .unwrap_or("")
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty())
                .collect();
            // `(+)` adds lines to the section of that name read before.
            if opts.iter().any(|o| o == "+") {
                if let Some(i) = self.sections.iter().rposition(|s| s.name == name) {
                    let s = self.sections.remove(i);
                    self.sections.push(s);
                    return None;
                }
            }
            self.sections.push(Section {
                name,
                template: opts.iter().any(|o| o == "!"),
                from: opts.into_iter().filter(|o| o != "!" && o != "+").collect(),
                entries: Vec::new(),
                file: file.to_string(),
                line,
            });
            return None;
        }
        if let Some((k, v)) = t.split_once('=') {
            let v = v.strip_prefix('>').unwrap_or(v);
            if let Some(s) = self.sections.last_mut() {
                s.entries.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        None
    }

    /// The sections named `name` (several for pjsip.conf's `[alice]` aor and endpoint).
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Section> + 'a {
        self.sections.iter().filter(move |s| s.name == name)
    }

    /// The sections that are objects of `kind` (`type = endpoint`), templates left out.
    pub fn objects<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Section> + 'a {
        self.sections
            .iter()
            .filter(move |s| !s.template && self.value(s, "type") == Some(kind))
    }

    /// pjsip.conf's endpoints that phones use: those no `type = identify` names, since an
    /// identified endpoint is a trunk, matched by its address or a header (as `callpark
    /// setup` tells them apart).
    pub fn phone_endpoints(&self) -> Vec<&Section> {
        let trunks: Vec<&str> = self
            .objects("identify")
            .filter_map(|s| self.value(s, "endpoint"))
            .collect();
        self.objects("endpoint")
            .filter(|s| !trunks.contains(&s.name.as_str()))
            .collect()
    }

    /// The value of `key` in `s`: its own last line, else its templates' (the last template
    /// first, since Asterisk copies them in order and a later line wins).
    pub fn value<'a>(&'a self, s: &'a Section, key: &str) -> Option<&'a str> {
        self.value_at(s, key, 0)
    }

    fn value_at<'a>(&'a self, s: &'a Section, key: &str, depth: usize) -> Option<&'a str> {
        if let Some((_, v)) = s
            .entries
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
        {
            return Some(v);
        }
        if depth >= MAX_DEPTH {
            return None;
        }
        s.from.iter().rev().find_map(|t| {
            let tmpl = self.sections.iter().rev().find(|x| &x.name == t)?;
            self.value_at(tmpl, key, depth + 1)
        })
    }
}

/// A line without its comment: `;` to the end of the line (`\;` is a semicolon), and
/// `;-- ... --;` blocks, which may span lines.
fn strip_comment(line: &str, block: &mut bool) -> String {
    let mut out = String::new();
    let mut rest = line;
    loop {
        if *block {
            match rest.find("--;") {
                Some(i) => {
                    *block = false;
                    rest = &rest[i + 3..];
                }
                None => return out,
            }
        }
        let Some(i) = rest.find(';') else {
            out.push_str(rest);
            return out;
        };
        if rest[..i].ends_with('\\') {
            out.push_str(&rest[..i - 1]);
            out.push(';');
            rest = &rest[i + 1..];
        } else if rest[i..].starts_with(";--") {
            out.push_str(&rest[..i]);
            *block = true;
            rest = &rest[i + 3..];
        } else {
            out.push_str(&rest[..i]);
            return out;
        }
    }
}

/// Whether Asterisk's `ast_true` takes `v` as on.
pub fn ast_true(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "yes" | "true" | "y" | "t" | "1" | "on"
    )
}

/// Reads `name` under `etc` and what it includes.
pub fn read_conf(etc: &Path, name: &str) -> Loaded<(Vec<ConfFile>, Conf)> {
    let top = etc.join(name);
    if !top.is_file() {
        return Loaded::Absent;
    }
    let mut files = Vec::new();
    let mut conf = Conf::default();
    match walk(etc, &top, 0, &mut files, &mut conf) {
        Ok(()) => Loaded::Read((files, conf)),
        Err(e) => Loaded::Unreadable(e),
    }
}

fn walk(
    etc: &Path,
    path: &Path,
    depth: usize,
    files: &mut Vec<ConfFile>,
    conf: &mut Conf,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "{}: #include nests deeper than {MAX_DEPTH} files (does a file include itself?)",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let shown = path.display().to_string();
    files.push(ConfFile {
        path: path.to_path_buf(),
        text: text.clone(),
    });
    let mut block = false;
    for (n, raw) in text.lines().enumerate() {
        if let Some(spec) = conf.line(raw, &shown, n + 1, &mut block) {
            // Asterisk reads a relative name in its configuration directory, whichever file
            // holds the #include; a glob takes every match, and no match is no error.
            let p = Path::new(&spec);
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                etc.join(p)
            };
            for f in expand(&p) {
                walk(etc, &f, depth + 1, files, conf)?;
            }
        }
    }
    Ok(())
}

/// The files a name of an `#include` stands for: itself when it exists, or the matches of a
/// `*`/`?` glob in its last component, sorted.
fn expand(p: &Path) -> Vec<PathBuf> {
    let Some(name) = p.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return if p.is_file() {
            vec![p.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let dir = p.parent().unwrap_or(Path::new("."));
    let mut hits: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|f| {
            f.is_file()
                && f.file_name()
                    .is_some_and(|n| glob(name.as_bytes(), n.to_string_lossy().as_bytes()))
        })
        .collect();
    hits.sort();
    hits
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && glob(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// What the doctor read under Asterisk's configuration directory.
#[derive(Debug, Clone)]
pub struct Etc {
    pub dir: PathBuf,
    /// Whether the directory is there at all (the doctor may run on another machine).
    pub present: bool,
    /// extensions.conf and every file it includes, in the order Asterisk reads them.
    pub dialplan_files: Vec<ConfFile>,
    /// The dial plan as the lint reads it.
    pub dialplan: Loaded<Dialplan>,
    /// `callpark.conf` of the directory, when extensions.conf does not include it.
    pub loose_include: Option<ConfFile>,
    pub ari: Loaded<Conf>,
    pub pjsip: Loaded<Conf>,
    pub moh: Loaded<Conf>,
    pub http: Loaded<Conf>,
}

impl Etc {
    /// Where `name` is under the directory, as the checks name it.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// Reads everything the checks need under `dir`; what is missing or broken is said, never
/// raised.
pub fn read(dir: &Path) -> Etc {
    let conf = |name: &str| match read_conf(dir, name) {
        Loaded::Absent => Loaded::Absent,
        Loaded::Unreadable(e) => Loaded::Unreadable(e),
        Loaded::Read((_, c)) => Loaded::Read(c),
    };
    let (dialplan_files, dialplan) = match read_conf(dir, "extensions.conf") {
        Loaded::Absent => (Vec::new(), Loaded::Absent),
        Loaded::Unreadable(e) => (Vec::new(), Loaded::Unreadable(e)),
        Loaded::Read((files, _)) => {
            let dp = match ast_lint::load(&dir.join("extensions.conf")) {
                Ok(d) => Loaded::Read(d),
                Err(e) => Loaded::Unreadable(e.to_string()),
            };
            (files, dp)
        }
    };
    let loose = dir.join("callpark.conf");
    let loose_include = (!dialplan_files.iter().any(|f| same_file(&f.path, &loose)))
        .then(|| std::fs::read_to_string(&loose).ok())
        .flatten()
        .map(|text| ConfFile { path: loose, text });
    Etc {
        dir: dir.to_path_buf(),
        present: dir.is_dir(),
        dialplan_files,
        dialplan,
        loose_include,
        ari: conf("ari.conf"),
        pjsip: conf("pjsip.conf"),
        moh: conf("musiconhold.conf"),
        http: conf("http.conf"),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_comments_as_asterisk_reads_them() {
        let c = Conf::parse_str(
            "[phone](!)\ntype = endpoint\nsend_pai = yes ; caller id\ncontext => from-internal\n\
             [alice](phone)\ncontext = office\n;-- a block\nsend_pai = no\n--; allow = ulaw\n\
             [x]\npassword = a\\;b\n",
            "pjsip.conf",
        );
        let alice = c.named("alice").next().unwrap();
        assert_eq!(c.value(alice, "type"), Some("endpoint"));
        assert_eq!(c.value(alice, "context"), Some("office"));
        assert_eq!(c.value(alice, "send_pai"), Some("yes"));
        assert_eq!(c.value(alice, "allow"), Some("ulaw"));
        assert!(c.named("phone").next().unwrap().template);
        let x = c.named("x").next().unwrap();
        assert_eq!(c.value(x, "password"), Some("a;b"));
    }

    #[test]
    fn include_globs() {
        assert!(glob(b"*.conf", b"callpark.conf"));
        assert!(glob(b"callpark-?.conf", b"callpark-a.conf"));
        assert!(!glob(b"*.conf", b"callpark.conf.bak"));
    }
}
