//! `seed`: posts votes through the vote service and reports what it did.
//! Exits non-zero if any request failed, the target never answered, or
//! `--verify` did not see the votes arrive. `seed watch` follows the
//! result service's live feed instead (see [`seed::watch`] for its exit
//! codes).

use std::process::ExitCode;

use clap::Parser;
use seed::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Watch(args)) => watch(&args).await,
        None => post(&cli.settings).await,
    }
}

async fn watch(args: &seed::watch::WatchArgs) -> ExitCode {
    let watched = seed::watch::watch(args, |tally| println!("a={} b={}", tally.a, tally.b)).await;
    match watched {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seed watch: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn post(settings: &seed::Settings) -> ExitCode {
    let runs = settings.plan();
    let plan: Vec<String> = runs
        .iter()
        .map(|r| format!("{} {}", r.count, r.vote))
        .collect();
    eprintln!(
        "seed: posting to {} — runs: {}{}, concurrency {}{}",
        settings.target,
        plan.join(", "),
        settings
            .duration
            .map(|s| format!(" repeated for {s} s"))
            .unwrap_or_default(),
        settings.concurrency,
        settings
            .rate
            .map(|r| format!(", at most {r} req/s"))
            .unwrap_or_default(),
    );
    match seed::run(settings).await {
        Ok(report) => {
            print!("{report}");
            if let Some(path) = &settings.report_json
                && let Err(e) = std::fs::write(path, report.to_json().to_string())
            {
                eprintln!("seed: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            if report.failed() > 0 {
                eprintln!("seed: {} requests failed", report.failed());
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("seed: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
