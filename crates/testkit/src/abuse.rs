//! The machinery of the abuse suites: catalogues of bad inputs, run one
//! case at a time against a live service, each reported by name.
//!
//! Every service has a `tests/abuse.rs` that lists its cases — what is
//! sent, at which layer (HTTP framing, headers, bodies, form values,
//! cookies, WebSocket handshakes and frames, queue payloads, slow and idle
//! clients) and what must happen. [`run`] plays them in order and, after
//! each one, checks what every case promises besides its own answer:
//!
//! - the service still answers (the suite's own check, e.g. `/healthz`),
//! - nothing was queued or stored (the suite's own check),
//! - no thread panicked and the service logged no ERROR or panic
//!   ([`Watch`]: a panic hook and a log capture, both process-wide).
//!
//! A failing case does not stop the others: the test fails at the end with
//! every failing case's name and why. A case that waits for a change not
//! yet on this branch is marked [`waits_for`](Entry::waits_for): it is run,
//! it must still fail (so nobody forgets to unmark it when the change
//! lands), and it is listed as waiting.
//!
//! The catalogue is also documentation: [`check_catalogue`] renders the
//! cases as a Markdown table and compares it with the service's section of
//! `docs/abuse.md`, so the table cannot drift from the code
//! (`ABUSE_DOC=write` rewrites the section instead).
//!
//! One job per file: this one runs cases and watches the process;
//! [`http`] plays HTTP cases (raw bytes in, a status or a close out);
//! [`framing`] holds the framing cases every HTTP service must refuse;
//! [`catalogue`] keeps `docs/abuse.md` in step.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use crate::logs::LogSink;
use crate::raw::request;

pub mod catalogue;
pub mod framing;
pub mod http;

pub use catalogue::{catalogue_path, check_catalogue, per_layer, render_table};
pub use framing::{Effect, framing_cases};
pub use http::{Answer, FLOOD_ADDRESS, FLOOD_LIMIT, HOST, HttpCase, Input, play_http, with_host};

/// Where bad input enters; the catalogue's sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    /// Request lines, versions, methods, targets, header syntax, lengths,
    /// transfer codings, pipelining.
    Framing,
    /// Well-formed headers with hostile values (`Origin`, `Referer`,
    /// `Content-Type`, `Expect`, `Host`, request ids).
    Headers,
    /// Request bodies: sizes, truncation, chunking.
    Bodies,
    /// The vote form's fields and values.
    FormValues,
    /// The `voter_id` and `vote` cookies.
    Cookies,
    /// The WebSocket upgrade request of the live feed.
    WsHandshake,
    /// Frames a live-feed client sends after the upgrade.
    WsFrames,
    /// Entries pushed straight onto the Redis list `votes`.
    QueuePayloads,
    /// Clients that send slowly, stop half-way, or never read.
    SlowClients,
}

impl Layer {
    pub fn title(self) -> &'static str {
        match self {
            Layer::Framing => "HTTP framing",
            Layer::Headers => "headers",
            Layer::Bodies => "bodies",
            Layer::FormValues => "form values",
            Layer::Cookies => "cookies",
            Layer::WsHandshake => "WebSocket handshake",
            Layer::WsFrames => "WebSocket frames",
            Layer::QueuePayloads => "queue payloads",
            Layer::SlowClients => "slow and idle clients",
        }
    }
}

/// One case as the catalogue shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Unique within the service, `snake_case`, read as a sentence.
    pub name: &'static str,
    pub layer: Layer,
    /// What is sent, in a few words.
    pub sends: String,
    /// What must happen, in a few words.
    pub expect: String,
    /// The branch or change this case waits for, if it cannot pass yet.
    pub waits_for: Option<&'static str>,
}

/// What a suite's cases have in common.
pub trait Case {
    fn entry(&self) -> Entry;
}

/// How long one case may take before it counts as a hang.
pub const CASE_DEADLINE: Duration = Duration::from_secs(20);

/// Plays `cases` in order with `play`, which returns `Err(why)` if the case
/// did not go as expected (including the suite's own after-checks); adds
/// the [`Watch`] checks; and panics at the end naming every failing case.
/// `suite` names the catalogue in messages. Returns the number of cases
/// still waiting for a change.
pub async fn run<C, F, Fut>(suite: &str, cases: Vec<C>, mut play: F) -> usize
where
    C: Case,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let watch = Watch::install();
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut waiting = Vec::new();
    let total = cases.len();
    for case in cases {
        let entry = case.entry();
        let mark = watch.mark();
        let played =
            tokio::time::timeout(CASE_DEADLINE, AssertUnwindSafe(play(case)).catch_unwind()).await;
        let mut outcome = match played {
            Err(_) => Err(format!("no outcome within {CASE_DEADLINE:?} (a hang)")),
            Ok(Err(panic)) => Err(format!("the case panicked: {}", panic_text(&panic))),
            Ok(Ok(result)) => result,
        };
        let trouble = watch.trouble_since(&mark);
        if !trouble.is_empty() {
            let report = format!("panics or errors were logged: {trouble:#?}");
            outcome = match outcome {
                Ok(()) => Err(report),
                Err(why) => Err(format!("{why}; and {report}")),
            };
        }
        match (outcome, entry.waits_for) {
            (Ok(()), None) => {}
            (Err(why), None) => failures.push(format!("{}: {why}", entry.name)),
            (Err(_), Some(change)) => waiting.push(format!("{} (waits for {change})", entry.name)),
            (Ok(()), Some(change)) => failures.push(format!(
                "{}: passes now, so {change} has landed: remove its waits_for mark",
                entry.name
            )),
        }
    }
    println!(
        "{suite}: {} cases in {:.1} s, {} failed, {} waiting{}",
        total,
        started.elapsed().as_secs_f64(),
        failures.len(),
        waiting.len(),
        if waiting.is_empty() {
            String::new()
        } else {
            format!(": {}", waiting.join(", "))
        }
    );
    assert!(
        failures.is_empty(),
        "{suite}: {} of {} cases failed:\n{}",
        failures.len(),
        total,
        failures.join("\n")
    );
    waiting.len()
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a non-text panic".to_owned())
}

/// Every panic in this process and every ERROR (or panic) the services in
/// it log, from the moment [`Watch::install`] first runs.
///
/// Panics are seen by a process-wide hook (which then calls the previous
/// one, so their messages still print), whichever thread or task they hit:
/// a handler, a connection task, a live-feed task. Logs are seen by a
/// global `tracing` subscriber writing JSON lines to memory; a service in
/// this process logs through it like the binary logs to stderr.
#[derive(Clone)]
pub struct Watch {
    panics: Arc<Mutex<Vec<String>>>,
    logs: Arc<Mutex<Vec<u8>>>,
}

/// A point in a [`Watch`]'s record.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    panics: usize,
    log_bytes: usize,
}

impl Watch {
    /// The process's watch, installed on first use. Installs the global
    /// `tracing` subscriber: call it before anything else sets one.
    pub fn install() -> Watch {
        static WATCH: OnceLock<Watch> = OnceLock::new();
        WATCH
            .get_or_init(|| {
                let watch = Watch {
                    panics: Arc::default(),
                    logs: Arc::default(),
                };
                let panics = watch.panics.clone();
                let previous = std::panic::take_hook();
                std::panic::set_hook(Box::new(move |info| {
                    let thread = std::thread::current();
                    let text = format!("thread '{}' {info}", thread.name().unwrap_or("<unnamed>"));
                    if let Ok(mut panics) = panics.lock() {
                        panics.push(text);
                    }
                    previous(info);
                }));
                let logs = watch.logs.clone();
                let subscriber = tracing_subscriber::fmt()
                    .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
                    .with_writer(move || LogSink(logs.clone()))
                    .json()
                    .flatten_event(true)
                    .finish();
                // A test binary that set its own subscriber keeps it; then
                // only panics are watched.
                let _ = tracing::subscriber::set_global_default(subscriber);
                watch
            })
            .clone()
    }

    pub fn mark(&self) -> Mark {
        Mark {
            panics: self.panics.lock().map_or(0, |p| p.len()),
            log_bytes: self.logs.lock().map_or(0, |l| l.len()),
        }
    }

    /// Panics since `mark`, and log lines since `mark` at ERROR or that
    /// mention a panic.
    pub fn trouble_since(&self, mark: &Mark) -> Vec<String> {
        let mut trouble: Vec<String> = self
            .panics
            .lock()
            .map(|p| p[mark.panics.min(p.len())..].to_vec())
            .unwrap_or_default();
        trouble.extend(self.log_lines_since(mark).into_iter().filter(|line| {
            line.contains(r#""level":"ERROR""#) || line.to_ascii_lowercase().contains("panic")
        }));
        trouble
    }

    /// Every log line (JSON) since `mark`.
    pub fn log_lines_since(&self, mark: &Mark) -> Vec<String> {
        let logs = self.logs.lock().map(|l| l.clone()).unwrap_or_default();
        String::from_utf8_lossy(&logs[mark.log_bytes.min(logs.len())..])
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Every check's verdict at once: `Ok` if all passed, else every reason,
/// so a case whose answer was wrong still reports what it queued.
pub fn all(checks: impl IntoIterator<Item = Result<(), String>>) -> Result<(), String> {
    let failed: Vec<String> = checks.into_iter().filter_map(Result::err).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// The service at `addr` still answers `GET path` with 200.
pub async fn still_answers(addr: SocketAddr, path: &str) -> Result<(), String> {
    match crate::raw::send(addr, &request("GET", path, &[], b"")).await {
        Ok(answer) if answer.status == 200 => Ok(()),
        Ok(answer) => Err(format!("GET {path} afterwards: {}", answer.status_line)),
        Err(e) => Err(format!("GET {path} afterwards: no answer: {e}")),
    }
}
