//! The stamp a generated include carries: a digest of what it holds, so that `callpark doctor`
//! can tell whether the include a PBX has loaded is the one the configuration generates now
//! (a stale include parks on orbits the table no longer has, or misses new ones).
//!
//! The stamp is written as `callpark-stamp` followed by 16 hex digits (a space, an `=` or
//! `="` between): in a comment and a `NoOp()` of the Asterisk include, in an attribute of the
//! FreeSWITCH one, since FreeSWITCH drops comments when it loads XML. The digest covers the
//! whole text with the stamps themselves blanked, so a file edited by hand no longer verifies.

use regex::Regex;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// What every stamp starts with.
pub const MARK: &str = "callpark-stamp";

/// What a stamp is written in place of while the text is digested.
const BLANK: &str = "0000000000000000";

static STAMP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"callpark-stamp([ =]"?)([0-9a-f]{16})"#).expect("stamp regex"));

/// The digest of `text` with every stamp in it blanked.
fn digest(text: &str) -> String {
    let blanked = STAMP.replace_all(text, |c: &regex::Captures| {
        format!("{MARK}{}{BLANK}", &c[1])
    });
    let d = Sha256::digest(blanked.as_bytes());
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// `text`, written with [`placeholder`] where its stamps go, with its stamps filled in.
pub fn seal(text: &str) -> String {
    let d = digest(text);
    STAMP
        .replace_all(text, |c: &regex::Captures| format!("{MARK}{}{d}", &c[1]))
        .into_owned()
}

/// What a generator writes where a stamp goes; [`seal`] fills it in.
pub fn placeholder() -> &'static str {
    BLANK
}

/// The first stamp found in `text` (a file, or a PBX's own dump of what it loaded).
pub fn find(text: &str) -> Option<String> {
    STAMP.captures(text).map(|c| c[2].to_string())
}

/// Whether `text` (an include file) still holds exactly what its stamp was made from: false for
/// a file edited by hand since it was generated, or one without a stamp.
pub fn verifies(text: &str) -> bool {
    find(text).is_some_and(|s| STAMP.captures_iter(text).all(|c| c[2] == s) && s == digest(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        format!(
            "; {MARK} {}\n[callpark]\nexten => park,1,NoOp({MARK} {})\n",
            placeholder(),
            placeholder()
        )
    }

    #[test]
    fn a_sealed_text_verifies_and_names_its_stamp_everywhere() {
        let t = seal(&sample());
        let s = find(&t).unwrap();
        assert_ne!(s, BLANK);
        assert_eq!(t.matches(&s).count(), 2);
        assert!(verifies(&t));
    }

    #[test]
    fn an_edit_or_a_different_text_changes_the_stamp() {
        let t = seal(&sample());
        assert!(!verifies(&t.replace("park,1", "park,2")));
        let other = seal(&sample().replace("[callpark]", "[callpark2]"));
        assert_ne!(find(&t), find(&other));
        assert!(!verifies("[callpark]\n"));
    }

    #[test]
    fn an_attribute_stamp_is_read() {
        let t = seal(&format!(
            "<extension name=\"p\" {MARK}=\"{}\">",
            placeholder()
        ));
        assert!(verifies(&t));
        assert_eq!(find(&t).unwrap().len(), 16);
    }
}
