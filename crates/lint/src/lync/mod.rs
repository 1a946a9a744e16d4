//! Lync / Skype for Business / Teams voice normalization rules.
//!
//! Read from the forms administrators have: PowerShell (`New-`, `Set-`, `Remove-
//! CsVoiceNormalizationRule` lines, as exported scripts hold them), the CSV of
//! `Get-CsVoiceNormalizationRule | Export-Csv`, and JSON (`ConvertTo-Json` of the rules, or of
//! dial plans with `NormalizationRules`). Rules of one dial plan apply in priority order and the
//! first whose pattern matches wins; it catches an orbit when its translation changes it.
//!
//! The translation is applied as `Regex.Replace` does: each match of the pattern is replaced by
//! the expanded translation, so the orbit is untouched exactly when every replacement equals
//! the text it replaces.

mod check;
mod csv;
mod json;
mod ps1;
mod rewrite;

pub use self::check::check;
pub use self::csv::parse_csv;
pub use self::json::parse_json;
pub use self::ps1::parse_ps1;
pub use self::rewrite::{Compiled, Part, Shape, rewrite, shape};

use crate::LintError;

/// Lync's defaults when a rule gives no `-Pattern` / `-Translation`.
const DEFAULT_PATTERN: &str = r"^(\d{11})$";
const DEFAULT_TRANSLATION: &str = "+$1";

/// One normalization rule as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LyncRule {
    pub file: String,
    pub line: usize,
    /// The dial plan (`Global`, `Site:Redmond`, `Tag:RedmondUsers`, `Service:Registrar:pool`).
    pub dial_plan: String,
    pub name: String,
    pub pattern: String,
    pub translation: String,
    /// Position in the dial plan, 0 first, once the file is read.
    pub priority: i64,
    /// Something about how the rule was written that changes what Lync gets.
    pub warning: Option<String>,
}

/// Reads rules from `text`; the form is told by the file name, else by the content.
pub fn parse(text: &str, file: &str) -> Result<Vec<LyncRule>, LintError> {
    let lower = file.to_ascii_lowercase();
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let first = trimmed
        .lines()
        .find(|l| !l.starts_with("#TYPE"))
        .unwrap_or("")
        .to_ascii_lowercase();
    let rules = if lower.ends_with(".json") || trimmed.starts_with('[') || trimmed.starts_with('{')
    {
        parse_json(text, file)?
    } else if lower.ends_with(".csv")
        || trimmed.starts_with("#TYPE")
        || (first.contains("pattern") && first.contains(',') && !first.contains("-pattern"))
    {
        parse_csv(text, file)?
    } else {
        parse_ps1(text, file)?
    };
    // A file that yields no rule is almost surely the wrong file or form: say so.
    if rules.is_empty()
        && !text
            .to_ascii_lowercase()
            .contains("remove-csvoicenormalizationrule")
    {
        return Err(LintError::parse(
            file,
            1,
            "no normalization rule found (expected New-CsVoiceNormalizationRule lines, an Export-Csv file or JSON)",
        ));
    }
    Ok(rules)
}

/// Rules grouped by dial plan, each plan in the order the rules apply.
pub fn dial_plans(rules: &[LyncRule]) -> Vec<(String, Vec<&LyncRule>)> {
    let mut plans: Vec<(String, Vec<&LyncRule>)> = Vec::new();
    for r in rules {
        match plans
            .iter_mut()
            .find(|(p, _)| p.eq_ignore_ascii_case(&r.dial_plan))
        {
            Some((_, v)) => v.push(r),
            None => plans.push((r.dial_plan.clone(), vec![r])),
        }
    }
    for (_, v) in &mut plans {
        // Stable: rules of equal priority keep file order.
        v.sort_by_key(|r| r.priority);
    }
    plans
}

/// Splits `Site:Redmond/Rule name` into dial plan and rule name.
fn split_identity(id: &str) -> (String, String) {
    match id.rsplit_once('/') {
        Some((plan, name)) => (plan.to_string(), name.to_string()),
        None => ("Global".to_string(), id.to_string()),
    }
}
