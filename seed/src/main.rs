//! `seed`: posts votes through the vote service and reports what it did.
//! Exits non-zero if any request failed, the target never answered, or
//! `--verify` did not see the votes arrive.

use std::process::ExitCode;

use clap::Parser;

/// Load for the voting app: posts votes like the original seed's ab runs.
#[derive(Parser, Debug)]
#[command(name = "seed", version, about)]
struct Cli {
    #[command(flatten)]
    settings: seed::Settings,
}

#[tokio::main]
async fn main() -> ExitCode {
    let settings = Cli::parse().settings;
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
    match seed::run(&settings).await {
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
