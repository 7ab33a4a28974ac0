//! The result service's abuse catalogue: hostile requests to its pages and
//! hostile WebSocket handshakes and frames on its live feed, one case
//! each, against the service in this process and a real Postgres. Each
//! case checks its answer (a status, the socket closed, or the socket
//! still serving), that no live-feed slot is left held, that the service
//! still answers and that nothing panicked or logged an ERROR (see
//! [`testkit::abuse`]); `docs/abuse.md` lists the cases (`catalogue`).
//!
//! Tested elsewhere, not repeated here: upgrades from another site's page
//! (`live.rs`, `the_live_feed_refuses_upgrades_from_other_sites_pages`), a
//! full feed and the per-address cap, a client that never answers pings
//! (`a_client_that_never_answers_is_disconnected`), text from a client
//! (`idle_clients_are_pinged_and_stay_connected`), a plain GET of `/ws`
//! (`page.rs`), and made-up methods and paths against the metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "abuse/flood.rs"]
mod flood;
#[path = "abuse/frames.rs"]
mod frames;
#[path = "abuse/requests.rs"]
mod requests;

use std::alloc::System;
use std::time::Duration;

use cap::Cap;
use servicekit::http::ServeOptions;
use testkit::abuse::{Case, Effect, Entry, check_catalogue, play_http, still_answers};

use frames::{frame_cases, play_frames};
use requests::http_cases;

/// Counts this process's live heap bytes: the service runs in it, so a case
/// can check what a client made it hold.
#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

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
/// Pings every 100 ms: a silent client is dropped after 200 ms.
const PING_INTERVAL_MS: u64 = 100;
/// That, and a send that takes over 500 ms drops the client.
const LIVE: result::live::LiveOptions = result::live::LiveOptions {
    ping_interval: Duration::from_millis(PING_INTERVAL_MS),
    send_timeout: Duration::from_millis(500),
};
/// For flooding clients, a second service pings at the production
/// interval: with pings every 100 ms, the server's own ping, stuck behind
/// what the client does not read, would drop it before anything else is
/// tested.
const FLOOD_LIVE: result::live::LiveOptions = result::live::LiveOptions {
    ping_interval: Duration::from_secs(20),
    ..LIVE
};
const MAX_CLIENTS: u32 = 50;

const UPGRADE: [&str; 4] = [
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
];

/// The request that takes a live-feed slot, for the framing cases.
fn effect() -> Effect {
    Effect {
        method: "GET",
        path: "/ws",
        headers: vec![
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        body: b"",
    }
}

/// A request with this request line and these header lines (`Host` is
/// the service's own unless given).
fn request(line: &str, headers: &[&str]) -> Vec<u8> {
    let mut out = format!("{line}\r\n");
    if !headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("host:"))
    {
        out.push_str("Host: {host}\r\n");
    }
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The browser's upgrade with one header line changed or added: lines
/// naming a header of [`UPGRADE`] replace it, an empty value removes it.
fn upgrade_with(changes: &[&str]) -> Vec<u8> {
    let name = |h: &str| {
        h.trim_start_matches('-')
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    let mut headers: Vec<String> = UPGRADE
        .iter()
        .filter(|u| !changes.iter().any(|c| name(c) == name(u)))
        .map(|u| (*u).to_owned())
        .collect();
    headers.extend(
        changes
            .iter()
            .filter(|c| !c.starts_with('-'))
            .map(|c| (*c).to_owned()),
    );
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    request("GET /ws HTTP/1.1", &headers)
}

fn entries() -> Vec<Entry> {
    http_cases()
        .iter()
        .map(Case::entry)
        .chain(frame_cases().iter().map(Case::entry))
        .collect()
}

#[test]
fn catalogue() {
    check_catalogue("result", &entries());
}

/// Every live-feed slot is free again (a closed socket gives its slot back
/// as soon as its task sees the end).
async fn no_slot_held(state: &result::AppState) -> Result<(), String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let free = state.free_client_slots();
        if free == MAX_CLIENTS as usize {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "{} live-feed slots still held",
                MAX_CLIENTS as usize - free
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A result service in this process with these limits and `live`.
async fn serve(
    db_url: &str,
    options: ServeOptions,
    live: result::live::LiveOptions,
) -> (Served, result::AppState) {
    let settings = result::Settings {
        max_clients: MAX_CLIENTS,
        ..support::settings(db_url)
    };
    let state = result::AppState::new(&settings)
        .with_serve_options(options)
        .with_live_options(live);
    let served = testkit::Served::start({
        let state = state.clone();
        |listener, shutdown| result::serve(listener, state, shutdown)
    })
    .await;
    (served, state)
}

type Served = testkit::Served<std::io::Error>;

#[tokio::test]
async fn every_hostile_request_and_frame_is_refused_and_holds_no_slot() {
    testkit::abuse::Watch::install();
    let db = testkit::postgres().await;
    support::migrate(&db.pool).await;
    let (served, state) = serve(&db.url, OPTIONS, LIVE).await;
    let (flood_served, flood_state) = serve(&db.url, FLOOD_OPTIONS, FLOOD_LIVE).await;
    let after = |addr, state: result::AppState| async move {
        [
            no_slot_held(&state).await,
            still_answers(addr, "/healthz").await,
        ]
    };
    let addr = served.addr;
    testkit::abuse::run("result (HTTP)", http_cases(), |case| {
        let (addr, state) = if case.floods_from_one_address() {
            (flood_served.addr, flood_state.clone())
        } else {
            (addr, state.clone())
        };
        async move {
            let played = play_http(addr, case).await;
            let [slots, alive] = after(addr, state).await;
            testkit::abuse::all([played, slots, alive])
        }
    })
    .await;
    testkit::abuse::run("result (frames)", frame_cases(), |case| {
        let (addr, state) = if case.floods() {
            (flood_served.addr, flood_state.clone())
        } else {
            (addr, state.clone())
        };
        async move {
            let played = play_frames(addr, case).await;
            let [slots, alive] = after(addr, state).await;
            testkit::abuse::all([played, slots, alive])
        }
    })
    .await;
}
