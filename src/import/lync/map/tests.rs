use super::*;

#[test]
fn lot_names_are_lot_names_and_unique() {
    assert_eq!(lot_name("pool02", &[]), "pool02");
    assert_eq!(lot_name("pool02.contoso.com", &[]), "pool02-contoso-com");
    assert_eq!(lot_name("teams-Sales Policy", &[]), "teams-sales-policy");
    assert_eq!(lot_name("general", &[]), "lot-general");
    assert_eq!(lot_name("a", &["a".into(), "a-2".into()]), "a-3");
}

#[test]
fn teams_ranges_split_by_length() {
    let s: Vec<String> = spans_by_length(10, 99)
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(s, ["10-99"]);
    let s: Vec<String> = spans_by_length(500, 1500)
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(s, ["500-999", "1000-1500"]);
    let s: Vec<String> = spans_by_length(10, 9999)
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(s, ["10-99", "100-999", "1000-9999"]);
}
