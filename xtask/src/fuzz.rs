//! `cargo xtask fuzz`: runs every coverage-guided fuzz target in `fuzz/`
//! for a set time and prints what each did.
//!
//! The targets (libFuzzer through cargo-fuzz) check the properties in
//! `crates/props` on inputs that grow from the checked-in corpus
//! `fuzz/corpus/<target>/`; new inputs that reach new code are added to
//! it, and `--minimize` shrinks it back to the inputs that add coverage
//! before it is committed. A crash (a property that failed, or a panic)
//! leaves its input in `fuzz/artifacts/<target>/` and fails the command;
//! copy it to `fuzz/regressions/<target>/` with the fix, so `cargo test -p
//! props` checks it from then on.
//!
//! It builds with whatever `cargo` runs it, stable included: without a
//! sanitizer, cargo-fuzz passes only stable `-C` flags (coverage
//! instrumentation, `--cfg fuzzing`). The code is `forbid(unsafe_code)`, so
//! AddressSanitizer (nightly only) would add little. Only `cargo install
//! cargo-fuzz --locked` is needed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, bail};
use tokio::process::Command;

/// Every fuzz target (`fuzz/fuzz_targets/<name>.rs`).
pub const TARGETS: [&str; 4] = ["ballot", "form", "cookie", "feed"];

/// Longest input tried: the worker refuses ballots over 4 KiB, the vote
/// service forms over 1 KiB; a little more covers the edges.
const MAX_LEN: usize = 8192;

#[derive(clap::Args, Debug)]
pub struct FuzzArgs {
    /// How long each target runs, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    seconds: u64,
    /// Run only this target (repeatable) [default: all].
    #[arg(long = "target", value_parser = TARGETS)]
    targets: Vec<String>,
    /// Afterwards, shrink each target's corpus to the inputs that add
    /// coverage (`cargo fuzz cmin`), ready to commit.
    #[arg(long)]
    minimize: bool,
}

/// What one target's run did.
struct Run {
    target: String,
    seconds: f64,
    executions: Option<u64>,
    crashed: bool,
}

pub async fn fuzz(args: FuzzArgs, root: &Path) -> anyhow::Result<()> {
    let targets: Vec<String> = if args.targets.is_empty() {
        TARGETS.iter().map(|t| (*t).to_owned()).collect()
    } else {
        args.targets.clone()
    };
    let installed = cargo_fuzz(root, &["--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if !installed.is_ok_and(|s| s.success()) {
        bail!("cargo-fuzz is not installed: cargo install cargo-fuzz --locked");
    }
    println!("building the fuzz targets (instrumented, release)…");
    let built = cargo_fuzz(root, &["build", "--sanitizer", "none"])
        .status()
        .await
        .context("running cargo fuzz build")?;
    if !built.success() {
        bail!("cargo fuzz build failed");
    }
    let mut runs = Vec::new();
    for target in &targets {
        runs.push(run_target(root, target, args.seconds).await?);
    }
    if args.minimize {
        for target in &targets {
            minimize(root, target).await?;
        }
    }
    print_summary(&runs, root);
    let crashed: Vec<&str> = runs
        .iter()
        .filter(|r| r.crashed)
        .map(|r| r.target.as_str())
        .collect();
    if crashed.is_empty() {
        Ok(())
    } else {
        bail!(
            "crashes in {crashed:?}: inputs are in fuzz/artifacts/<target>/ \
             (replay with `cargo fuzz run --sanitizer none <target> <file>`)"
        )
    }
}

/// `cargo fuzz <args>` in `root`.
fn cargo_fuzz(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.arg("fuzz")
        .args(args)
        .current_dir(root)
        .kill_on_drop(true);
    cmd
}

async fn run_target(root: &Path, target: &str, seconds: u64) -> anyhow::Result<Run> {
    println!("fuzzing {target} for {seconds} s…");
    let started = Instant::now();
    let output = cargo_fuzz(
        root,
        &[
            "run",
            "--sanitizer",
            "none",
            target,
            "--",
            &format!("-max_total_time={seconds}"),
            &format!("-max_len={MAX_LEN}"),
            "-timeout=10",
            "-print_final_stats=1",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .output()
    .await
    .with_context(|| format!("running cargo fuzz run {target}"))?;
    let log = String::from_utf8_lossy(&output.stderr);
    let crashed = !output.status.success();
    if crashed {
        // The tail holds the panic message and the input's path.
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
    }
    Ok(Run {
        target: target.to_owned(),
        seconds: started.elapsed().as_secs_f64(),
        executions: executions(&log),
        crashed,
    })
}

async fn minimize(root: &Path, target: &str) -> anyhow::Result<()> {
    println!("minimizing the {target} corpus…");
    let done = cargo_fuzz(root, &["cmin", "--sanitizer", "none", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .with_context(|| format!("running cargo fuzz cmin {target}"))?;
    if !done.success() {
        bail!("cargo fuzz cmin {target} failed");
    }
    Ok(())
}

/// libFuzzer's count of inputs run: `stat::number_of_executed_units: N`,
/// or `Done N runs in S second(s)`.
fn executions(log: &str) -> Option<u64> {
    log.lines().find_map(|line| {
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            return n.trim().parse().ok();
        }
        line.strip_prefix("Done ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    })
}

fn corpus_dir(root: &Path, target: &str) -> PathBuf {
    root.join("fuzz").join("corpus").join(target)
}

fn corpus_size(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.flatten().count())
}

fn print_summary(runs: &[Run], root: &Path) {
    println!();
    println!("| target | seconds | executions | executions/s | corpus files | crashes |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for run in runs {
        let execs = run
            .executions
            .map_or_else(|| "?".to_owned(), |n| n.to_string());
        let rate = run.executions.map_or_else(
            || "?".to_owned(),
            |n| format!("{:.0}", n as f64 / run.seconds),
        );
        println!(
            "| {} | {:.0} | {execs} | {rate} | {} | {} |",
            run.target,
            run.seconds,
            corpus_size(&corpus_dir(root, &run.target)),
            u8::from(run.crashed)
        );
    }
    println!("\ncorpus: {}", root.join("fuzz").join("corpus").display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executions_are_read_from_libfuzzers_final_stats() {
        let log = "#1024\tpulse  cov: 10\nDone 4242 runs in 5 second(s)\n\
                   stat::number_of_executed_units: 4243\nstat::average_exec_per_sec: 848\n";
        assert_eq!(executions(log), Some(4242));
        assert_eq!(executions("stat::number_of_executed_units: 77\n"), Some(77));
        assert_eq!(executions("no stats"), None);
    }
}
