//! `cargo bench --bench lint`: the lint's engine on large inputs.
//!
//! (a) 10,000 Lync rules (50 dial plans of 200 rules written like real ones) against 100 orbit
//!     ranges, parsing included; target under 1 s.
//! (b) one rule against a 10^9-number range and against a 100-number range: the same time.
//! (c) the automaton against naive enumeration (format each number, run the regex) on a range
//!     of 10^6 orbits; the ratio is printed; target at least 100x.
//! (d) the largest real dial plans in the tests, read and checked from their files: FusionPBX's
//!     as it serves it (tests/data/lint/fusionpbx, 63 extensions) with five orbit ranges, and
//!     FreePBX's extensions.conf (tests/data/lint/freepbx) from [from-internal]; target under
//!     50 ms each.

use std::hint::black_box;
use std::time::{Duration, Instant};

use callpark::lint::automaton::{Dialect, Matcher, NumRange};
use callpark::lint::{Report, Target, lync};
use criterion::{Criterion, criterion_group, criterion_main};

/// 50 site dial plans of 200 rules each, as PowerShell.
fn rules_ps1() -> String {
    let mut s = String::new();
    for site in 0..50 {
        let plan = format!("Site:S{site:02}");
        let cc = 1200 + site;
        for k in 0..200 {
            let (pat, tr) = match k % 10 {
                0 => (
                    format!(r"^8{:02}(\d{{4}})$", k % 100),
                    format!("+{cc}555$1"),
                ),
                1 => (format!(r"^9{:02}(\d{{5}})$", k % 100), format!("+{cc}7$1")),
                2 => (format!(r"^({}\d{{3}})$", 2 + k % 8), format!("+{cc}555$1")),
                3 => (format!(r"^(6{}\d{{4}})$", k % 10), format!("+{cc}70$1")),
                4 => (r"^011(\d{7,15})$".to_string(), "+$1".to_string()),
                5 => (format!(r"^1?({}\d{{9}})$", 2 + k % 8), "+1$1".to_string()),
                6 => (format!(r"^#{}(\d{{2}})$", k % 10), format!("+{cc}9$1")),
                7 => (format!(r"^\*{}(\d{{3}})$", 1 + k % 9), format!("+{cc}8$1")),
                8 => (
                    format!(r"^(?<ext>3{}\d{{2}})$", k % 10),
                    format!("+{cc}3${{ext}}"),
                ),
                _ => (format!(r"^00{}(\d+)$", k % 10), "+$1".to_string()),
            };
            s.push_str(&format!(
                "New-CsVoiceNormalizationRule -Parent '{plan}' -Name 'R{k}' -Pattern '{pat}' -Translation '{tr}'\n"
            ));
        }
    }
    s
}

/// 100 orbit ranges of 100 orbits: 3-, 4- and 5-digit, with and without `*` / `#`.
fn ranges() -> Vec<Target> {
    (0..100)
        .map(|i| {
            let k = i / 4;
            let (prefix, width, lo) = match i % 4 {
                0 => ("", 4, 1000 + k * 300),
                1 => ("*", 4, 1000 + k * 300),
                2 => ("#", 5, 55000 + k * 100),
                _ => ("", 5, 20000 + k * 100),
            };
            Target {
                name: format!("r{i}"),
                range: NumRange::new(prefix, width, lo, lo + 99),
            }
        })
        .collect()
}

fn lint_10k(ps1: &str, targets: &[Target]) -> usize {
    let rules = lync::parse_ps1(ps1, "bench.ps1").unwrap();
    let mut r = Report::new(targets.to_vec());
    lync::check(&rules, &mut r);
    r.findings.len()
}

fn enumerate(pattern: &str, r: &NumRange) -> u64 {
    let re = regex::Regex::new(pattern).unwrap();
    (r.lo..=r.hi).filter(|&v| re.is_match(&r.text(v))).count() as u64
}

fn automaton(pattern: &str, r: &NumRange) -> u64 {
    Matcher::new(pattern, Dialect::DotNet)
        .unwrap()
        .matching(r)
        .unwrap()
        .count()
}

fn best_of(n: usize, mut f: impl FnMut()) -> Duration {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let ps1 = rules_ps1();
    let targets = ranges();
    assert_eq!(lync::parse_ps1(&ps1, "b").unwrap().len(), 10_000);
    let findings = lint_10k(&ps1, &targets);
    let t = best_of(3, || {
        black_box(lint_10k(&ps1, &targets));
    });
    println!(
        "(a) 10,000 Lync rules x 100 ranges: {:.3} s ({findings} findings)",
        t.as_secs_f64()
    );
    let mut g = c.benchmark_group("lint");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    g.bench_function("lync_10k_rules_x_100_ranges", |b| {
        b.iter(|| lint_10k(&ps1, &targets))
    });

    let pattern = r"^(1\d{2})[0-4](\d{6})$";
    let billion = NumRange::new("", 10, 1_000_000_000, 1_999_999_999);
    let hundred = NumRange::new("", 10, 1_234_000_000, 1_234_000_099);
    g.bench_function("one_rule_x_1e9_range", |b| {
        b.iter(|| automaton(pattern, &billion))
    });
    g.bench_function("one_rule_x_100_range", |b| {
        b.iter(|| automaton(pattern, &hundred))
    });

    let million = NumRange::new("", 7, 1_000_000, 1_999_999);
    let p6 = r"^(1\d{2})[0-4]\d{3}$";
    assert_eq!(automaton(p6, &million), enumerate(p6, &million));
    let ta = best_of(5, || {
        black_box(automaton(p6, &million));
    });
    let te = best_of(3, || {
        black_box(enumerate(p6, &million));
    });
    println!(
        "(c) 10^6 orbits: automaton {:.1} us, enumeration {:.1} ms, ratio {:.0}x",
        ta.as_secs_f64() * 1e6,
        te.as_secs_f64() * 1e3,
        te.as_secs_f64() / ta.as_secs_f64()
    );
    g.bench_function("one_rule_x_1e6_automaton", |b| {
        b.iter(|| automaton(p6, &million))
    });
    g.bench_function("one_rule_x_1e6_enumeration", |b| {
        b.iter(|| enumerate(p6, &million))
    });
    // A look-ahead needs fancy-regex orbit by orbit: the fallback's cost on 10^6 orbits.
    let look = r"^(?!15)(1\d{2})[0-4]\d{3}$";
    g.bench_function("one_lookahead_rule_x_1e6_fallback", |b| {
        b.iter(|| automaton(look, &million))
    });

    let data = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/lint");
    let five = |list: &str| Target::from_table(&callpark::lint::orbits_from_list(list).unwrap());
    let fs_targets = five("7000-7099,*6700-*6799,*5900-*5999,*4000-*4099,*800-*899");
    let fusion = || {
        let dp = callpark::lint::freeswitch::load(&data.join("fusionpbx/dialplan.xml")).unwrap();
        let mut r = Report::new(fs_targets.clone());
        callpark::lint::freeswitch::check(&dp, "pbx.example.com", &mut r).unwrap();
        r.findings.len()
    };
    let ast_targets = five("5500-5599,*720-*729,*400-*499,800-899,7700-7799");
    let freepbx = || {
        let dp = callpark::lint::asterisk::load(&data.join("freepbx/extensions.conf")).unwrap();
        let mut r = Report::new(ast_targets.clone());
        callpark::lint::asterisk::check(&dp, "from-internal", &mut r).unwrap();
        r.findings.len()
    };
    let (nf, na) = (fusion(), freepbx());
    let tf = best_of(20, || {
        black_box(fusion());
    });
    let ta = best_of(20, || {
        black_box(freepbx());
    });
    println!(
        "(d) real dial plans, read and checked: FusionPBX {:.1} ms ({nf} findings), FreePBX {:.1} ms ({na} findings)",
        tf.as_secs_f64() * 1e3,
        ta.as_secs_f64() * 1e3
    );
    g.bench_function("fusionpbx_served_plan_x_5_ranges", |b| b.iter(fusion));
    g.bench_function("freepbx_extensions_conf_x_5_ranges", |b| b.iter(freepbx));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
