//! FreeSWITCH's XML files, edited as text: a context's opening tag, the preprocessor's include
//! lines, a `<param>`'s value. Not parsed into a tree and written back, so that everything
//! else (comments, spacing, attribute order) stays as the administrator wrote it.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// The spans of `<!-- ... -->` comments (an unclosed one runs to the end).
pub fn comments(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(s) = text[at..].find("<!--") {
        let start = at + s;
        let end = text[start + 4..]
            .find("-->")
            .map_or(text.len(), |e| start + 4 + e + 3);
        out.push(start..end);
        at = end;
    }
    out
}

fn in_comment(comments: &[Range<usize>], at: usize) -> bool {
    comments.iter().any(|c| c.contains(&at))
}

static TAG_ATTR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"([A-Za-z_][\w.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')"#).expect("attribute regex")
});

/// The attributes of a tag's text: name, value (entities decoded) and the value's span in
/// the tag.
fn attributes(tag: &str) -> Vec<(String, String, Range<usize>)> {
    TAG_ATTR
        .captures_iter(tag)
        .map(|c| {
            let v = c
                .get(2)
                .or_else(|| c.get(3))
                .expect("one of the two groups");
            (c[1].to_string(), unescape(v.as_str()), v.range())
        })
        .collect()
}

/// Every `<NAME ...>` tag outside comments: its span in `text`.
fn tags(text: &str, name: &str) -> Vec<Range<usize>> {
    let cs = comments(text);
    let re = Regex::new(&format!(r"<{}\b[^>]*>", regex::escape(name))).expect("tag regex");
    re.find_iter(text)
        .filter(|m| !in_comment(&cs, m.start()))
        .map(|m| m.range())
        .collect()
}

/// Where `<context name="NAME">` is in a dialplan file: its opening tag and, when there is
/// one, the start of its `</context>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextAt {
    pub open: Range<usize>,
    pub close: usize,
}

pub fn find_context(text: &str, name: &str) -> Option<ContextAt> {
    let open = tags(text, "context").into_iter().find(|t| {
        attributes(&text[t.clone()])
            .iter()
            .any(|(k, v, _)| k == "name" && v == name)
    })?;
    let close = text[open.end..]
        .find("</context")
        .map_or(text.len(), |c| open.end + c);
    Some(ContextAt { open, close })
}

static INCLUDE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)<X-PRE-PROCESS\s+cmd\s*=\s*"include"\s+data\s*=\s*"([^"]*)""#)
        .expect("include regex")
});

/// The `data` of every preprocessor include between `from` and `to`. Comments are not
/// skipped: FreeSWITCH's preprocessor reads the file line by line before any XML parsing
/// and runs an include it finds inside `<!-- -->` just the same.
pub fn includes(text: &str, from: usize, to: usize) -> Vec<String> {
    INCLUDE
        .captures_iter(&text[from..to])
        .map(|c| c[1].to_string())
        .collect()
}

/// `text` with `line` as the first line inside the context whose opening tag is `ctx`: on a
/// line of its own (the preprocessor only runs a tag that starts its line's processing), one
/// step deeper than the tag.
pub fn insert_first(text: &str, ctx: &ContextAt, line: &str) -> String {
    let tag_line_start = text[..ctx.open.start].rfind('\n').map_or(0, |i| i + 1);
    let indent: String = text[tag_line_start..ctx.open.start]
        .chars()
        .take_while(|c| c.is_whitespace())
        .collect();
    let deeper = format!("{indent}  {line}");
    let rest = &text[ctx.open.end..];
    let eol_at = rest.find('\n');
    match eol_at {
        // Only spaces after the tag: the new line goes after it.
        Some(e) if rest[..e].trim().is_empty() => {
            let at = ctx.open.end + e + 1;
            format!("{}{deeper}\n{}", &text[..at], &text[at..])
        }
        // More on the tag's line (or no line end at all): break the line after the tag.
        _ => format!(
            "{}\n{deeper}\n{indent}  {}",
            &text[..ctx.open.end],
            rest.trim_start()
        ),
    }
}

/// The value of the first `<param name="NAME" value="..."/>` outside comments.
pub fn param(text: &str, name: &str) -> Option<String> {
    param_at(text, name).map(|(_, v)| v)
}

/// The value's span in `text` and the value itself.
fn param_at(text: &str, name: &str) -> Option<(Range<usize>, String)> {
    for t in tags(text, "param") {
        let attrs = attributes(&text[t.clone()]);
        if !attrs.iter().any(|(k, v, _)| k == "name" && v == name) {
            continue;
        }
        if let Some((_, v, r)) = attrs.into_iter().find(|(k, _, _)| k == "value") {
            return Some((t.start + r.start..t.start + r.end, v));
        }
    }
    None
}

/// `text` with the param `name` set to `value`: its value replaced where it is, else a new
/// `<param>` after the last one of `<settings>` (or first in it).
pub fn set_param(text: &str, name: &str, value: &str) -> Option<String> {
    if let Some((r, _)) = param_at(text, name) {
        return Some(format!(
            "{}{}{}",
            &text[..r.start],
            escape(value),
            &text[r.end..]
        ));
    }
    let line = format!("<param name=\"{name}\" value=\"{}\"/>", escape(value));
    let settings = tags(text, "settings").into_iter().next()?;
    let close = text[settings.end..].find("</settings")? + settings.end;
    let last = tags(&text[..close], "param")
        .into_iter()
        .rfind(|t| t.start > settings.end);
    let ctx = ContextAt {
        open: last.clone().unwrap_or(settings),
        close,
    };
    // After the last param, at its depth; or first inside <settings>, one deeper.
    let text_after = if last.is_some() {
        let line_start = text[..ctx.open.start].rfind('\n').map_or(0, |i| i + 1);
        let indent: String = text[line_start..ctx.open.start]
            .chars()
            .take_while(|c| c.is_whitespace())
            .collect();
        let at = text[ctx.open.end..]
            .find('\n')
            .map_or(text.len(), |e| ctx.open.end + e + 1);
        format!("{}{indent}{line}\n{}", &text[..at], &text[at..])
    } else {
        insert_first(text, &ctx, &line)
    };
    Some(text_after)
}

/// An attribute value as XML needs it.
pub fn escape(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An attribute value as written, entities decoded.
pub fn unescape(v: &str) -> String {
    v.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ES: &str = "<configuration name=\"event_socket.conf\">\n  <settings>\n    <param name=\"listen-ip\" value=\"::\"/>\n    <!--<param name=\"password\" value=\"old\"/>-->\n    <param name=\"password\" value=\"ClueCon\"/>\n  </settings>\n</configuration>\n";

    #[test]
    fn a_param_in_a_comment_is_not_the_param() {
        assert_eq!(param(ES, "password").as_deref(), Some("ClueCon"));
        let t = set_param(ES, "password", "a&b").unwrap();
        assert!(
            t.contains("<param name=\"password\" value=\"a&amp;b\"/>"),
            "{t}"
        );
        assert!(t.contains("value=\"old\""), "{t}");
        assert_eq!(param(&t, "password").as_deref(), Some("a&b"));
    }

    #[test]
    fn a_missing_param_goes_after_the_last_one() {
        let t = set_param(ES, "listen-port", "8021").unwrap();
        assert!(
            t.contains("value=\"ClueCon\"/>\n    <param name=\"listen-port\" value=\"8021\"/>\n  </settings>"),
            "{t}"
        );
        let bare = "<configuration>\n  <settings>\n  </settings>\n</configuration>\n";
        let t = set_param(bare, "password", "x").unwrap();
        assert_eq!(
            t,
            "<configuration>\n  <settings>\n    <param name=\"password\" value=\"x\"/>\n  </settings>\n</configuration>\n"
        );
        assert_eq!(set_param("<x/>", "password", "x"), None);
    }

    #[test]
    fn the_include_goes_first_in_its_context_on_a_line_of_its_own() {
        let dp = "<include>\n  <!-- <context name=\"default\"> -->\n  <context name=\"default\">\n    <extension name=\"a\"/>\n  </context>\n</include>\n";
        let c = find_context(dp, "default").unwrap();
        assert_eq!(&dp[c.open.clone()], "<context name=\"default\">");
        let t = insert_first(dp, &c, "<X/>");
        assert!(
            t.contains("<context name=\"default\">\n    <X/>\n    <extension"),
            "{t}"
        );
        let one = "<context name='p'><extension name=\"a\"/></context>";
        let c = find_context(one, "p").unwrap();
        assert_eq!(
            insert_first(one, &c, "<X/>"),
            "<context name='p'>\n  <X/>\n  <extension name=\"a\"/></context>"
        );
        assert_eq!(find_context(dp, "public"), None);
    }
}
