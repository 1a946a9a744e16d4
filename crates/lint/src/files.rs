//! Include directives name files with shell-style globs, in Asterisk (`#include`) and
//! FreeSWITCH (`X-PRE-PROCESS cmd="include"`) alike; both readers expand them here.

use std::path::{Path, PathBuf};

/// Whether file name `s` matches `p`, where `*` is any run of characters and `?` one character.
/// Only the last path component may hold them: that is what include globs use in practice.
pub(crate) fn glob_match(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob_match(&p[1..], s) || (!s.is_empty() && glob_match(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob_match(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob_match(&p[1..], &s[1..]),
        _ => false,
    }
}

/// The files `path` names: when its file name has `*` or `?`, the matching entries of its
/// directory, sorted (so includes are read in a stable order); otherwise `path` itself if it
/// exists. Empty when nothing matches.
pub(crate) fn expand(path: &Path) -> Vec<PathBuf> {
    let pattern = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.contains(['*', '?']));
    let Some(pattern) = pattern else {
        return if path.exists() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        };
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut hits: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|f| {
            f.file_name()
                .is_some_and(|n| glob_match(pattern.as_bytes(), n.to_string_lossy().as_bytes()))
        })
        .collect();
    hits.sort();
    hits
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn stars_and_question_marks() {
        assert!(glob_match(b"*.conf", b"extensions.conf"));
        assert!(glob_match(b"ext?.xml", b"ext1.xml"));
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"ext?.xml", b"ext.xml"));
        assert!(!glob_match(b"*.conf", b"extensions.conf.bak"));
    }
}
