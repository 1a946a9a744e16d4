//! `callpark lint`: reads the files and the orbit table (from `--orbits` or the configuration),
//! runs the checks of the `callpark-lint` crate, prints, picks the exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches, ValueEnum};

use crate::config::Config;
use crate::lint::{LintError, Report, Target, asterisk, freeswitch, lync, report};
use crate::orbit::OrbitTable;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Which findings make `callpark lint` exit 1 (`--fail-on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// A rule surely catches orbits (protect them).
    Caught,
    /// Orbits are destinations of the dial plan (move the orbits).
    Conflict,
    /// A rule catches orbits under conditions the lint cannot see (caller, time, variables).
    May,
}

/// What clap reads; `--context` is paired with the `--asterisk`/`--freeswitch` before it.
#[derive(Debug, Args)]
struct Raw {
    /// Orbit ranges to check, e.g. "*700-*799,5500-5599" (instead of the config's table).
    #[arg(long)]
    orbits: Option<String>,
    /// Lync/Skype/Teams normalization rules: PowerShell (.ps1), Export-Csv (.csv) or JSON.
    #[arg(long, value_name = "FILE")]
    lync: Vec<PathBuf>,
    /// An Asterisk extensions.conf; give the context phones dial from with --context after it.
    #[arg(long, value_name = "FILE")]
    asterisk: Vec<PathBuf>,
    /// A FreeSWITCH dialplan XML file; give its context with --context after it.
    #[arg(long, value_name = "FILE")]
    freeswitch: Vec<PathBuf>,
    /// The dialplan context of the --asterisk or --freeswitch file just before it.
    #[arg(long, value_name = "NAME")]
    context: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Exit 1 only for these kinds of finding (comma-separated; default: any finding).
    /// Undecided findings always fail.
    #[arg(long, value_enum, value_name = "KINDS", value_delimiter = ',')]
    fail_on: Vec<FailOn>,
}

/// `callpark lint` arguments, with each dialplan file paired with its context.
#[derive(Debug, Clone)]
pub struct LintArgs {
    pub orbits: Option<String>,
    pub lync: Vec<PathBuf>,
    /// (file, context); a missing context is reported when the lint runs.
    pub asterisk: Vec<(PathBuf, Option<String>)>,
    pub freeswitch: Vec<(PathBuf, Option<String>)>,
    pub format: Format,
    /// Empty: any finding fails.
    pub fail_on: Vec<FailOn>,
    /// Whether `--config` was on the command line. `CALLPARK_CONFIG` and the default path do
    /// not count: they name a file the user may not mean for this run, so `--orbits` wins.
    pub config_given: bool,
}

impl FromArgMatches for LintArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let raw = Raw::from_arg_matches(m)?;
        let idx =
            |id: &str| -> Vec<usize> { m.indices_of(id).map(|i| i.collect()).unwrap_or_default() };
        let (ai, fi, ci) = (idx("asterisk"), idx("freeswitch"), idx("context"));
        let mut files: Vec<usize> = ai.iter().chain(&fi).copied().collect();
        files.sort_unstable();
        // The context of a file is the first --context after it and before the next file.
        let context_for = |at: usize| -> Option<String> {
            let next = files
                .iter()
                .copied()
                .find(|&f| f > at)
                .unwrap_or(usize::MAX);
            ci.iter()
                .position(|&c| c > at && c < next)
                .map(|k| raw.context[k].clone())
        };
        Ok(LintArgs {
            orbits: raw.orbits.clone(),
            lync: raw.lync.clone(),
            asterisk: raw
                .asterisk
                .iter()
                .zip(&ai)
                .map(|(p, &i)| (p.clone(), context_for(i)))
                .collect(),
            freeswitch: raw
                .freeswitch
                .iter()
                .zip(&fi)
                .map(|(p, &i)| (p.clone(), context_for(i)))
                .collect(),
            format: raw.format,
            fail_on: raw.fail_on.clone(),
            // `--config` is the top-level command's global argument; clap hands its matches
            // down to the subcommand, with where the value came from.
            config_given: m.value_source("config") == Some(ValueSource::CommandLine),
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = LintArgs::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for LintArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Raw::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Raw::augment_args_for_update(cmd)
    }
}

fn orbit_table(args: &LintArgs, config: &Path) -> Result<OrbitTable, LintError> {
    match &args.orbits {
        Some(list) => {
            if args.config_given {
                return Err(LintError::Usage(
                    "give either --config or --orbits, not both".into(),
                ));
            }
            crate::lint::orbits_from_list(list)
        }
        None => Config::load(config).map(|c| c.orbits).map_err(|e| {
            LintError::Orbits(format!(
                "{e}\nhint: name the orbit table with --config FILE, or list ranges with --orbits \"*700-*799,5500-5599\""
            ))
        }),
    }
}

fn read(path: &Path) -> Result<String, LintError> {
    std::fs::read_to_string(path).map_err(|e| LintError::Read {
        file: path.display().to_string(),
        msg: e.to_string(),
    })
}

/// Runs every check the arguments ask for.
pub fn lint(args: &LintArgs, table: &OrbitTable) -> Result<Report, LintError> {
    if args.lync.is_empty() && args.asterisk.is_empty() && args.freeswitch.is_empty() {
        return Err(LintError::Usage(
            "nothing to check: give --lync FILE, --asterisk FILE --context NAME or --freeswitch FILE --context NAME".into(),
        ));
    }
    let mut report = Report::new(Target::from_table(table));
    // Rules of one dial plan may come from several files (say, protecting rules and an
    // export): they are checked together, equal priorities in the order of the files.
    let mut rules = Vec::new();
    for p in &args.lync {
        let file = p.display().to_string();
        rules.extend(lync::parse(&read(p)?, &file)?);
    }
    if !rules.is_empty() {
        lync::check(&rules, &mut report);
    }
    for (p, ctx) in &args.asterisk {
        let ctx = ctx.as_deref().ok_or_else(|| {
            LintError::Usage(format!(
                "--asterisk {}: give its --context NAME after it",
                p.display()
            ))
        })?;
        let dp = asterisk::load(p)?;
        asterisk::check(&dp, ctx, &mut report)?;
    }
    for (p, ctx) in &args.freeswitch {
        let ctx = ctx.as_deref().ok_or_else(|| {
            LintError::Usage(format!(
                "--freeswitch {}: give its --context NAME after it",
                p.display()
            ))
        })?;
        let dp = freeswitch::load(p)?;
        freeswitch::check(&dp, ctx, &mut report)?;
    }
    Ok(report)
}

/// Whether a finding makes the run fail under `--fail-on` (empty: every finding does). An
/// undecided finding always does: the lint could not prove the orbits safe.
pub fn fails(f: &crate::lint::Finding, fail_on: &[FailOn]) -> bool {
    use crate::lint::{Certainty, Kind};
    if fail_on.is_empty() || f.certainty == Certainty::Undecided {
        return true;
    }
    let what = match (f.kind, f.certainty) {
        (Kind::Conflicts, _) => FailOn::Conflict,
        (Kind::Catches, Certainty::MayCatch) => FailOn::May,
        _ => FailOn::Caught,
    };
    fail_on.contains(&what)
}

/// Exit codes: 0 no finding that `--fail-on` selects, 1 at least one, 2 an input could not be read.
pub fn run(args: &LintArgs, config: &Path) -> ExitCode {
    let result = orbit_table(args, config).and_then(|t| lint(args, &t));
    match result {
        Ok(r) => {
            match args.format {
                Format::Text => print!("{}", report::text(&r)),
                Format::Json => println!("{}", report::json(&r)),
            }
            if !r.findings.iter().any(|f| fails(f, &args.fail_on)) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
