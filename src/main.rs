use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Tracing starts in `cli::main`, once the configuration (and its `[service] log`) is read.
    let cli = callpark::cli::Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(callpark::cli::main(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
