//! The result service's hostile requests: the shared HTTP framing cases
//! aimed at the live feed's upgrade, hostile WebSocket handshakes, and
//! slow and idle clients.

use std::time::Duration;

use testkit::abuse::{Answer, HttpCase, Input, Layer, framing_cases};

use super::{FLOOD_OPTIONS, OPTIONS, effect, request, upgrade_with};

pub fn http_cases() -> Vec<HttpCase> {
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
            "websocket_key_too_short",
            WsHandshake,
            "`Sec-WebSocket-Key: short`",
            upgrade_with(&["Sec-WebSocket-Key: short"]),
            Status(400),
        ),
        c(
            "websocket_key_of_punctuation",
            WsHandshake,
            "`Sec-WebSocket-Key: !!!!`",
            upgrade_with(&["Sec-WebSocket-Key: !!!!"]),
            Status(400),
        ),
        c(
            "websocket_key_of_24_characters_not_base64",
            WsHandshake,
            "a 24-character key with `!` and `*` in it",
            upgrade_with(&["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j!*=="]),
            Status(400),
        ),
        c(
            "websocket_key_of_base64_but_not_16_bytes",
            WsHandshake,
            "a key that is base64 of 17 bytes",
            upgrade_with(&["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXM="]),
            Status(400),
        ),
        c(
            "websocket_key_of_1000_characters",
            WsHandshake,
            "a 1,000-character `Sec-WebSocket-Key`",
            upgrade_with(&[&format!("Sec-WebSocket-Key: {}", "A".repeat(1000))]),
            Status(400),
        ),
        c(
            "two_websocket_keys",
            WsHandshake,
            "two valid `Sec-WebSocket-Key` headers",
            upgrade_with(&[
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==",
            ]),
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
        HttpCase::idle_flood_from_one_address(
            FLOOD_OPTIONS.max_connections,
            FLOOD_OPTIONS.max_connections_per_address,
        ),
    ]);
    cases
}
