//! `caucus`: the organizer's command line, on the `caucus-node` library.
//!
//! Every command takes `--home DIR` (or `CAUCUS_HOME`; default the platform data dir)
//! and `--json`. The passphrase comes from `CAUCUS_PASSPHRASE` or a prompt. Commands
//! work with the node stopped; while `caucus run` holds the home, writes go to it
//! through its control socket and are published at once. Errors are one line on
//! stderr with a non-zero exit status.

mod cli;
mod demo;
mod out;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let args = cli::Cli::parse();
    init_logging(args.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("caucus: could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::dispatch(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the outermost message and its causes, joined.
            let line = format!("{e:#}").replace('\n', " ");
            eprintln!("caucus: {line}");
            ExitCode::FAILURE
        }
    }
}

/// `caucus contact list | head` closes stdout early: end quietly, as other tools do,
/// instead of reporting a panic.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// `RUST_LOG`-style filtering; quiet by default. Log lines carry ids and counts only.
fn init_logging(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if verbose { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
