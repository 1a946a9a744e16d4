//! Names and strings ARI reads: channel paths, caller ids, parkers, device segments.

use crate::park::{ChannelId, Parker, Party};
use crate::pbx::asterisk::model::{Channel, endpoint_of};

pub(super) fn path_channel(ch: &ChannelId, rest: &str) -> String {
    format!("/channels/{ch}{rest}")
}

/// The parker of a call that dialled the park code (or an orbit) itself: matched against
/// voice policies by its number and endpoint, with no phone to ring back (it is on the line).
pub(super) fn dialled_parker(ch: &Channel, caller: &Party) -> Parker {
    let ep = endpoint_of(&ch.name);
    let mut ids = vec![caller.number.clone()];
    ids.extend(ep.clone());
    Parker {
        ids,
        endpoint: None,
        display: ep.unwrap_or_else(|| caller.number.clone()),
    }
}

/// The parker named by a transfer variable (a channel name like `PJSIP/alice-00000012`):
/// ringbacks go to its endpoint; policies match the endpoint and its user.
pub(super) fn transferer(channel: &str) -> Parker {
    let ep = endpoint_of(channel).unwrap_or_else(|| channel.to_string());
    let user = ep
        .split_once('/')
        .map(|(_, u)| u.split('@').next().unwrap_or(u).to_string());
    let mut ids = vec![ep.clone()];
    ids.extend(user);
    Parker {
        ids,
        endpoint: Some(ep.clone()),
        display: ep,
    }
}

/// A caller id as ARI's originate `callerId` wants it, `"name" <number>`, written so that
/// Asterisk's parser (`ast_callerid_parse`: the number is what the last `<…>` holds, the name is
/// unquoted and unescaped by `ast_unescape_quoted`) reads back exactly `name`: `"` and `\` in it
/// are escaped. Control characters (nothing a phone could show) become spaces; the number
/// loses what would end it early.
pub fn caller_id_param(p: &Party) -> String {
    let mut name = String::with_capacity(p.name.len() + 2);
    for c in p.name.trim().chars() {
        match c {
            '"' | '\\' => {
                name.push('\\');
                name.push(c);
            }
            c if c.is_control() => name.push(' '),
            c => name.push(c),
        }
    }
    let number: String = p
        .number
        .chars()
        .filter(|c| !matches!(c, '<' | '>' | '"') && !c.is_control())
        .collect();
    format!("\"{name}\" <{number}>")
}

/// What may not stand raw in a device name as a URL path segment (`#` above all): all but
/// ASCII letters, digits and `-._~:*` (Asterisk's device names use `:` and orbits `*`).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'*');

/// Percent-encodes a URL path segment (UTF-8, upper-case hex).
pub(super) fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::encode_segment;

    /// The encoding by hand it replaced: every byte but the kept ones as %XX.
    fn by_hand(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~:*".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    #[test]
    fn segments_encode_as_before_through_latin_extended() {
        for c in (0u32..=0x024F).filter_map(char::from_u32) {
            let s = format!("Custom:park{c}#7*01");
            assert_eq!(encode_segment(&s), by_hand(&s), "{c:?}");
        }
        assert_eq!(encode_segment("Custom:#701"), "Custom:%23701");
    }
}
