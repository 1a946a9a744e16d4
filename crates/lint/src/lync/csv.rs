//! The CSV of `Get-CsVoiceNormalizationRule | Export-Csv`.

use super::{DEFAULT_PATTERN, DEFAULT_TRANSLATION, LyncRule, split_identity};
use crate::LintError;

pub fn parse_csv(text: &str, file: &str) -> Result<Vec<LyncRule>, LintError> {
    let text = text.trim_start_matches('\u{feff}');
    // Export-Csv writes a `#TYPE ...` line first; skip it but keep line numbers true.
    let skipped = text
        .lines()
        .take_while(|l| l.starts_with('#') || l.trim().is_empty())
        .count();
    let body: String = text.lines().skip(skipped).collect::<Vec<_>>().join("\n");
    // `::csv`: the csv crate, not this module.
    let mut rdr = ::csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(body.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| LintError::parse(file, skipped + 1, e.to_string()))?
        .clone();
    let col = |n: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(n))
    };
    let (identity, priority, pattern, translation, name, parent) = (
        col("Identity"),
        col("Priority"),
        col("Pattern"),
        col("Translation"),
        col("Name"),
        col("Parent"),
    );
    if pattern.is_none() {
        return Err(LintError::parse(
            file,
            skipped + 1,
            "no Pattern column (expected the header of Get-CsVoiceNormalizationRule | Export-Csv)",
        ));
    }
    let mut rules = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let line_guess = skipped + 2 + n;
        let rec = rec.map_err(|e| {
            let line = e
                .position()
                .map(|p| p.line() as usize + skipped)
                .unwrap_or(line_guess);
            LintError::parse(file, line, e.to_string())
        })?;
        let line = rec
            .position()
            .map(|p| p.line() as usize + skipped)
            .unwrap_or(line_guess);
        let field = |c: Option<usize>| c.and_then(|i| rec.get(i)).map(str::to_string);
        let (plan, id_name) = match field(identity) {
            Some(id) if !id.is_empty() => split_identity(&id),
            _ => (
                field(parent).unwrap_or_else(|| "Global".into()),
                String::new(),
            ),
        };
        let name = field(name).filter(|s| !s.is_empty()).unwrap_or(id_name);
        let prio = match field(priority).filter(|s| !s.trim().is_empty()) {
            Some(p) => p.trim().parse::<i64>().map_err(|_| {
                LintError::parse(file, line, format!("Priority `{p}` is not a number"))
            })?,
            None => rules.len() as i64,
        };
        rules.push(LyncRule {
            file: file.to_string(),
            line,
            dial_plan: plan,
            name,
            pattern: field(pattern).unwrap_or_else(|| DEFAULT_PATTERN.into()),
            translation: field(translation).unwrap_or_else(|| DEFAULT_TRANSLATION.into()),
            priority: prio,
            warning: None,
        });
    }
    Ok(rules)
}
