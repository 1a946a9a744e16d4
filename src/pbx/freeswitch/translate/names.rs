//! Names and strings FreeSWITCH reads: originate variables, dial strings, endpoints and
//! parkers, orbits spoken.

use crate::orbit::Orbit;
use crate::park::{Parker, Party};
use crate::pbx::freeswitch::model::FsEvent;

/// A value of a `bgapi originate {…}` variable, written so that FreeSWITCH reads back exactly
/// `v` (`Parked 701: O'Brien, Zoë`). The line is taken apart three times (mod_commands splits
/// the arguments at blanks, the originate splits the `{}` block at commas, then each variable at
/// its first `=`), and each pass (switch_separate_string) drops one level of single quotes and
/// backslash escapes: so `\` and `'` are escaped once per pass, `,` for the passes from the
/// comma split on, and the whole is quoted for the blank split. Checked on the real FreeSWITCH
/// (tests/caller_id.rs). What no escape protects is replaced: braces (the `{}` block ends at the
/// first unbalanced `}`, quotes or not) by parentheses, control characters (a line break would
/// end the event-socket command) by spaces.
pub fn originate_value(v: &str) -> String {
    let plain: String = v
        .chars()
        .map(|c| match c {
            '{' => '(',
            '}' => ')',
            c => c,
        })
        .collect();
    let by_equals = fs_escape(&plain, None);
    blank_split_arg(&fs_escape(&by_equals, Some(',')))
}

/// One level of FreeSWITCH's escapes (switch_separate_string): `\` and `'` always, and the
/// pass's delimiter. Control characters, which no escape keeps (a line break would end the
/// event-socket command), become spaces; blanks at the ends go, as each pass trims them.
pub(super) fn fs_escape(s: &str, delim: Option<char>) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.trim().chars() {
        if c == '\\' || c == '\'' || Some(c) == delim {
            out.push('\\');
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// A command argument that may hold blanks: quoted for mod_commands' split at blanks, with one
/// more level of escapes for that pass.
pub(super) fn blank_split_arg(s: &str) -> String {
    format!("'{}'", fs_escape(s, None))
}

/// The orbit spoken digit by digit (`*` and `#` too), as one playback.
pub fn spoken(orbit: Orbit) -> String {
    let files: Vec<String> = orbit
        .to_string()
        .chars()
        .map(|c| match c {
            '*' => "digits/star.wav".to_string(),
            '#' => "digits/pound.wav".to_string(),
            d => format!("digits/{d}.wav"),
        })
        .collect();
    format!("file_string://{}", files.join("!"))
}

/// What a page (park and page) plays once answered: a second for the phone's speaker to open,
/// then the orbit, twice. Callie's sounds have no "call parked on" prompt, and a tone would
/// need a comma, which `originate`'s `&playback(…)` cuts the argument at.
pub fn page_announcement(orbit: Orbit) -> String {
    let digits = spoken(orbit);
    let digits = digits.trim_start_matches("file_string://");
    format!("file_string://silence_stream://1000!{digits}!silence_stream://700!{digits}")
}

/// The parker of a call that dialled the park code (or an orbit) itself: matched against
/// voice policies by its number and endpoint, with no phone to ring back (it is on the line).
pub(super) fn dialled_parker(ev: &FsEvent, caller: &Party, context: &str) -> Parker {
    let name = ev.channel_name.clone().unwrap_or_default();
    let ep = endpoint_of(&name, context);
    let mut ids = vec![caller.number.clone()];
    ids.extend(ep.clone());
    Parker {
        display: ep.unwrap_or_else(|| caller.number.clone()),
        ids,
        endpoint: None,
    }
}

/// A parker from the dial string its ringbacks go to.
pub(super) fn parker_at(endpoint: String) -> Parker {
    let mut ids = vec![endpoint.clone()];
    ids.extend(user_of(&endpoint));
    Parker {
        ids,
        endpoint: Some(endpoint.clone()),
        display: endpoint,
    }
}

/// A dial string that reaches the phone behind a channel name: sofia names are dial strings
/// already (`sofia/internal/alice@127.0.0.1:5270`); a loopback half `loopback/<exten>-a` dials
/// `<exten>` again in the context the call is in.
pub fn endpoint_of(channel_name: &str, context: &str) -> Option<String> {
    if let Some(rest) = channel_name.strip_prefix("loopback/") {
        let exten = rest
            .strip_suffix("-a")
            .or_else(|| rest.strip_suffix("-b"))
            .unwrap_or(rest);
        return Some(format!("loopback/{exten}/{context}"));
    }
    channel_name.contains('/').then(|| channel_name.to_string())
}

/// The user part of a dial string (`sofia/internal/alice@host` -> `alice`,
/// `user/1000@domain` -> `1000`, `loopback/dev-alice/ctx` -> `dev-alice`).
pub fn user_of(endpoint: &str) -> Option<String> {
    let mut parts = endpoint.split('/');
    let tech = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    let who = match tech {
        "sofia" => rest.get(1)?,
        _ => rest.first()?,
    };
    let user = who.split(['@', '%']).next()?;
    (!user.is_empty()).then(|| user.to_string())
}

/// `profile/user@host` of a sofia endpoint, the `to` of a SIP MESSAGE by `chat`: the profile
/// sends it, to the contacts `user@host` registered (the port is the registrar's business).
pub(super) fn sip_user_of(endpoint: &str) -> Option<String> {
    let rest = endpoint.strip_prefix("sofia/")?;
    let (profile, uri) = rest.split_once('/')?;
    let uri = uri.trim_start_matches("sip:");
    // `user%domain`: a registered user of the profile.
    let (user, host) = uri.split_once('@').or_else(|| uri.split_once('%'))?;
    let host = host.split([':', ';']).next()?;
    Some(format!("{profile}/{user}@{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_to_dial_strings() {
        assert_eq!(
            endpoint_of("loopback/dev-alice-a", "callpark-test").as_deref(),
            Some("loopback/dev-alice/callpark-test")
        );
        assert_eq!(
            endpoint_of("sofia/internal/alice@127.0.0.1:5270", "x").as_deref(),
            Some("sofia/internal/alice@127.0.0.1:5270")
        );
        assert_eq!(endpoint_of("nonsense", "x"), None);
        assert_eq!(
            user_of("sofia/internal/alice@127.0.0.1:5270").as_deref(),
            Some("alice")
        );
        assert_eq!(user_of("user/1000@example.com").as_deref(), Some("1000"));
        assert_eq!(
            sip_user_of("sofia/internal/alice@127.0.0.1:5270").as_deref(),
            Some("internal/alice@127.0.0.1")
        );
        assert_eq!(sip_user_of("loopback/x/y"), None);
        assert_eq!(
            sip_user_of("sofia/internal/alice%127.0.0.1").as_deref(),
            Some("internal/alice@127.0.0.1")
        );
        assert_eq!(
            user_of("sofia/internal/alice%127.0.0.1").as_deref(),
            Some("alice")
        );
    }

    #[test]
    fn orbits_are_spoken_digit_by_digit() {
        assert_eq!(
            spoken("*701".parse().unwrap()),
            "file_string://digits/star.wav!digits/7.wav!digits/0.wav!digits/1.wav"
        );
    }
}
