//! Finds the line of a key such as `park.pickup_timeout` or `orbit_range[2].first` in TOML text,
//! so that validation errors point at the line to fix.

use toml_edit::{ImDocument, Item, Table};

pub(crate) fn line_of(text: &str, key: &str) -> Option<usize> {
    let doc = ImDocument::parse(text).ok()?;
    let mut table: &Table = doc.as_table();
    let mut best: Option<usize> = None;
    for seg in key.split('.') {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        let (k, item) = table.get_key_value(name)?;
        best = k.span().map(|s| s.start).or(best);
        match (item, index) {
            (Item::ArrayOfTables(a), Some(i)) => {
                let t = a.get(i)?;
                best = t.span().map(|s| s.start).or(best);
                table = t;
            }
            (Item::Table(t), None) => {
                best = t.span().map(|s| s.start).or(best);
                table = t;
            }
            _ => break,
        }
    }
    best.map(|off| text[..off.min(text.len())].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::line_of;

    const TEXT: &str = "[park]\npickup_timeout = \"5s\"\n\n[[orbit_range]]\nname = \"a\"\nfirst = \"*700\"\n\n[[orbit_range]]\nname = \"b\"\nfirst = \"*800\"\n";

    #[test]
    fn finds_keys_in_tables_and_arrays_of_tables() {
        assert_eq!(line_of(TEXT, "park.pickup_timeout"), Some(2));
        assert_eq!(line_of(TEXT, "orbit_range[1].first"), Some(10));
        assert_eq!(line_of(TEXT, "orbit_range[0].first"), Some(6));
        assert_eq!(line_of(TEXT, "orbit_range[1]"), Some(8));
        assert_eq!(line_of(TEXT, "nothing.here"), None);
    }
}
