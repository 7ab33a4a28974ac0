//! The vote service's abuse catalogue: hostile requests, one case each,
//! against the service in this process and a real Redis. Each case checks
//! its answer (or the close), that nothing was queued, that the service
//! still answers and that nothing panicked or logged an ERROR (see
//! [`testkit::abuse`]). The same cases, less the slow-client ones, are
//! then played against the real binary, whose log must stay clean. The
//! table in `docs/abuse.md` is generated from these cases and checked
//! against them (`catalogue`).
//!
//! Hostile inputs tested elsewhere, not repeated here: forged `Origin` and
//! `Referer` from another site (`vote.rs`,
//! `votes_posted_from_another_sites_page_are_refused_and_queue_nothing`),
//! a body announced over the limit with and without `100-continue`
//! (`a_body_announced_larger_than_the_limit_…`), thousands of made-up
//! methods and paths against the metrics (`made_up_methods_and_paths_…`),
//! and the first 4xx of each kind with its page text
//! (`bad_input_gets_a_readable_4xx_and_queues_nothing`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use contract::BallotChoices;
use contract::queue::{QUEUE_KEY, SEQ_KEY};
use servicekit::http::ServeOptions;
use testkit::abuse::{Case, Entry, HttpCase, Layer, check_catalogue, play_http, still_answers};

#[path = "abuse/cases.rs"]
mod cases;
use cases::cases;

/// Short limits, so slow clients are dealt with in a blink.
const OPTIONS: ServeOptions = ServeOptions {
    header_timeout: Duration::from_millis(300),
    first_byte_timeout: Duration::from_millis(300),
    max_connections: 16,
    max_connections_per_address: 0,
    drain_timeout: Duration::from_secs(1),
    request_timeout: Duration::from_millis(800),
    body_timeout: Duration::from_millis(400),
    max_head_bytes: servicekit::http::DEFAULT_MAX_HEAD_BYTES,
};

/// For a flood of idle connections from one address: timeouts of a
/// minute, so only the cap per address can let anyone else in.
const FLOOD_OPTIONS: ServeOptions = ServeOptions {
    header_timeout: Duration::from_secs(60),
    first_byte_timeout: Duration::from_secs(60),
    max_connections_per_address: 4,
    ..OPTIONS
};

/// The case list as the catalogue shows it.
fn entries() -> Vec<Entry> {
    cases().iter().map(Case::entry).collect()
}

#[test]
fn catalogue() {
    check_catalogue("vote", &entries());
}

/// Nothing in the queue and no `seq` taken.
async fn nothing_queued(redis: &testkit::TestRedis) -> Result<(), String> {
    let queued = redis.list(QUEUE_KEY).await;
    let mut conn = redis.conn().await;
    let seq: Option<String> = redis::cmd("GET")
        .arg(SEQ_KEY)
        .query_async(&mut conn)
        .await
        .unwrap();
    if queued.is_empty() && seq.is_none() {
        Ok(())
    } else {
        // Clean up so the next case starts from nothing.
        let _: () = redis::cmd("DEL")
            .arg(QUEUE_KEY)
            .arg(SEQ_KEY)
            .query_async(&mut conn)
            .await
            .unwrap();
        Err(format!("queued {queued:?} (votes:seq {seq:?})"))
    }
}

/// The watch is process-wide: the tests of this file that use it take
/// turns, so the self-check's panic never lands in another run's record.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn every_hostile_request_is_refused_and_queues_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    assert_a_panicking_handler_is_seen_by_the_checks().await;
    let redis = testkit::redis().await;
    let choices = BallotChoices {
        option_a: "Cats".to_owned(),
        option_b: "Dogs".to_owned(),
    };
    let serve = |options| {
        let state = vote::AppState::new(
            &servicekit::connect::Redis::at(&redis.url).unwrap(),
            &choices,
            "abuse".to_owned(),
        )
        .unwrap()
        .with_serve_options(options);
        testkit::Served::start(|listener, shutdown| vote::serve(listener, state, shutdown))
    };
    let served = serve(OPTIONS).await;
    let flood_served = serve(FLOOD_OPTIONS).await;
    let cases = cases();
    testkit::abuse::run("vote", cases, |case| {
        let redis = redis.clone();
        let addr = if case.floods_from_one_address() {
            flood_served.addr
        } else {
            served.addr
        };
        async move {
            testkit::abuse::all([
                play_http(addr, case).await,
                nothing_queued(&redis).await,
                still_answers(addr, "/healthz").await,
            ])
        }
    })
    .await;
}

/// The checks every case makes would catch a handler that panics: the
/// watch sees the panic, the service logs it at ERROR, and the client gets
/// a 500 (which no case expects) rather than a dropped connection. Run
/// before the cases, with the other runs of this file waiting their turn:
/// the watch is process-wide, and this panic must not land in another
/// case's record.
async fn assert_a_panicking_handler_is_seen_by_the_checks() {
    use axum::routing::get;
    let watch = testkit::abuse::Watch::install();
    let router = servicekit::http::with_standard_layers(
        axum::Router::new().route(
            "/boom",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("boom in a handler");
                }
                "never"
            }),
        ),
        Duration::from_secs(5),
    );
    let served = testkit::Served::start(|listener, shutdown| {
        servicekit::http::serve(listener, router, shutdown, OPTIONS)
    })
    .await;
    let mark = watch.mark();
    let answer = testkit::raw::send(
        served.addr,
        &testkit::raw::request("GET", "/boom", &[], b""),
    )
    .await;
    let trouble = watch.trouble_since(&mark);
    assert!(
        trouble.iter().any(|t| t.contains("boom in a handler")),
        "the watch missed the panic: {trouble:#?}"
    );
    let logged = watch.log_lines_since(&mark);
    assert!(
        logged
            .iter()
            .any(|l| l.contains(r#""level":"ERROR""#) && l.contains("boom in a handler")),
        "the service did not log the panic: {logged:#?}"
    );
    let answer = answer.expect("an answer, not a dropped connection");
    assert_eq!(answer.status, 500, "{answer:?}");
    answer.assert_security_headers("a handler's panic");
    assert!(!answer.text().contains("boom"), "{answer:?}");
}

/// The same catalogue against the real `vote` binary, where the process is
/// the point: its own logging set-up (JSON to stderr), its own defaults.
/// Slow-client cases are left to the in-process run, whose limits are
/// shortened; here every line the binary logs must be JSON, and none may be
/// an ERROR or mention a panic.
#[tokio::test]
async fn the_binary_refuses_the_catalogue_and_logs_no_panic() {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, BufReader};

    let _turn = ONE_AT_A_TIME.lock().await;
    let redis = testkit::redis().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vote"))
        .env("REDIS_URL", &redis.url)
        .env("PORT", port.to_string())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("ADMIN_PORT", "0")
        .env("ADMIN_BIND_ADDRESS", "127.0.0.1")
        .env("SHUTDOWN_DELAY_SECONDS", "0")
        .env("RUST_LOG", "info")
        .env("RUST_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push(line);
        }
        all
    });
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    testkit::eventually("the binary to listen", Duration::from_secs(30), || async {
        still_answers(addr, "/healthz").await.ok()
    })
    .await;

    let cases: Vec<HttpCase> = cases()
        .into_iter()
        .filter(|c| c.layer != Layer::SlowClients)
        .collect();
    // The watch sees this process, not the child: the child's log is
    // checked below.
    testkit::abuse::run("vote (binary)", cases, |case| {
        let redis = redis.clone();
        async move {
            testkit::abuse::all([
                play_http(addr, case).await,
                nothing_queued(&redis).await,
                still_answers(addr, "/healthz").await,
            ])
        }
    })
    .await;

    let pid = child.id().unwrap().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("vote stops within 10 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "vote exited with {status}");
    let log = log.await.unwrap();
    let bad: Vec<&String> = log
        .iter()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line).is_err()
                || line.contains(r#""level":"ERROR""#)
                || line.to_ascii_lowercase().contains("panic")
        })
        .collect();
    assert!(bad.is_empty(), "the binary logged: {bad:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains(r#""message":"vote stopped""#)),
        "{log:#?}"
    );
}
