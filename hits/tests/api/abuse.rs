//! The hit counter's abuse catalogue: hostile requests, one case each,
//! against the app in this process and a real Redis. Each case checks its
//! answer (or the close), that the count did not move, that the app still
//! answers and that nothing panicked or logged an ERROR (see
//! [`testkit::abuse`]); `docs/abuse.md` lists the cases (`catalogue`).
//!
//! Tested elsewhere, not repeated here: made-up methods and paths against
//! the metrics and the security headers (`hostile.rs`).

use std::time::Duration;

use servicekit::http::ServeOptions;
use testkit::abuse::{
    Answer, Case, Effect, Entry, HttpCase, Input, Layer, check_catalogue, framing_cases, play_http,
    still_answers,
};

use crate::helpers::stored_count;

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

/// The request that counts a visit, for the framing cases to corrupt.
fn effect() -> Effect {
    Effect {
        method: "GET",
        path: "/",
        headers: vec![("Accept", "text/plain")],
        body: b"",
    }
}

fn request(line: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{line}\r\nHost: {{host}}\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    if !body.is_empty() {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn cases() -> Vec<HttpCase> {
    use Answer::*;
    use Layer::*;
    let c = HttpCase::new;
    let mut cases = framing_cases(&effect());
    cases.extend([
        c(
            "post_to_the_counter",
            Framing,
            "`POST /` with a body",
            request(
                "POST / HTTP/1.1",
                &["Content-Type: text/plain"],
                b"hits=1000000",
            ),
            Status(405),
        ),
        c(
            "put_to_the_counter",
            Framing,
            "`PUT /` with a new count",
            request("PUT / HTTP/1.1", &[], b"1000000"),
            Status(405),
        ),
        c(
            "delete_the_counter",
            Framing,
            "`DELETE /`",
            request("DELETE / HTTP/1.1", &[], b""),
            Status(405),
        ),
        c(
            "the_redis_key_as_a_path",
            Framing,
            "`GET /hits`",
            request("GET /hits HTTP/1.1", &[], b""),
            Status(404),
        ),
        c(
            "redis_commands_as_a_path",
            Framing,
            "`GET /%0D%0ASET%20hits%200%0D%0A`",
            request("GET /%0D%0ASET%20hits%200%0D%0A HTTP/1.1", &[], b""),
            Status(404),
        ),
        c(
            "redis_protocol_instead_of_http",
            Framing,
            "`*1\\r\\n$4\\r\\nPING\\r\\n` (RESP)",
            b"*1\r\n$4\r\nPING\r\n\r\n".to_vec(),
            StatusThenClose(400),
        ),
        c(
            "silent_after_connecting",
            SlowClients,
            "connects and sends nothing",
            Vec::new(),
            Closed {
                within: OPTIONS.header_timeout,
            },
        )
        .with_input(Input::Stall(Vec::new())),
        c(
            "half_a_request_line_then_silence",
            SlowClients,
            "`GET / HT`, then nothing",
            Vec::new(),
            Closed {
                within: OPTIONS.header_timeout,
            },
        )
        .with_input(Input::Stall(b"GET / HT".to_vec())),
        c(
            "headers_trickled_a_byte_at_a_time",
            SlowClients,
            "the request one byte every 50 ms (slowloris)",
            Vec::new(),
            Closed {
                within: OPTIONS.header_timeout,
            },
        )
        .with_input(Input::Trickle {
            bytes: request("GET / HTTP/1.1", &["Accept: text/plain"], b""),
            every: Duration::from_millis(50),
        }),
        c(
            "idle_after_one_request",
            SlowClients,
            "a probe, then silence on the kept-alive connection",
            Vec::new(),
            StatusThenClose(200),
        )
        .with_input(Input::Stall(request("GET /healthz HTTP/1.1", &[], b""))),
        c(
            "never_reads_its_answers",
            SlowClients,
            "pipelined probes until the service stops reading, no answer read",
            Vec::new(),
            OthersServed,
        )
        .with_input(Input::NeverReads {
            bytes: request("GET /healthz HTTP/1.1", &[], b""),
            times: testkit::abuse::FLOOD_LIMIT,
        }),
        c(
            "every_connection_held_open_and_silent",
            SlowClients,
            "16 silent connections, the whole connection cap",
            Vec::new(),
            OthersServed,
        )
        .with_input(Input::HoldsEveryConnection {
            count: OPTIONS.max_connections,
        }),
        HttpCase::idle_flood_from_one_address(
            FLOOD_OPTIONS.max_connections,
            FLOOD_OPTIONS.max_connections_per_address,
        ),
    ]);
    cases
}

fn entries() -> Vec<Entry> {
    cases().iter().map(Case::entry).collect()
}

#[test]
fn catalogue() {
    check_catalogue("hits", &entries());
}

#[tokio::test]
async fn every_hostile_request_is_refused_and_counts_nothing() {
    testkit::abuse::Watch::install();
    let redis = testkit::redis().await;
    let serve = |options| {
        let state = hits::AppState::new(&servicekit::connect::Redis::at(&redis.url).unwrap())
            .unwrap()
            .with_serve_options(options);
        testkit::Served::start(|listener, shutdown| hits::serve(listener, state, shutdown))
    };
    let served = serve(OPTIONS).await;
    let flood_served = serve(FLOOD_OPTIONS).await;
    testkit::abuse::run("hits", cases(), |case| {
        let url = redis.url.clone();
        let addr = if case.floods_from_one_address() {
            flood_served.addr
        } else {
            served.addr
        };
        async move {
            let before = stored_count(&url).await;
            let played = play_http(addr, case).await;
            let after = stored_count(&url).await;
            let counted = if before == after {
                Ok(())
            } else {
                Err(format!("the count moved from {before:?} to {after:?}"))
            };
            testkit::abuse::all([played, counted, still_answers(addr, "/healthz").await])
        }
    })
    .await;
}
