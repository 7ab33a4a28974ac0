//! The report of `xtask bench`: percentiles, the median of several runs,
//! what the figures were measured on, and `docs/benchmarks.md`.

use std::path::Path;

use serde_json::{Value, json};

use super::{memory, replicated};

/// p50, p99 and max of `samples` (milliseconds).
pub fn percentiles(samples: &mut [f64]) -> Value {
    if samples.is_empty() {
        return Value::Null;
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    json!({ "p50": at(0.50), "p99": at(0.99), "max": at(1.0), "samples": samples.len() })
}

/// The per-field median of several runs' figures (non-numbers from the
/// first run).
pub fn median_of(runs: &[Value]) -> Value {
    fn go(values: &[&Value]) -> Value {
        match values.first() {
            Some(Value::Object(first)) => first
                .keys()
                .map(|k| {
                    let children: Vec<&Value> = values.iter().map(|v| &v[k.as_str()]).collect();
                    (k.clone(), go(&children))
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
            Some(Value::Number(_)) => {
                let mut nums: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
                nums.sort_by(f64::total_cmp);
                json!(nums[nums.len() / 2])
            }
            Some(other) => (*other).clone(),
            None => Value::Null,
        }
    }
    go(&runs.iter().collect::<Vec<_>>())
}

pub fn binary_sizes(bin_dir: &Path) -> Value {
    ["vote", "worker", "result", "hits", "seed"]
        .iter()
        .map(|b| {
            let size = std::fs::metadata(bin_dir.join(b)).map(|m| m.len()).ok();
            (b.to_string(), json!(size))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// What the numbers were measured on.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim())
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    json!({
        "cpu": model,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": kernel,
        "rustc": rustc_version(),
    })
}

fn rustc_version() -> String {
    std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

pub fn markdown(report: &Value) -> String {
    let m = &report["median"];
    let f = |v: &Value| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.1}"));
    let mib = |v: &Value| {
        v.as_f64()
            .map_or("–".to_owned(), |kib| format!("{:.1}", kib / 1024.0))
    };
    let machine = &report["machine"];
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str(&format!(
        "Measured by `cargo xtask bench` on {} cores ({}), {} GiB RAM, Linux {}, {}. \
         Each figure is the median of {} runs on a fresh native stack (release builds; \
         Redis with AOF fsynced every second as in the compose file, Postgres with fsync on; loopback only). Numbers are what was \
         measured, not targets.\n\n",
        machine["cores"],
        machine["cpu"].as_str().unwrap_or("?"),
        machine["memory_gib"],
        machine["kernel"].as_str().unwrap_or("?"),
        machine["rustc"].as_str().unwrap_or("?"),
        report["runs"],
    ));
    out.push_str(&floor_table(report));
    out.push_str("\n## Every figure\n\n");
    out.push_str("| figure | measured | goal |\n| --- | --- | --- |\n");
    out.push_str(&format!(
        "| vote: POST throughput at c=50 (seed, {} votes; worker held meanwhile) | {} req/s | ≥ 14,000 |\n",
        report["settings"]["seed_votes"],
        m["vote"]["requests_per_second"]
            .as_f64()
            .map_or("–".into(), |x| format!("{x:.0}"))
    ));
    out.push_str(&format!(
        "| vote: latency p50 / p99 | {} / {} ms | p99 < 10 ms |\n",
        f(&m["vote"]["p50_ms"]),
        f(&m["vote"]["p99_ms"])
    ));
    out.push_str(&format!(
        "| worker: drain of {} queued ballots | {} ballots/s | ≥ 50,000 |\n",
        report["settings"]["backlog"],
        m["worker"]["ballots_per_second"]
            .as_f64()
            .map_or("–".into(), |x| format!("{x:.0}"))
    ));
    out.push_str(&format!(
        "| end to end: POST → result WebSocket update, p50 / p99 | {} / {} ms | |\n",
        f(&m["end_to_end_ms"]["p50"]),
        f(&m["end_to_end_ms"]["p99"])
    ));
    if let Some(fanout) = m["fanout"].as_object() {
        for (size, v) in fanout {
            out.push_str(&format!(
                "| result: commit → last of {size} clients, p50 / p99 / max | {} / {} / {} ms | p99 ≤ 100 ms |\n",
                f(&v["commit_to_last_client_ms"]["p50"]),
                f(&v["commit_to_last_client_ms"]["p99"]),
                f(&v["commit_to_last_client_ms"]["max"]),
            ));
            out.push_str(&format!(
                "| result: RSS / CPU with {size} clients | {} MiB / {}% | RSS < 100 MB |\n",
                mib(&v["result_rss_kib"]),
                f(&v["result_cpu_percent"]),
            ));
        }
    }
    out.push_str(&replicated::markdown_rows(
        m,
        &report["settings"]["soak_seconds"],
    ));
    for service in ["vote", "worker", "result"] {
        out.push_str(&format!(
            "| {service}: RSS idle / peak | {} / {} MiB | idle < 30 MB |\n",
            mib(&m["idle_rss_kib"][service]),
            mib(&m["peak_rss_kib"][service]),
        ));
    }
    out.push_str(&memory::markdown_rows(&report["memory"]));
    if let Some(sizes) = report["binary_bytes"].as_object() {
        for (bin, size) in sizes {
            out.push_str(&format!(
                "| {bin}: release binary size | {} MiB | |\n",
                size.as_f64()
                    .map_or("–".into(), |b| format!("{:.1}", b / 1024.0 / 1024.0))
            ));
        }
    }
    out.push_str(FLOORS_EXPLAINED);
    out.push_str(&format!(
        "\nThe whole benchmark took {:.0} s. Raw figures of every run: \
         [benchmarks.json](benchmarks.json).\n",
        report["total_seconds"].as_f64().unwrap_or(0.0)
    ));
    out
}

/// How each floor is measured, for the report.
const FLOORS_EXPLAINED: &str = "
## How the floors are measured

Each floor is the bare mechanism with our code taken out, measured in the
same run on the same machine, so the ratio holds where absolute figures
drift.

- **Vote POST, HTTP floor**: the same server stack (`servicekit::http::serve`
  with the same limits) answering every request with vote's own page as a
  static 200, driven by the same `seed` at the same concurrency.
- **Vote POST, Redis floor**: the enqueue script alone, run by a bare
  client over one multiplexed connection at the same concurrency, for as
  many ballots, with the worker held as for vote. Vote's goal is against the
  lower of the two floors.
- **CPU per POST**: over the seed's run, vote's and Redis's user plus
  system time (`/proc/<pid>/stat`) and the whole machine's busy time
  (`/proc/stat`, all cores), divided by the votes; for the HTTP floor, the
  bench's own process (the floor's server runs in it, and it does nothing
  else meanwhile) and the whole machine. Tick resolution is 10 ms.
- **Replicated vote**: no floor of its own, but the unreplicated vote of
  the same run: a second vote process with `REDIS_MIN_REPLICAS_ACK=1`
  against the run's Redis, which a replica (a `redis-server` on loopback,
  AOF fsynced every second) follows only while these figures are taken,
  driven by the same seed at the same concurrency and count, worker held.
  The soak rows run the seed for the stated seconds with the worker
  running; the replica rows run it for 10 s each with the replica healthy,
  frozen (SIGSTOP) and killed, while four clients time `GET /`.
- **Worker drain floor**: the same number of rows of new voters upserted
  into the same table by the worker's own statement, one statement (one
  durable commit, fsync on) per batch of the worker's batch size, in
  sequence, with no Redis.
- **Fan-out floor**: a minimal broadcaster written for the bench (blocking
  plain sockets, no framework, no runtime, a process of its own) writing
  the same WebSocket text frame to the same number of loopback
  connections, read by the same crowd (raw non-blocking sockets on one
  thread). Result's figure runs from a commit to the last client; the
  floor's from the command to broadcast (a pipe write) to the last client.

## What is left

Where vote's time goes against its floor, what was tried and what it gave:
[profile.md](profile.md).
";

/// The figures that have a floor: ours, the floor, the ratio, the goal.
fn floor_table(report: &Value) -> String {
    let m = &report["median"];
    let floors = &m["floors"];
    let ratios = &m["ratios"];
    let n = |v: &Value| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.0}"));
    let ms = |v: &Value| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.1}"));
    let r = |v: &Value| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.2}"));
    let mut out = String::from(
        "## Against the floor\n\n\
         Ratios are the median of each run's own ratio: throughput as a share of \
         its floor (1.00 = the floor), latency as a multiple of it.\n\n\
         | figure | ours | floor | ratio | goal |\n| --- | --- | --- | --- | --- |\n",
    );
    out.push_str(&format!(
        "| vote: POST req/s at c=50 vs the HTTP floor (static 200) | {} | {} | {} | |\n",
        n(&m["vote"]["requests_per_second"]),
        n(&floors["vote_http"]["requests_per_second"]),
        r(&ratios["vote_of_http_floor"]),
    ));
    out.push_str(&format!(
        "| vote: POST req/s at c=50 vs the Redis floor (enqueue script alone) | {} | {} | {} | |\n",
        n(&m["vote"]["requests_per_second"]),
        n(&floors["vote_redis"]["requests_per_second"]),
        r(&ratios["vote_of_redis_floor"]),
    ));
    out.push_str(&format!(
        "| vote: share of the lower floor; p99 | {:} ms | {} / {} ms | {} | ≥ 0.60, p99 < 5 ms |\n",
        ms(&m["vote"]["p99_ms"]),
        ms(&floors["vote_http"]["p99_ms"]),
        ms(&floors["vote_redis"]["p99_ms"]),
        r(&ratios["vote_of_lower_floor"]),
    ));
    out.push_str(&replicated::markdown_ratio_row(m));
    let us = |v: &Value| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.1}"));
    let cpu = &m["vote"]["cpu_us_per_request"];
    let floor_cpu = &floors["vote_http"]["cpu_us_per_request"];
    out.push_str(&format!(
        "| vote: CPU µs per POST: vote / Redis / whole machine; floor: server / whole machine | {} / {} / {} | {} / {} | | |\n",
        us(&cpu["vote"]),
        us(&cpu["redis"]),
        us(&cpu["machine"]),
        us(&floor_cpu["server"]),
        us(&floor_cpu["machine"]),
    ));
    out.push_str(&format!(
        "| worker: drain of {} ballots, rows/s | {} | {} | {} | ≥ 0.65 |\n",
        report["settings"]["backlog"],
        n(&m["worker"]["ballots_per_second"]),
        n(&floors["worker_drain"]["rows_per_second"]),
        r(&ratios["worker_of_drain_floor"]),
    ));
    if let Some(fanout) = m["fanout"].as_object() {
        for (size, v) in fanout {
            let ours = &v["commit_to_last_client_ms"];
            let floor = &floors["fanout"][size]["send_to_last_client_ms"];
            let ratio = &ratios["fanout_over_floor"][size];
            out.push_str(&format!(
                "| result: to the last of {size} clients, p50 / p99 ms | {} / {} | {} / {} | {} / {} | ≤ 1.5 |\n",
                ms(&ours["p50"]),
                ms(&ours["p99"]),
                ms(&floor["p50"]),
                ms(&floor["p99"]),
                r(&ratio["p50"]),
                r(&ratio["p99"]),
            ));
            out.push_str(&format!(
                "| result: CPU per broadcast per client ({size} clients) | {} µs | | | |\n",
                v["result_cpu_us_per_broadcast_per_client"]
                    .as_f64()
                    .map_or("–".to_owned(), |x| format!("{x:.2}")),
            ));
        }
    }
    out
}
