//! The `Export-Csv` layout: a `#TYPE <class>` line unless `-NoTypeInformation` was given, a
//! header of the property names, one line per object, every value quoted (a `$null` left
//! empty), CRLF line ends.

use super::ImportError;
use super::record::{Field, Record};

pub(super) fn read(text: &str, file: &str) -> Result<Vec<Record>, ImportError> {
    // The `#TYPE` line (and blank lines before the header) are skipped, counted so that every
    // line number given stays the file's own.
    let skipped = text
        .lines()
        .take_while(|l| l.starts_with('#') || l.trim().is_empty())
        .count();
    let body: String = text.lines().skip(skipped).collect::<Vec<_>>().join("\n");
    let bad = |line: usize, msg: String| ImportError::Layout {
        file: file.to_string(),
        line,
        msg,
    };
    // `::csv`: the crate, not this module.
    let mut rdr = ::csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(body.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| bad(skipped + 1, e.to_string()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut records = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e
                .position()
                .map_or(skipped + 1, |p| p.line() as usize + skipped);
            bad(line, format!("not a line of Export-Csv: {e}"))
        })?;
        let line = rec
            .position()
            .map_or(skipped + 2 + records.len(), |p| p.line() as usize + skipped);
        if rec.iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        if rec.len() > headers.len() {
            return Err(bad(
                line,
                format!(
                    "{} values for {} columns of the header: is this the file the cmdlet wrote?",
                    rec.len(),
                    headers.len()
                ),
            ));
        }
        let fields = headers
            .iter()
            .zip(rec.iter())
            .map(|(name, value)| Field {
                name: name.clone(),
                value: value.to_string(),
                line,
            })
            .collect();
        records.push(Record { line, fields });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORBITS: &str = "#TYPE Microsoft.Rtc.Management.Voice.Helpers.DisplayCallParkOrbits\r\n\
        \"Identity\",\"NumberRangeStart\",\"NumberRangeEnd\",\"CallParkServiceId\",\"CallParkServerFqdn\",\"Type\"\r\n\
        \"Redmond CPO 1\",\"7000\",\"7099\",\"ApplicationServer:pool01.contoso.com\",\"pool01.contoso.com\",\"CallPark\"\r\n\
        \"Say \"\"hi\"\"\",\"*1000\",\"*1999\",,,\"CallPark\"\r\n";

    #[test]
    fn reads_fields_by_header_with_the_files_line_numbers() {
        let r = read(ORBITS, "orbits.csv").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].line, 3);
        assert_eq!(r[0].get("identity").unwrap().value, "Redmond CPO 1");
        assert_eq!(
            r[0].get("CallParkServerFqdn").unwrap().value,
            "pool01.contoso.com"
        );
        assert_eq!(r[1].line, 4);
        // Doubled quotes are one quote; a `$null` (nothing between the commas) is empty.
        assert_eq!(r[1].get("Identity").unwrap().value, "Say \"hi\"");
        assert_eq!(r[1].get("CallParkServiceId").unwrap().value, "");
        assert!(r[1].value("CallParkServiceId").is_none());
    }

    #[test]
    fn without_type_information_the_header_is_line_one() {
        let r = read(
            "\"Identity\",\"EnableCallPark\"\r\n\"Global\",\"False\"\r\n",
            "v.csv",
        )
        .unwrap();
        assert_eq!((r[0].line, r[0].fields[0].line), (2, 2));
    }

    #[test]
    fn a_line_with_more_values_than_columns_is_refused() {
        let e = read("\"Identity\"\r\n\"Global\",\"x\"\r\n", "v.csv")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("v.csv:2: 2 values for 1 columns"), "{e}");
    }
}
