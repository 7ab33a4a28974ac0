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

use std::net::SocketAddr;
use std::time::Duration;

use servicekit::http::ServeOptions;
use testkit::abuse::{
    Answer, Case, Effect, Entry, HttpCase, Input, Layer, check_catalogue, framing_cases, play_http,
    still_answers, with_host,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short limits, so slow clients are dealt with in a blink.
const OPTIONS: ServeOptions = ServeOptions {
    header_timeout: Duration::from_millis(300),
    max_connections: 16,
    drain_timeout: Duration::from_secs(1),
    request_timeout: Duration::from_millis(800),
    body_timeout: Duration::from_millis(400),
    max_head_bytes: servicekit::http::DEFAULT_MAX_HEAD_BYTES,
};
/// Pings every 100 ms: a silent client is dropped after 200 ms.
const PING_INTERVAL_MS: u64 = 100;
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

fn http_cases() -> Vec<HttpCase> {
    use Answer::*;
    use Layer::*;
    let c = HttpCase::new;
    let mut cases = framing_cases(&effect());
    cases.extend([
        c(
            "no_sec_websocket_key",
            WsHandshake,
            "the upgrade without `Sec-WebSocket-Key`",
            upgrade_with(&["-Sec-WebSocket-Key"]),
            Status(400),
        ),
        c(
            "no_sec_websocket_version",
            WsHandshake,
            "the upgrade without `Sec-WebSocket-Version`",
            upgrade_with(&["-Sec-WebSocket-Version"]),
            Status(400),
        ),
        c(
            "websocket_version_8",
            WsHandshake,
            "`Sec-WebSocket-Version: 8`",
            upgrade_with(&["Sec-WebSocket-Version: 8"]),
            Status(400),
        ),
        c(
            "websocket_version_not_a_number",
            WsHandshake,
            "`Sec-WebSocket-Version: thirteen`",
            upgrade_with(&["Sec-WebSocket-Version: thirteen"]),
            Status(400),
        ),
        c(
            "no_upgrade_header",
            WsHandshake,
            "`Connection: Upgrade` without `Upgrade`",
            upgrade_with(&["-Upgrade"]),
            Status(400),
        ),
        c(
            "upgrade_to_another_protocol",
            WsHandshake,
            "`Upgrade: h2c`",
            upgrade_with(&["Upgrade: h2c"]),
            Status(400),
        ),
        c(
            "connection_without_the_upgrade_token",
            WsHandshake,
            "`Connection: keep-alive`",
            upgrade_with(&["Connection: keep-alive"]),
            Status(400),
        ),
        c(
            "upgrade_by_post",
            WsHandshake,
            "the upgrade headers on `POST /ws`",
            {
                let mut b = upgrade_with(&[]);
                b.splice(0..3, b"POST".iter().copied());
                b
            },
            Status(405),
        ),
        c(
            "upgrade_by_head",
            WsHandshake,
            "the upgrade headers on `HEAD /ws`",
            {
                let mut b = upgrade_with(&[]);
                b.splice(0..3, b"HEAD".iter().copied());
                b
            },
            Status(405),
        ),
        c(
            "upgrade_over_http_1_0",
            WsHandshake,
            "the upgrade in an HTTP/1.0 request",
            {
                let text = String::from_utf8(upgrade_with(&[]))
                    .unwrap()
                    .replace("HTTP/1.1", "HTTP/1.0");
                text.into_bytes()
            },
            Status(426),
        ),
        c(
            "upgrade_asked_of_the_page",
            WsHandshake,
            "the upgrade headers on `GET /` (the page, not a socket)",
            {
                let text = String::from_utf8(upgrade_with(&[]))
                    .unwrap()
                    .replace("GET /ws ", "GET / ");
                text.into_bytes()
            },
            Status(200),
        ),
        c(
            "origin_on_another_port",
            WsHandshake,
            "`Origin` with the service's host and another port",
            upgrade_with(&["Origin: http://127.0.0.1:1"]),
            Status(403),
        ),
        c(
            "origin_that_ends_like_the_host",
            WsHandshake,
            "`Origin: http://<own host>.evil.example`",
            upgrade_with(&["Origin: http://{host}.evil.example"]),
            Status(403),
        ),
        c(
            "origin_with_credentials",
            WsHandshake,
            "`Origin: http://user@<own host>`",
            upgrade_with(&["Origin: http://user@{host}"]),
            Status(403),
        ),
        c(
            "origin_empty",
            WsHandshake,
            "`Origin:` with an empty value",
            upgrade_with(&["Origin: "]),
            Status(403),
        ),
        c(
            "origin_not_a_url",
            WsHandshake,
            "`Origin: file://`",
            upgrade_with(&["Origin: file://"]),
            Status(403),
        ),
        c(
            "two_origins_one_of_them_ours",
            WsHandshake,
            "`Origin: http://evil.example` and the own origin",
            upgrade_with(&["Origin: http://evil.example", "Origin: http://{host}"]),
            Status(403),
        ),
        c(
            "foreign_referer_without_origin",
            WsHandshake,
            "`Referer: http://evil.example/` and no `Origin`",
            upgrade_with(&["Referer: http://evil.example/"]),
            Status(403),
        ),
        c(
            "same_site_fetch_from_a_foreign_origin",
            WsHandshake,
            "`Sec-Fetch-Site: same-site` with `Origin: http://evil.example`",
            upgrade_with(&["Sec-Fetch-Site: same-site", "Origin: http://evil.example"]),
            Status(403),
        ),
        c(
            "foreign_origin_without_a_host",
            WsHandshake,
            "no `Host`, `Origin: http://evil.example`",
            {
                let text = String::from_utf8(upgrade_with(&["Origin: http://evil.example"]))
                    .unwrap()
                    .replace("Host: {host}\r\n", "");
                text.into_bytes()
            },
            Status(403),
        ),
        c(
            "handshake_trickled_a_byte_at_a_time",
            SlowClients,
            "the upgrade one byte every 50 ms (slowloris)",
            Vec::new(),
            Closed {
                within: OPTIONS.header_timeout,
            },
        )
        .with_input(Input::Trickle {
            bytes: upgrade_with(&[]),
            every: Duration::from_millis(50),
        }),
        c(
            "half_a_handshake_then_silence",
            SlowClients,
            "`GET /ws HTTP/1.1` and half the headers, then nothing",
            Vec::new(),
            Closed {
                within: OPTIONS.header_timeout,
            },
        )
        .with_input(Input::Stall(
            b"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: web".to_vec(),
        )),
        c(
            "page_requests_never_read",
            SlowClients,
            "pipelined page requests until the service stops reading, no answer read",
            Vec::new(),
            OthersServed,
        )
        .with_input(Input::NeverReads {
            bytes: request("GET / HTTP/1.1", &[]),
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
    ]);
    cases
}

// ---------------------------------------------------------------------
// Frames after a good handshake.

/// How the live feed must end up after a client's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// The server ends the socket (with or without a close frame).
    Closed,
    /// The server still serves it: a ping with a payload gets its pong.
    StillServed,
}

/// A client that completes the handshake and then sends `bytes`.
#[derive(Debug, Clone)]
struct FrameCase {
    name: &'static str,
    layer: Layer,
    sends: &'static str,
    bytes: Vec<u8>,
    after: After,
}

impl Case for FrameCase {
    fn entry(&self) -> Entry {
        Entry {
            name: self.name,
            layer: self.layer,
            sends: self.sends.to_owned(),
            expect: match self.after {
                After::Closed => "the socket is closed; its slot is freed".to_owned(),
                After::StillServed => "ignored: the socket still answers pings".to_owned(),
            },
            waits_for: None,
        }
    }
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One client frame: FIN and RSV bits, opcode, masked payload (clients
/// must mask), with the length in the shortest form unless `length` says
/// otherwise.
fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame_with(fin, rsv, opcode, payload, true, None)
}

fn frame_with(
    fin: bool,
    rsv: u8,
    opcode: u8,
    payload: &[u8],
    masked: bool,
    length: Option<u64>,
) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match length.unwrap_or(payload.len() as u64) {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xa;

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

fn frame_cases() -> Vec<FrameCase> {
    use After::*;
    use Layer::WsFrames;
    let c = |name, sends, bytes: Vec<u8>, after| FrameCase {
        name,
        layer: WsFrames,
        sends,
        bytes,
        after,
    };
    let pings: Vec<u8> = (0..1000).flat_map(|_| frame(true, 0, PING, b"p")).collect();
    let empties: Vec<u8> = (0..1000)
        .flat_map(|_| frame(true, 0, BINARY, b""))
        .collect();
    vec![
        c(
            "binary_message",
            "a binary message",
            frame(true, 0, BINARY, b"\x00\x01"),
            StillServed,
        ),
        c(
            "unsolicited_pong",
            "a pong nobody asked for",
            frame(true, 0, PONG, b"x"),
            StillServed,
        ),
        c(
            "a_thousand_pings",
            "1,000 pings in one write",
            pings,
            StillServed,
        ),
        c(
            "a_thousand_empty_messages",
            "1,000 empty binary messages",
            empties,
            StillServed,
        ),
        c(
            "text_of_4_kib",
            "a 4,096-byte text message (the limit)",
            frame(true, 0, TEXT, &[b'x'; 4096]),
            StillServed,
        ),
        c(
            "unmasked_frame",
            "a text frame without a mask",
            frame_with(true, 0, TEXT, b"hi", false, None),
            Closed,
        ),
        c(
            "text_over_4_kib",
            "a 4,097-byte text frame",
            frame(true, 0, TEXT, &[b'x'; 4097]),
            Closed,
        ),
        c(
            "fragments_adding_up_past_4_kib",
            "a message in two 3,000-byte fragments",
            [
                frame(false, 0, TEXT, &[b'x'; 3000]),
                frame(true, 0, CONTINUATION, &[b'x'; 3000]),
            ]
            .concat(),
            Closed,
        ),
        c(
            "length_of_2_to_the_63",
            "a frame header announcing 2^63 − 1 bytes",
            frame_with(true, 0, BINARY, b"", true, Some(i64::MAX as u64)),
            Closed,
        ),
        c(
            "length_in_a_needlessly_long_form",
            "a 2-byte payload with a 64-bit length field (tolerated)",
            long_form_frame(),
            StillServed,
        ),
        c(
            "text_of_invalid_utf8",
            "a text message `\\xff\\xfe`",
            frame(true, 0, TEXT, b"\xff\xfe"),
            Closed,
        ),
        c(
            "continuation_without_a_start",
            "a continuation frame first",
            frame(true, 0, CONTINUATION, b"x"),
            Closed,
        ),
        c(
            "new_message_inside_a_fragmented_one",
            "a text fragment, then a new text frame",
            [frame(false, 0, TEXT, b"a"), frame(true, 0, TEXT, b"b")].concat(),
            Closed,
        ),
        c(
            "reserved_bit_set",
            "a text frame with RSV1 set (no extension agreed)",
            frame(true, 0b100, TEXT, b"x"),
            Closed,
        ),
        c(
            "reserved_data_opcode",
            "opcode 0x3",
            frame(true, 0, 0x3, b"x"),
            Closed,
        ),
        c(
            "reserved_control_opcode",
            "opcode 0xB",
            frame(true, 0, 0xb, b"x"),
            Closed,
        ),
        c(
            "ping_of_126_bytes",
            "a ping with a 126-byte payload (controls stop at 125)",
            frame(true, 0, PING, &[b'p'; 126]),
            Closed,
        ),
        c(
            "fragmented_ping",
            "a ping without FIN",
            frame(false, 0, PING, b"p"),
            Closed,
        ),
        c(
            "close_with_code_999",
            "a close frame with code 999",
            frame(true, 0, CLOSE, &close_payload(999, b"")),
            Closed,
        ),
        c(
            "close_with_a_one_byte_payload",
            "a close frame of one byte",
            frame(true, 0, CLOSE, b"\x03"),
            Closed,
        ),
        c(
            "close_with_an_invalid_utf8_reason",
            "a close frame whose reason is `\\xff`",
            frame(true, 0, CLOSE, &close_payload(1000, b"\xff")),
            Closed,
        ),
        c(
            "frames_after_the_close",
            "a close frame, then text frames",
            [
                frame(true, 0, CLOSE, &close_payload(1000, b"")),
                frame(true, 0, TEXT, b"late"),
                frame(true, 0, TEXT, b"later"),
            ]
            .concat(),
            Closed,
        ),
        c(
            "http_request_instead_of_a_frame",
            "`GET / HTTP/1.1` on the open socket",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Closed,
        ),
        c(
            "half_a_frame_header_then_silence",
            "one byte of a frame header, then nothing (no pongs)",
            vec![0x81],
            Closed,
        ),
    ]
}

/// A 2-byte binary frame whose length takes the 64-bit form (127, then
/// 2), where the 7-bit form was required.
fn long_form_frame() -> Vec<u8> {
    let mut rest = vec![0x80 | BINARY, 0x80 | 127];
    rest.extend_from_slice(&2u64.to_be_bytes());
    rest.extend_from_slice(&MASK);
    rest.extend(b"hi".iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    rest
}

/// One server frame: opcode and payload (servers never mask).
async fn read_frame(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
) -> std::io::Result<(u8, Vec<u8>)> {
    async fn need(stream: &mut TcpStream, pending: &mut Vec<u8>, n: usize) -> std::io::Result<()> {
        while pending.len() < n {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                got => pending.extend_from_slice(&chunk[..got]),
            }
        }
        Ok(())
    }
    need(stream, pending, 2).await?;
    let opcode = pending[0] & 0x0f;
    let (len, header) = match pending[1] & 0x7f {
        126 => {
            need(stream, pending, 4).await?;
            (u16::from_be_bytes([pending[2], pending[3]]) as usize, 4)
        }
        127 => {
            need(stream, pending, 10).await?;
            let mut n = [0u8; 8];
            n.copy_from_slice(&pending[2..10]);
            (u64::from_be_bytes(n) as usize, 10)
        }
        n => (n as usize, 2),
    };
    need(stream, pending, header + len).await?;
    let payload = pending[header..header + len].to_vec();
    pending.drain(..header + len);
    Ok((opcode, payload))
}

/// Plays a frame case: the handshake, the frames, then the check.
async fn play_frames(addr: SocketAddr, case: FrameCase) -> Result<(), String> {
    let mut conn = testkit::raw::RawConn::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    conn.send(&with_host(&upgrade_with(&[]), addr))
        .await
        .map_err(|e| e.to_string())?;
    let answer = conn
        .response(Duration::from_secs(5))
        .await
        .map_err(|e| format!("no answer to the handshake: {e}"))?;
    if answer.status != 101 {
        return Err(format!("the handshake got {answer:?}"));
    }
    let (mut stream, mut pending) = conn.into_parts();
    stream
        .write_all(&case.bytes)
        .await
        .map_err(|e| format!("sending the frames: {e}"))?;
    // What the server does next, within a deadline far longer than two
    // ping intervals.
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        if case.after == After::StillServed {
            let probe = frame(true, 0, PING, b"still there?");
            stream
                .write_all(&probe)
                .await
                .map_err(|e| format!("probe: {e}"))?;
        }
        loop {
            match read_frame(&mut stream, &mut pending).await {
                Err(_) => return Ok(After::Closed),
                Ok((CLOSE, _)) => return Ok(After::Closed),
                Ok((PONG, payload)) if payload == b"still there?" => return Ok(After::StillServed),
                Ok((PING, payload)) => {
                    // Answer the server's pings, as a live browser would.
                    let _ = stream.write_all(&frame(true, 0, PONG, &payload)).await;
                }
                Ok(_) => {} // tallies, pongs to our own pings
            }
        }
    })
    .await;
    match outcome {
        Ok(Ok(seen)) if seen == case.after => Ok(()),
        Ok(Ok(seen)) => Err(format!("expected {:?}, got {seen:?}", case.after)),
        Ok(Err(why)) => Err(why),
        Err(_) => Err(format!("expected {:?}, got neither within 5 s", case.after)),
    }
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

#[tokio::test]
async fn every_hostile_request_and_frame_is_refused_and_holds_no_slot() {
    testkit::abuse::Watch::install();
    let db = testkit::postgres().await;
    support::migrate(&db.pool).await;
    let settings = result::Settings {
        max_clients: MAX_CLIENTS,
        ping_interval_ms: PING_INTERVAL_MS,
        ..support::settings(&db.url)
    };
    let state = result::AppState::new(&settings)
        .unwrap()
        .with_serve_options(OPTIONS);
    let served = testkit::Served::start({
        let state = state.clone();
        |listener, shutdown| result::serve(listener, state, shutdown)
    })
    .await;
    let addr = served.addr;
    let after = |state: result::AppState| async move {
        [
            no_slot_held(&state).await,
            still_answers(addr, "/healthz").await,
        ]
    };
    testkit::abuse::run("result (HTTP)", http_cases(), |case| {
        let state = state.clone();
        async move {
            let played = play_http(addr, case).await;
            let [slots, alive] = after(state).await;
            testkit::abuse::all([played, slots, alive])
        }
    })
    .await;
    testkit::abuse::run("result (frames)", frame_cases(), |case| {
        let state = state.clone();
        async move {
            let played = play_frames(addr, case).await;
            let [slots, alive] = after(state).await;
            testkit::abuse::all([played, slots, alive])
        }
    })
    .await;
}
