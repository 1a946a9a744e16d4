//! The list layout: what the cmdlets print by default (their objects have more properties
//! than a table shows) and what `Format-List` prints. Blank lines before, between and after
//! the objects; in each, one `Name : value` line per property, names padded to the longest;
//! a value longer than the console goes on in the next lines, indented to the value's column.

use super::ImportError;
use super::record::{Field, Record, is_list_line};

pub(super) fn read(text: &str, file: &str) -> Result<Vec<Record>, ImportError> {
    let mut records = Vec::new();
    let mut current: Option<Record> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim_end();
        if l.trim().is_empty() {
            records.extend(current.take());
            continue;
        }
        if is_list_line(l) {
            let (name, value) = l.split_once(':').expect("a list line has a colon");
            let field = Field {
                name: name.trim_end().to_string(),
                value: value.strip_prefix(' ').unwrap_or(value).to_string(),
                line,
            };
            current
                .get_or_insert_with(|| Record {
                    line,
                    fields: Vec::new(),
                })
                .fields
                .push(field);
            continue;
        }
        // An indented line carries on the value above it, cut where the console ended.
        match current.as_mut().and_then(|r| r.fields.last_mut()) {
            Some(f) if raw.starts_with(' ') => f.value.push_str(l.trim_start()),
            _ => {
                return Err(ImportError::Layout {
                    file: file.to_string(),
                    line,
                    msg: format!(
                        "`{}` is not a `Name : value` line of the cmdlet's list output",
                        l.trim()
                    ),
                });
            }
        }
    }
    records.extend(current);
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPS: &str = "\r\n\r\n\
        Identity                   : Global\r\n\
        CallPickupTimeoutThreshold : 00:01:30\r\n\
        EnableMusicOnHold          : True\r\n\
        MaxCallPickupAttempts      : 1\r\n\
        OnTimeoutURI               : \r\n\
        MusicOnHoldAudioContentId  : \r\n\
        \r\n\
        Identity                   : Site:Redmond\r\n\
        CallPickupTimeoutThreshold : 00:00:45\r\n\
        EnableMusicOnHold          : False\r\n\
        MaxCallPickupAttempts      : 2\r\n\
        OnTimeoutURI               : sip:reception-response-group-with-a-long-na\r\n\
        \x20                            me@contoso.com\r\n\
        MusicOnHoldAudioContentId  : \r\n\
        \r\n\r\n\r\n";

    #[test]
    fn reads_objects_between_blank_lines() {
        let r = read(CPS, "cps.txt").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].line, r[1].line), (3, 10));
        assert_eq!(r[0].get("Identity").unwrap().value, "Global");
        assert_eq!(r[0].get("OnTimeoutURI").unwrap().value, "");
        let t = r[1].get("CallPickupTimeoutThreshold").unwrap();
        assert_eq!((t.value.as_str(), t.line), ("00:00:45", 11));
    }

    #[test]
    fn a_value_wrapped_at_the_console_width_is_joined() {
        let r = read(CPS, "cps.txt").unwrap();
        let uri = r[1].get("OnTimeoutURI").unwrap();
        assert_eq!(
            uri.value,
            "sip:reception-response-group-with-a-long-name@contoso.com"
        );
        assert_eq!(uri.line, 14);
    }

    #[test]
    fn a_line_of_something_else_is_refused_with_its_number() {
        let e = read("Identity : Global\r\nthis is not it\r\n", "v.txt")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "v.txt:2: `this is not it` is not a `Name : value` line of the cmdlet's list output"
        );
    }
}
