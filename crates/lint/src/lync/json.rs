//! JSON: `ConvertTo-Json` of the rules, or of dial plans with their `NormalizationRules`.

use super::{DEFAULT_PATTERN, DEFAULT_TRANSLATION, LyncRule, split_identity};
use crate::LintError;

fn jget<'a>(o: &'a serde_json::Value, k: &str) -> Option<&'a serde_json::Value> {
    o.as_object()?
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(k))
        .map(|(_, v)| v)
}

fn jstr(o: &serde_json::Value, k: &str) -> Option<String> {
    match jget(o, k)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Line of each `"Pattern":` key, in document order: the line a JSON rule is reported at.
fn pattern_key_lines(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let low = l.to_ascii_lowercase();
        let mut from = 0;
        while let Some(p) = low[from..].find("\"pattern\"") {
            let rest = low[from + p + 9..].trim_start();
            if rest.starts_with(':') {
                out.push(i + 1);
            }
            from += p + 9;
        }
    }
    out
}

pub fn parse_json(text: &str, file: &str) -> Result<Vec<LyncRule>, LintError> {
    let v: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| LintError::parse(file, e.line(), e.to_string()))?;
    let lines = pattern_key_lines(text);
    let mut rules = Vec::new();
    let items: Vec<&serde_json::Value> = match &v {
        serde_json::Value::Array(a) => a.iter().collect(),
        o => vec![o],
    };
    let mut add = |r: &serde_json::Value, plan_hint: Option<&str>, index: usize| {
        let (plan, id_name) = match jstr(r, "Identity") {
            Some(id) => split_identity(&id),
            None => (
                plan_hint
                    .map(str::to_string)
                    .or_else(|| jstr(r, "Parent"))
                    .unwrap_or_else(|| "Global".into()),
                String::new(),
            ),
        };
        let plan = match plan_hint {
            Some(h) if jstr(r, "Identity").is_none() => h.to_string(),
            _ => plan,
        };
        let line = lines.get(rules.len()).copied().unwrap_or(1);
        let priority = jget(r, "Priority")
            .and_then(|p| p.as_i64())
            .unwrap_or(index as i64);
        rules.push(LyncRule {
            file: file.to_string(),
            line,
            dial_plan: plan,
            name: jstr(r, "Name").unwrap_or(id_name),
            pattern: jstr(r, "Pattern").unwrap_or_else(|| DEFAULT_PATTERN.into()),
            translation: jstr(r, "Translation").unwrap_or_else(|| DEFAULT_TRANSLATION.into()),
            priority,
            warning: None,
        });
    };
    for (i, item) in items.iter().enumerate() {
        if !item.is_object() {
            return Err(LintError::parse(
                file,
                1,
                "expected rule or dial plan objects",
            ));
        }
        if let Some(list) = jget(item, "NormalizationRules").and_then(|l| l.as_array()) {
            let plan = jstr(item, "Identity").unwrap_or_else(|| "Global".into());
            for (j, r) in list.iter().enumerate() {
                add(r, Some(&plan), j);
            }
        } else {
            add(item, None, i);
        }
    }
    Ok(rules)
}
