//! `callpark import lync`: reads the exports, prints the configuration on stdout and what the
//! import and the lint have to say on stderr, and picks the exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::import::lync::{self, ImportError, Options, Source, Sources};
use crate::lint::{LintError, Report, Target, lync as lync_rules, report};

#[derive(Debug, Subcommand)]
pub enum ImportCmd {
    /// From Lync Server 2013 / Skype for Business Server 2015 and 2019 (and Teams' call park
    /// policies): writes the equivalent callpark configuration on stdout.
    Lync(LyncArgs),
}

#[derive(Debug, Args)]
pub struct LyncArgs {
    /// What `Get-CsCallParkOrbit` printed, or its `Export-Csv` file.
    #[arg(long, value_name = "FILE")]
    orbits: Vec<PathBuf>,
    /// What `Get-CsCpsConfiguration` printed (Call Park service settings), or its `Export-Csv`.
    #[arg(long, value_name = "FILE")]
    cps: Vec<PathBuf>,
    /// What `Get-CsVoicePolicy` printed (EnableCallPark), or its `Export-Csv`.
    #[arg(long, value_name = "FILE")]
    voice_policies: Vec<PathBuf>,
    /// What Teams' `Get-CsTeamsCallParkPolicy` printed, or its `Export-Csv`.
    #[arg(long, value_name = "FILE")]
    teams_policies: Vec<PathBuf>,
    /// The [[pbx]] that takes a Call Park service's orbits: "pool01.contoso.com=pbx-a:asterisk"
    /// (KIND asterisk or freeswitch; it may be left out for a [[pbx]] of --base). "teams=NAME"
    /// takes the pickup ranges of Teams' policies.
    #[arg(long, value_name = "POOL=NAME[:KIND]")]
    map: Vec<String>,
    /// The pools of a site whose Site: Call Park settings apply to them:
    /// "Redmond=pool01.contoso.com,pool02.contoso.com".
    #[arg(long, value_name = "SITE=POOL,...")]
    site: Vec<String>,
    /// An existing callpark configuration to build on: its [service], [api] and [[pbx]] are
    /// kept, its [park] keys that Lync has no say in too; policies, lots and orbit ranges
    /// are replaced.
    #[arg(long, value_name = "FILE")]
    base: Option<PathBuf>,
    /// The site's normalization rules (PowerShell, Export-Csv or JSON, as `callpark lint
    /// --lync` reads them), checked against the imported orbits.
    #[arg(long, value_name = "FILE")]
    rules: Vec<PathBuf>,
}

fn sources(paths: &[PathBuf]) -> Result<Vec<Source>, ImportError> {
    paths.iter().map(|p| Source::read(p)).collect()
}

/// Why the import or its lint cannot go on (exit 2).
enum Failed {
    Import(ImportError),
    Lint(LintError),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Import(e) => e.fmt(f),
            Failed::Lint(e) => e.fmt(f),
        }
    }
}

/// The configuration and the lint's report of `--rules` on its orbits.
fn import(args: &LyncArgs) -> Result<(lync::Imported, Option<Report>), Failed> {
    let base = match &args.base {
        Some(p) => Some(Source::read(p).map_err(Failed::Import)?),
        None => None,
    };
    let options = Options::parse(
        &args.map,
        &args.site,
        base.as_ref().map(|b| (b.file.as_str(), b.text.as_str())),
    )
    .map_err(Failed::Import)?;
    let all = Sources {
        orbits: sources(&args.orbits).map_err(Failed::Import)?,
        cps: sources(&args.cps).map_err(Failed::Import)?,
        voice_policies: sources(&args.voice_policies).map_err(Failed::Import)?,
        teams_policies: sources(&args.teams_policies).map_err(Failed::Import)?,
    };
    let imported = lync::import(&all, &options).map_err(Failed::Import)?;
    if args.rules.is_empty() {
        return Ok((imported, None));
    }
    let mut rules = Vec::new();
    for p in &args.rules {
        // Decoded as the exports are: a rule set redirected with `>` is UTF-16.
        let src = Source::read(p).map_err(Failed::Import)?;
        rules.extend(lync_rules::parse(&src.text, &src.file).map_err(Failed::Lint)?);
    }
    let mut found = Report::new(Target::from_table(&imported.config.orbits));
    lync_rules::check(&rules, &mut found);
    Ok((imported, Some(found)))
}

/// Exit codes: 0 imported (and no rule catches an orbit), 1 imported but a normalization
/// rule catches orbits, 2 nothing imported (an export, a value or an option is wrong).
pub fn run(cmd: &ImportCmd) -> ExitCode {
    let ImportCmd::Lync(args) = cmd;
    match import(args) {
        Ok((imported, found)) => {
            for n in &imported.notes {
                eprintln!("note: {n}");
            }
            for w in &imported.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", imported.toml);
            match found {
                Some(r) => {
                    eprint!("{}", report::text(&r));
                    if r.findings.iter().any(|f| super::lint::fails(f, &[])) {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
