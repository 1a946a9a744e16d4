//! `callpark doctor`: the options, the run, the exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::Config;
use crate::doctor::{self, Ami, Options};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Only this pool (a `[[pbx]]` name); repeat for several. All pools by default.
    #[arg(long = "pool", value_name = "NAME")]
    pub pools: Vec<String>,
    /// A dialplan context the phones dial from; repeat for several. By default the doctor
    /// finds them: FreeSWITCH's directory (`user_context`), Asterisk's pjsip.conf endpoints.
    #[arg(long = "context", value_name = "NAME")]
    pub contexts: Vec<String>,
    /// Asterisk's configuration directory: extensions.conf and the files it includes,
    /// ari.conf, pjsip.conf, musiconhold.conf.
    #[arg(long, value_name = "DIR", default_value = "/etc/asterisk")]
    pub asterisk_etc: PathBuf,
    /// Asterisk's manager interface (HOST:PORT), to check the dial plan Asterisk has loaded
    /// (`dialplan show`), not only its files.
    #[arg(long, value_name = "HOST:PORT")]
    pub ami: Option<String>,
    /// The manager user (manager.conf).
    #[arg(long, value_name = "USER", default_value = "callpark")]
    pub ami_user: String,
    /// The environment variable holding the manager user's secret.
    #[arg(long, value_name = "VAR", default_value = "CALLPARK_AMI_SECRET")]
    pub ami_secret_env: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = super::Format::Table)]
    pub format: super::Format,
}

/// Exit codes: 0 a park would work on every pool checked, 1 not (the list says why), 2 the
/// options are wrong.
pub async fn run(cfg: &Config, args: &DoctorArgs) -> ExitCode {
    for p in &args.pools {
        if !cfg.pbx.iter().any(|x| &x.name == p) {
            eprintln!("error: --pool {p}: no [[pbx]] of that name in the configuration");
            return ExitCode::from(2);
        }
    }
    let ami = match &args.ami {
        None => None,
        Some(addr) => match std::env::var(&args.ami_secret_env) {
            Ok(secret) => Some(Ami {
                address: addr.clone(),
                username: args.ami_user.clone(),
                secret,
            }),
            Err(_) => {
                eprintln!(
                    "error: --ami {addr}: set the manager secret in the environment variable {} (or name another with --ami-secret-env)",
                    args.ami_secret_env
                );
                return ExitCode::from(2);
            }
        },
    };
    let opts = Options {
        pools: args.pools.clone(),
        contexts: args.contexts.clone(),
        asterisk_etc: args.asterisk_etc.clone(),
        ami,
    };
    let reports = doctor::examine(cfg, &opts).await;
    match args.format {
        super::Format::Table => print!("{}", doctor::text(&reports)),
        super::Format::Json => match serde_json::to_string_pretty(&reports) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    }
    if reports.iter().all(doctor::PoolReport::works) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
