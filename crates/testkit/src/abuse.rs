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

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use crate::raw::{RawConn, RawResponse, request};

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

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = self.0.lock() {
            logs.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------
// HTTP cases: raw bytes in, a status or a close out.

/// Replaced, in a case's bytes, by the service's own `host:port`.
pub const HOST: &str = "{host}";

/// What a client does in an HTTP case.
#[derive(Debug, Clone)]
pub enum Input {
    /// Sends these bytes at once ([`HOST`] replaced), then reads.
    Bytes(Vec<u8>),
    /// Sends the bytes and then shuts its sending side: no more is coming.
    BytesThenEof(Vec<u8>),
    /// Sends these bytes one at a time, `every` apart (a slowloris).
    Trickle { bytes: Vec<u8>, every: Duration },
    /// Sends these bytes and then nothing, keeping the connection open.
    Stall(Vec<u8>),
    /// Sends the bytes many times without reading a single answer, then
    /// checks another client is served meanwhile.
    NeverReads { bytes: Vec<u8>, times: usize },
    /// Opens `count` connections (the service's whole connection cap) and
    /// sends nothing on them, then checks another client is served once
    /// the service has timed them out.
    HoldsEveryConnection { count: usize },
}

/// What the service must do in an HTTP case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A final answer with this status (the connection may stay open).
    Status(u16),
    /// A final answer with this status, then the connection closed.
    StatusThenClose(u16),
    /// These final answers in order (pipelined requests).
    Statuses(Vec<u16>),
    /// The connection closed without a final answer, within `within`.
    Closed { within: Duration },
    /// The service served another client while this one misbehaved.
    OthersServed,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Status(s) => write!(f, "{s}"),
            Answer::StatusThenClose(s) => write!(f, "{s}, then the connection is closed"),
            Answer::Statuses(all) => match all.as_slice() {
                [first, rest @ ..] if rest.len() > 1 && rest.iter().all(|s| s == first) => {
                    write!(f, "{} answers, each {first}", all.len())
                }
                _ => {
                    let all: Vec<String> = all.iter().map(u16::to_string).collect();
                    write!(f, "{} in order", all.join(", "))
                }
            },
            Answer::Closed { within } => {
                write!(
                    f,
                    "connection closed, without an answer, once the {} ms limit is up",
                    within.as_millis()
                )
            }
            Answer::OthersServed => f.write_str("other clients are served meanwhile"),
        }
    }
}

/// One hostile HTTP client.
#[derive(Debug, Clone)]
pub struct HttpCase {
    pub name: &'static str,
    pub layer: Layer,
    pub sends: String,
    pub input: Input,
    pub answer: Answer,
    pub waits_for: Option<&'static str>,
}

impl HttpCase {
    /// A case whose client sends `bytes` at once.
    pub fn new(
        name: &'static str,
        layer: Layer,
        sends: &str,
        bytes: impl Into<Vec<u8>>,
        answer: Answer,
    ) -> HttpCase {
        HttpCase {
            name,
            layer,
            sends: sends.to_owned(),
            input: Input::Bytes(bytes.into()),
            answer,
            waits_for: None,
        }
    }

    pub fn with_input(mut self, input: Input) -> HttpCase {
        self.input = input;
        self
    }

    pub fn waiting_for(mut self, change: &'static str) -> HttpCase {
        self.waits_for = Some(change);
        self
    }
}

impl Case for HttpCase {
    fn entry(&self) -> Entry {
        Entry {
            name: self.name,
            layer: self.layer,
            sends: self.sends.clone(),
            expect: self.answer.to_string(),
            waits_for: self.waits_for,
        }
    }
}

/// `bytes` with every [`HOST`] replaced by `addr`.
pub fn with_host(bytes: &[u8], addr: SocketAddr) -> Vec<u8> {
    let needle = HOST.as_bytes();
    let host = addr.to_string();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(needle) {
            out.extend_from_slice(host.as_bytes());
            i += needle.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// How long a case waits for an answer the service should give at once.
const ANSWER_DEADLINE: Duration = Duration::from_secs(5);

/// Plays one HTTP case against the service at `addr`; `Err` says how the
/// service's behaviour differed from the case's [`Answer`]. Any 5xx the
/// case did not expect is named as such.
pub async fn play_http(addr: SocketAddr, case: HttpCase) -> Result<(), String> {
    let mut conn = RawConn::connect(addr)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let io = |e: std::io::Error| format!("{e}");
    match &case.input {
        Input::Bytes(bytes) | Input::Stall(bytes) => {
            conn.send(&with_host(bytes, addr)).await.map_err(io)?
        }
        Input::BytesThenEof(bytes) => {
            conn.send(&with_host(bytes, addr)).await.map_err(io)?;
            conn.shutdown_write().await.map_err(io)?;
        }
        Input::Trickle { bytes, every } => {
            let started = Instant::now();
            for byte in with_host(bytes, addr) {
                if conn.send(&[byte]).await.is_err() {
                    // The service hung up on the slow client: what a
                    // `Closed` case expects.
                    break;
                }
                tokio::time::sleep(*every).await;
                if started.elapsed() > CASE_DEADLINE / 2 {
                    break;
                }
            }
        }
        Input::NeverReads { bytes, times } => {
            let bytes = with_host(bytes, addr);
            let flood = async {
                for _ in 0..*times {
                    if conn.send(&bytes).await.is_err() {
                        break;
                    }
                }
            };
            // The flood blocks once the buffers fill; the service must
            // serve someone else meanwhile.
            let other = async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                crate::raw::send(addr, &request("GET", "/healthz", &[], b"")).await
            };
            let (_, other) =
                tokio::join!(tokio::time::timeout(Duration::from_secs(3), flood), other);
            return match other {
                Ok(answer) if answer.status == 200 => Ok(()),
                Ok(answer) => Err(format!("another client got {}", answer.status_line)),
                Err(e) => Err(format!("another client got no answer: {e}")),
            };
        }
        Input::HoldsEveryConnection { count } => {
            let mut held = vec![conn];
            for _ in 1..*count {
                held.push(RawConn::connect(addr).await.map_err(io)?);
            }
            // Accepted once a held connection times out; the read deadline
            // is far beyond any header timeout a suite sets.
            let other = crate::raw::send(addr, &request("GET", "/healthz", &[], b"")).await;
            drop(held);
            return match other {
                Ok(answer) if answer.status == 200 => Ok(()),
                Ok(answer) => Err(format!("the next client got {}", answer.status_line)),
                Err(e) => Err(format!("the next client got no answer: {e}")),
            };
        }
    }
    // The answer to a HEAD has no body, whatever its length says.
    let head = match &case.input {
        Input::Bytes(b) | Input::BytesThenEof(b) | Input::Stall(b) => b.starts_with(b"HEAD "),
        _ => false,
    };
    match &case.answer {
        Answer::Status(status) => expect_status(&mut conn, *status, head).await.map(drop),
        Answer::StatusThenClose(status) => {
            expect_status(&mut conn, *status, head).await?;
            if conn.closed_within(ANSWER_DEADLINE).await {
                Ok(())
            } else {
                Err(format!("the connection stayed open after the {status}"))
            }
        }
        Answer::Statuses(statuses) => {
            for (i, status) in statuses.iter().enumerate() {
                expect_status(&mut conn, *status, head)
                    .await
                    .map_err(|why| format!("answer {}: {why}", i + 1))?;
            }
            Ok(())
        }
        Answer::Closed { within } => {
            let started = Instant::now();
            // Whatever the service says before closing is read and must
            // not be a final answer.
            let closed = conn.closed_within(*within + Duration::from_secs(2)).await;
            let took = started.elapsed();
            let said = conn.pending_text();
            if !closed {
                Err(format!("still open {took:?} later; it said {said:?}"))
            } else if said.starts_with("HTTP/1.1 ") && !said.starts_with("HTTP/1.1 1") {
                Err(format!("closed, but after a final answer: {said:?}"))
            } else {
                Ok(())
            }
        }
        Answer::OthersServed => Ok(()),
    }
}

/// Reads the next final answer and checks its status.
async fn expect_status(conn: &mut RawConn, status: u16, head: bool) -> Result<RawResponse, String> {
    loop {
        let answer = if head {
            conn.head_response(ANSWER_DEADLINE).await
        } else {
            conn.response(ANSWER_DEADLINE).await
        };
        let answer = answer.map_err(|e| format!("expected {status}, got no answer: {e}"))?;
        // 101 ends HTTP on this connection: it is the last answer.
        if answer.is_interim() && answer.status != 101 {
            continue;
        }
        if answer.status == status {
            return Ok(answer);
        }
        let unexpected_5xx = if answer.status >= 500 { " (a 5xx)" } else { "" };
        return Err(format!("expected {status}, got {answer:?}{unexpected_5xx}"));
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

// ---------------------------------------------------------------------
// The catalogue in docs/abuse.md.

/// The documentation file that holds every service's table.
pub fn catalogue_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/abuse.md"))
}

/// The Markdown table of `entries`, in the order given, after a line
/// counting them per layer.
pub fn render_table(entries: &[Entry]) -> String {
    let layers: Vec<String> = per_layer(entries)
        .into_iter()
        .map(|(layer, n)| format!("{} {n}", layer.title()))
        .collect();
    let mut out = format!(
        "{} cases: {}.\n\n| layer | case | sent | expected |\n| --- | --- | --- | --- |\n",
        entries.len(),
        layers.join(", ")
    );
    for e in entries {
        let waits = e
            .waits_for
            .map(|change| format!(" *(waits for {change})*"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | `{}`{waits} | {} | {} |",
            e.layer.title(),
            e.name,
            cell(&e.sends),
            cell(&e.expect)
        );
    }
    out
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Checks the catalogue of `service`: names unique and `snake_case`, and
/// the table between `<!-- cases: service -->` and
/// `<!-- end cases: service -->` in `docs/abuse.md` equal to the rendered
/// entries. With `ABUSE_DOC=write` in the environment, rewrites that
/// section instead.
pub fn check_catalogue(service: &str, entries: &[Entry]) {
    let mut seen = std::collections::BTreeSet::new();
    for e in entries {
        assert!(
            seen.insert(e.name),
            "{service}: case name {:?} twice",
            e.name
        );
        assert!(
            !e.name.is_empty()
                && e.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{service}: case name {:?} is not snake_case",
            e.name
        );
    }
    let path = catalogue_path();
    let doc = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let begin = format!("<!-- cases: {service} -->\n");
    let end = format!("<!-- end cases: {service} -->");
    let start = doc
        .find(&begin)
        .unwrap_or_else(|| panic!("{} has no line {begin:?}", path.display()))
        + begin.len();
    let stop = start
        + doc[start..]
            .find(&end)
            .unwrap_or_else(|| panic!("{} has no line {end:?}", path.display()));
    let table = render_table(entries);
    if std::env::var("ABUSE_DOC").is_ok_and(|v| v == "write") {
        let updated = format!("{}{table}{}", &doc[..start], &doc[stop..]);
        std::fs::write(&path, updated)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    assert!(
        doc[start..stop] == table,
        "the {service} table in docs/abuse.md disagrees with the cases in the code; \
         `ABUSE_DOC=write cargo test -p <crate> --test abuse catalogue` rewrites it \
         (hits: `--test api abuse::catalogue`).\n\
         In the file:\n{}\nFrom the code:\n{table}",
        &doc[start..stop]
    );
}

/// Counts of `entries` per layer, in the order of [`Layer`].
pub fn per_layer(entries: &[Entry]) -> Vec<(Layer, usize)> {
    let mut counts: std::collections::BTreeMap<Layer, usize> = Default::default();
    for e in entries {
        *counts.entry(e.layer).or_default() += 1;
    }
    counts.into_iter().collect()
}

// ---------------------------------------------------------------------
// Framing cases any of our HTTP services must refuse.

/// The one request of a service that changes something (vote: a ballot
/// posted; hits: a visit counted; result: a live-feed slot taken), to be
/// corrupted by [`framing_cases`].
#[derive(Debug, Clone)]
pub struct Effect {
    pub method: &'static str,
    pub path: &'static str,
    /// Headers besides `Host` (which is the service's own) and
    /// `Content-Length` (added for a body).
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: &'static [u8],
}

impl Effect {
    /// The request as a well-behaved client sends it.
    pub fn bytes(&self) -> Vec<u8> {
        self.bytes_with(
            &format!("{} {} HTTP/1.1", self.method, self.path),
            &[],
            None,
        )
    }

    /// The request with another request line, extra header lines (raw,
    /// without line ends) and, if given, another `Content-Length` line.
    pub fn bytes_with(&self, line: &str, extra: &[&str], length: Option<&str>) -> Vec<u8> {
        let mut out = format!("{line}\r\nHost: {HOST}\r\n");
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        for header in extra {
            let _ = write!(out, "{header}\r\n");
        }
        match length {
            Some(length) => {
                let _ = write!(out, "{length}\r\n");
            }
            None if !self.body.is_empty() => {
                let _ = write!(out, "Content-Length: {}\r\n", self.body.len());
            }
            None => {}
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(self.body);
        out
    }

    fn line_with(&self, method: &str, path: &str, version: &str) -> String {
        format!("{method} {path} {version}")
    }
}

/// Corruptions of the request line, the header syntax and the length
/// framing of `effect`: each is refused before any handler runs (or
/// answered by the router without effect), so it changes nothing.
pub fn framing_cases(effect: &Effect) -> Vec<HttpCase> {
    use Answer::*;
    use Layer::Framing;
    let (m, p) = (effect.method, effect.path);
    let ok_line = effect.line_with(m, p, "HTTP/1.1");
    let line = |l: &str| effect.bytes_with(l, &[], None);
    let header = |h: &str| effect.bytes_with(&ok_line, &[h], None);
    let length = |l: &str| effect.bytes_with(&ok_line, &[], Some(l));
    let mut many_headers: Vec<String> = (0..120).map(|i| format!("X-Filler-{i}: {i}")).collect();
    many_headers.push(String::new());
    let many_headers: Vec<&str> = many_headers
        .iter()
        .map(String::as_str)
        .filter(|h| !h.is_empty())
        .collect();
    let huge_header = format!("X-Huge: {}", "h".repeat(512 * 1024));
    let long_target = format!("{p}?{}", "q".repeat(600 * 1024));
    let pipelined: Vec<u8> = (0..100)
        .flat_map(|_| effect.bytes_with(&effect.line_with("BREW", p, "HTTP/1.1"), &[], None))
        .collect();
    vec![
        HttpCase::new(
            "tls_handshake_bytes_instead_of_http",
            Framing,
            "the first bytes of a TLS ClientHello",
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
            StatusThenClose(400),
        ),
        HttpCase::new(
            "request_line_without_a_version",
            Framing,
            "`M /path` with no `HTTP/1.1` (HTTP/0.9 style)",
            line(&format!("{m} {p}")),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "version_http_2_over_plain_text",
            Framing,
            "`HTTP/2.0` in an HTTP/1 request line",
            line(&effect.line_with(m, p, "HTTP/2.0")),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "version_http_1_9",
            Framing,
            "`HTTP/1.9`",
            line(&effect.line_with(m, p, "HTTP/1.9")),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "version_in_lower_case",
            Framing,
            "`http/1.1`",
            line(&effect.line_with(m, p, "http/1.1")),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "two_spaces_in_the_request_line",
            Framing,
            "`M  /path HTTP/1.1`",
            line(&format!("{m}  {p} HTTP/1.1")),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "tabs_in_the_request_line",
            Framing,
            "`M\\t/path\\tHTTP/1.1`",
            line(&format!("{m}\t{p}\tHTTP/1.1")),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "method_in_lower_case",
            Framing,
            "the method in lower case (a different, unknown method)",
            line(&effect.line_with(&m.to_ascii_lowercase(), p, "HTTP/1.1")),
            Status(405),
        ),
        HttpCase::new(
            "method_made_up",
            Framing,
            "`BREW`",
            line(&effect.line_with("BREW", p, "HTTP/1.1")),
            Status(405),
        ),
        HttpCase::new(
            "method_with_a_nul_byte",
            Framing,
            "`PO\\0ST`",
            line(&effect.line_with("PO\0ST", p, "HTTP/1.1")),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "method_of_non_ascii_bytes",
            Framing,
            "a method of UTF-8 letters",
            line(&effect.line_with("VÖTE", p, "HTTP/1.1")),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "target_asterisk",
            Framing,
            "`M * HTTP/1.1` (asterisk form)",
            line(&effect.line_with(m, "*", "HTTP/1.1")),
            Status(404),
        ),
        HttpCase::new(
            "target_without_a_leading_slash",
            Framing,
            "`M no-slash HTTP/1.1`",
            line(&effect.line_with(m, "no-slash", "HTTP/1.1")),
            Status(404),
        ),
        HttpCase::new(
            "target_with_a_raw_non_ascii_byte",
            Framing,
            "a target with an unencoded `é`",
            line(&effect.line_with(m, &format!("{p}é"), "HTTP/1.1")),
            Status(404),
        ),
        HttpCase::new(
            "target_of_600_kib",
            Framing,
            "a 600 KiB query string",
            line(&effect.line_with(m, &long_target, "HTTP/1.1")),
            StatusThenClose(431),
        ),
        HttpCase::new(
            "target_with_dot_segments_elsewhere",
            Framing,
            "`/static/../../etc/passwd`",
            line(&effect.line_with(m, "/static/../../etc/passwd", "HTTP/1.1")),
            Status(404),
        ),
        HttpCase::new(
            "target_with_an_encoded_nul",
            Framing,
            "`/%00`",
            line(&effect.line_with(m, "/%00", "HTTP/1.1")),
            Status(404),
        ),
        HttpCase::new(
            "header_line_without_a_colon",
            Framing,
            "a header line `Nonsense`",
            header("Nonsense"),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "header_name_with_a_space",
            Framing,
            "`Bad Name: x`",
            header("Bad Name: x"),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "header_name_with_non_ascii_letters",
            Framing,
            "`Nämé: x`",
            header("Nämé: x"),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "header_folded_over_two_lines",
            Framing,
            "an obsolete folded header (`X-A: 1` then ` 2`)",
            header("X-A: 1\r\n 2"),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "header_value_with_a_nul_byte",
            Framing,
            "`X-A: a\\0b`",
            header("X-A: a\0b"),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "header_value_with_a_bare_cr",
            Framing,
            "`X-A: a\\rb`",
            header("X-A: a\rb"),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "header_value_with_a_control_byte",
            Framing,
            "`X-A: a\\x01b`",
            header("X-A: a\x01b"),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "one_hundred_and_twenty_headers",
            Framing,
            "120 header lines",
            effect.bytes_with(&ok_line, &many_headers, None),
            StatusThenClose(431),
        ),
        HttpCase::new(
            "one_header_of_512_kib",
            Framing,
            "a 512 KiB header value",
            header(&huge_header),
            StatusThenClose(431),
        ),
        HttpCase::new(
            "content_length_not_a_number",
            Framing,
            "`Content-Length: six`",
            length("Content-Length: six"),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "content_length_negative",
            Framing,
            "`Content-Length: -1`",
            length("Content-Length: -1"),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "content_length_with_a_plus_sign",
            Framing,
            "`Content-Length: +6`",
            length(&format!("Content-Length: +{}", effect.body.len())),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "content_length_beyond_64_bits",
            Framing,
            "`Content-Length: 99999999999999999999999`",
            length("Content-Length: 99999999999999999999999"),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "content_lengths_that_disagree",
            Framing,
            "two `Content-Length` headers, 6 and 7",
            length(&format!(
                "Content-Length: {}\r\nContent-Length: {}",
                effect.body.len(),
                effect.body.len() + 1
            )),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "transfer_encoding_not_ending_in_chunked",
            Framing,
            "`Transfer-Encoding: gzip`",
            length("Transfer-Encoding: gzip"),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "transfer_encoding_on_http_1_0",
            Framing,
            "`Transfer-Encoding: chunked` in an HTTP/1.0 request",
            effect.bytes_with(
                &effect.line_with(m, p, "HTTP/1.0"),
                &[],
                Some("Transfer-Encoding: chunked"),
            ),
            StatusThenClose(400),
        ),
        HttpCase::new(
            "one_hundred_pipelined_unknown_methods",
            Framing,
            "100 `BREW` requests in one write",
            pipelined,
            Statuses(vec![405; 100]),
        ),
    ]
}
