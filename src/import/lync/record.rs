//! One object of a cmdlet's output as named fields, whichever layout it came in, and the
//! decoding and layout detection of a file.

use super::ImportError;

/// One field of a record: its name as the cmdlet wrote it, its value, and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Field {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// One object: its first line and its fields in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub line: usize,
    pub fields: Vec<Field>,
}

impl Record {
    /// The field named `name`, in any case (PowerShell's property names are not case
    /// sensitive). `Some` with an empty value when the field is there but empty: `Export-Csv`
    /// writes a `$null` and an empty string alike.
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The field's value, `None` when it is absent or empty.
    pub fn value(&self, name: &str) -> Option<&Field> {
        self.get(name).filter(|f| !f.value.trim().is_empty())
    }
}

/// The text of a file as Windows PowerShell writes one: UTF-16 little or big endian with its
/// byte order mark (`>` and `Out-File`), else UTF-8 with or without one (`Export-Csv`'s ASCII
/// is UTF-8 too).
pub(super) fn decode(bytes: &[u8], file: &str) -> Result<String, ImportError> {
    let utf16 = |b: &[u8], unit: fn([u8; 2]) -> u16| -> Result<String, ImportError> {
        if b.len() % 2 != 0 {
            return Err(ImportError::Read {
                file: file.to_string(),
                msg: "UTF-16 (by its byte order mark) with an odd number of bytes: the file is cut short".into(),
            });
        }
        let units: Vec<u16> = b.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect();
        String::from_utf16(&units).map_err(|e| ImportError::Read {
            file: file.to_string(),
            msg: format!("not valid UTF-16: {e}"),
        })
    };
    match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        _ => {
            let b = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
            String::from_utf8(b.to_vec()).map_err(|e| ImportError::Read {
                file: file.to_string(),
                msg: format!("neither UTF-8 nor UTF-16 ({e}): export again with `-Encoding UTF8`"),
            })
        }
    }
}

/// Whether `line` is a `Name : value` line of list output.
pub(super) fn is_list_line(line: &str) -> bool {
    let Some((name, _)) = line.split_once(':') else {
        return false;
    };
    let name = name.trim_end_matches(' ');
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads the records of a cmdlet's output: `Export-Csv` (a `#TYPE` line or a quoted header
/// first) or the default list output (`Name : value` lines, a blank line between objects).
pub(super) fn read(text: &str, file: &str) -> Result<Vec<Record>, ImportError> {
    let text = text.trim_start_matches('\u{feff}');
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if first.is_empty() {
        return Err(ImportError::Layout {
            file: file.to_string(),
            line: 1,
            msg: "the file is empty".into(),
        });
    }
    if first.starts_with("#TYPE") || first.starts_with('"') || !is_list_line(first) {
        super::csv::read(text, file)
    } else {
        super::list::read(text, file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_powershell_writes() {
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(
                "Identity : Global\r\n"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        assert_eq!(decode(&le, "f").unwrap(), "Identity : Global\r\n");
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("Identité".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(decode(&be, "f").unwrap(), "Identité");
        assert_eq!(decode(b"\xEF\xBB\xBF\"a\"", "f").unwrap(), "\"a\"");
        assert_eq!(decode(b"plain", "f").unwrap(), "plain");
        // A code page export (`-Encoding Default`) is refused with what to do instead.
        let e = decode(b"Caf\xe9", "x.csv").unwrap_err().to_string();
        assert!(
            e.starts_with("x.csv: ") && e.contains("-Encoding UTF8"),
            "{e}"
        );
        let odd = decode(&[0xFF, 0xFE, 0x41], "x.txt")
            .unwrap_err()
            .to_string();
        assert!(odd.contains("cut short"), "{odd}");
    }

    #[test]
    fn tells_list_lines_from_csv_headers() {
        assert!(is_list_line("Identity           : Redmond CPO 1"));
        assert!(is_list_line("OnTimeoutURI               :"));
        assert!(is_list_line("Identity:Global"));
        assert!(!is_list_line("\"Identity\",\"Priority\""));
        assert!(!is_list_line("Identity,NumberRangeStart,NumberRangeEnd"));
        assert!(!is_list_line("   sip:operator@contoso.com"));
        assert!(!is_list_line(
            "#TYPE Microsoft.Rtc.Management.Voice.Helpers.DisplayCallParkOrbits"
        ));
    }

    #[test]
    fn an_empty_file_is_refused() {
        let e = read("\r\n\r\n", "orbits.txt").unwrap_err().to_string();
        assert_eq!(e, "orbits.txt:1: the file is empty");
    }
}
