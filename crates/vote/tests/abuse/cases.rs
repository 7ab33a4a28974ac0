//! The vote service's hostile requests: the shared HTTP framing cases
//! aimed at a vote, and hostile headers, bodies, form values, cookies and
//! slow clients.

use std::time::Duration;

use testkit::abuse::{Answer, Effect, HttpCase, Input, Layer, framing_cases};

use super::{FLOOD_OPTIONS, OPTIONS};

/// A well-formed voter cookie, so only the thing under test is wrong.
const COOKIE: &str = "Cookie: voter_id=00000000000ab05e";
const FORM: &str = "Content-Type: application/x-www-form-urlencoded";

/// The request that queues a ballot, for the framing cases to corrupt.
fn effect() -> Effect {
    Effect {
        method: "POST",
        path: "/",
        headers: vec![
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", "voter_id=00000000000ab05e"),
        ],
        body: b"vote=a",
    }
}

/// `POST /` from the service's own host with these header lines and body
/// (a `Content-Length` is added unless the headers set the framing).
fn post(headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = String::from("POST / HTTP/1.1\r\nHost: {host}\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    let framed = headers.iter().any(|h| {
        let h = h.to_ascii_lowercase();
        h.starts_with("content-length:") || h.starts_with("transfer-encoding:")
    });
    if !framed {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A vote form with a good cookie and this body.
fn form(body: &[u8]) -> Vec<u8> {
    post(&[FORM, COOKIE], body)
}

/// A vote with a good form and this `Cookie` header value.
fn with_cookie(cookie: &[u8]) -> Vec<u8> {
    let mut head = b"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nCookie: ".to_vec();
    head.extend_from_slice(cookie);
    head.extend_from_slice(b"\r\nContent-Length: 6\r\n\r\nvote=a");
    head
}

/// A good vote with this one extra header line.
fn with_header(header: &str) -> Vec<u8> {
    post(&[FORM, COOKIE, header], b"vote=a")
}

pub fn cases() -> Vec<HttpCase> {
    use Answer::*;
    use Layer::*;
    let c = HttpCase::new;
    let mut cases = framing_cases(&effect());
    let long_value = format!("vote={}", "a".repeat(1000));
    let many_fields = "x=1&".repeat(250);
    let ampersands = "&".repeat(1000);
    let nested = format!("vote[{}]=a", "[".repeat(500));
    let junk_cookies: String = (0..400).map(|i| format!("c{i}=v{i}; ")).collect();
    let junk_cookies = format!("Cookie: {junk_cookies}voter_id=; x=y");
    let long_id = format!("voter_id={}", "f".repeat(256));
    cases.extend([
        // Framing the vote form's body.
        c(
            "chunk_size_that_is_not_hex",
            Bodies,
            "`Transfer-Encoding: chunked` with a chunk size `zz`",
            post(&[FORM, COOKIE, "Transfer-Encoding: chunked"], b"zz\r\nvote=a\r\n0\r\n\r\n"),
            StatusThenClose(400),
        ),
        c(
            "chunk_size_beyond_64_bits",
            Bodies,
            "a chunk size of 20 hex digits",
            post(
                &[FORM, COOKIE, "Transfer-Encoding: chunked"],
                b"ffffffffffffffffffff\r\nvote=a\r\n0\r\n\r\n",
            ),
            StatusThenClose(400),
        ),
        c(
            "chunks_adding_up_past_the_limit",
            Bodies,
            "three chunks of 500 bytes",
            post(
                &[FORM, COOKIE, "Transfer-Encoding: chunked"],
                format!(
                    "6\r\nvote=a\r\n{0}\r\n{1}\r\n{0}\r\n{1}\r\n{0}\r\n{1}\r\n0\r\n\r\n",
                    "1f4",
                    "&".repeat(500)
                )
                .as_bytes(),
            ),
            Status(413),
        ),
        c(
            "chunked_body_cut_before_the_last_chunk",
            Bodies,
            "a chunked `vote=a` without the final `0` chunk, then end of stream",
            post(&[FORM, COOKIE, "Transfer-Encoding: chunked"], b"6\r\nvote=a\r\n"),
            StatusThenClose(400),
        )
        .with_input(Input::BytesThenEof(post(
            &[FORM, COOKIE, "Transfer-Encoding: chunked"],
            b"6\r\nvote=a\r\n",
        ))),
        c(
            "body_shorter_than_its_content_length",
            Bodies,
            "`Content-Length: 6` and `vot`, then end of stream",
            Vec::new(),
            StatusThenClose(400),
        )
        .with_input(Input::BytesThenEof(post(
            &[FORM, COOKIE, "Content-Length: 6"],
            b"vot",
        ))),
        c(
            "body_of_1025_bytes",
            Bodies,
            "`vote=a` padded to one byte over the 1 KiB limit",
            form(format!("vote=a&x={}", "y".repeat(1025 - 9)).as_bytes()),
            Status(413),
        ),
        c(
            "content_length_zero_with_the_vote_after_it",
            Bodies,
            "`Content-Length: 0`, then `vote=a` (read as the next request)",
            post(&[FORM, COOKIE, "Content-Length: 0"], b"vote=a"),
            Statuses(vec![400, 400]),
        ),
        c(
            "chunked_and_content_length_together",
            Bodies,
            "both `Transfer-Encoding: chunked` and `Content-Length: 6`, body `0` chunk then `vote=a`",
            post(
                &[FORM, COOKIE, "Transfer-Encoding: chunked", "Content-Length: 6"],
                b"0\r\n\r\nvote=a",
            ),
            StatusThenClose(400),
        ),
        // The vote form's fields and values.
        c("vote_c", FormValues, "`vote=c`", form(b"vote=c"), Status(400)),
        c("vote_in_upper_case", FormValues, "`vote=A`", form(b"vote=A"), Status(400)),
        c("vote_empty", FormValues, "`vote=`", form(b"vote="), Status(400)),
        c("vote_without_equals", FormValues, "`vote`", form(b"vote"), Status(400)),
        c("value_without_a_name", FormValues, "`=a`", form(b"=a"), Status(400)),
        c("field_name_in_upper_case", FormValues, "`VOTE=a`", form(b"VOTE=a"), Status(400)),
        c("field_name_with_brackets", FormValues, "`vote[]=a`", form(b"vote[]=a"), Status(400)),
        c("field_name_deeply_nested", FormValues, "`vote[[[[…]=a` (500 brackets)", form(nested.as_bytes()), Status(400)),
        c("vote_ab", FormValues, "`vote=ab`", form(b"vote=ab"), Status(400)),
        c("vote_with_a_leading_space", FormValues, "`vote=%20a`", form(b"vote=%20a"), Status(400)),
        c("vote_with_a_trailing_plus", FormValues, "`vote=a+` (a space)", form(b"vote=a+"), Status(400)),
        c("vote_with_an_encoded_nul", FormValues, "`vote=a%00`", form(b"vote=a%00"), Status(400)),
        c("vote_with_a_raw_nul", FormValues, "`vote=a\\0`", form(b"vote=a\0"), Status(400)),
        c("vote_of_invalid_utf8", FormValues, "`vote=%ff`", form(b"vote=%ff"), Status(400)),
        c("vote_with_raw_invalid_utf8", FormValues, "`vote=\\xff`", form(b"vote=\xff"), Status(400)),
        c("vote_with_a_broken_escape", FormValues, "`vote=%zz`", form(b"vote=%zz"), Status(400)),
        c("vote_with_a_semicolon_separator", FormValues, "`vote=a;vote=b`", form(b"vote=a;vote=b"), Status(400)),
        c("vote_twice_the_same", FormValues, "`vote=a&vote=a`", form(b"vote=a&vote=a"), Status(400)),
        c("vote_then_an_empty_vote", FormValues, "`vote=b&vote=`", form(b"vote=b&vote="), Status(400)),
        c("vote_of_1000_characters", FormValues, "`vote=aaa…` (1,000 `a`)", form(long_value.as_bytes()), Status(400)),
        c("vote_holding_markup", FormValues, "`vote=<script>…` (the refusal page must escape it)", form(b"vote=%3Cscript%3Ealert(1)%3C%2Fscript%3E"), Status(400)),
        c("only_ampersands", FormValues, "1,000 `&`", form(ampersands.as_bytes()), Status(400)),
        c("many_fields_and_no_vote", FormValues, "250 fields `x=1`", form(many_fields.as_bytes()), Status(400)),
        c("json_instead_of_a_form", FormValues, "`{\"vote\":\"a\"}` declared as a form", form(br#"{"vote":"a"}"#), Status(400)),
        c("vote_in_the_query_string_only", FormValues, "`POST /?vote=a` with an empty body", {
            let mut b = post(&[FORM, COOKIE], b"");
            b.splice(5..6, b"/?vote=a".iter().copied());
            b
        }, Status(400)),
        // Headers with hostile values (cross-site posts beyond the ones in vote.rs).
        c("no_content_type", Headers, "a form without `Content-Type`", post(&[COOKIE], b"vote=a"), Status(415)),
        c("content_type_json", Headers, "`Content-Type: application/json`", post(&["Content-Type: application/json", COOKIE], b"vote=a"), Status(415)),
        c("content_type_multipart", Headers, "`Content-Type: multipart/form-data` with a form body", post(&["Content-Type: multipart/form-data; boundary=x", COOKIE], b"vote=a"), Status(415)),
        c("content_type_with_a_suffix", Headers, "`application/x-www-form-urlencodedX`", post(&["Content-Type: application/x-www-form-urlencodedX", COOKIE], b"vote=a"), Status(415)),
        c("content_type_of_non_ascii_bytes", Headers, "a `Content-Type` of bytes over 0x7f", {
            let mut b = b"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: \xe9\xe9\r\n".to_vec();
            b.extend_from_slice(format!("{COOKIE}\r\nContent-Length: 6\r\n\r\nvote=a").as_bytes());
            b
        }, Status(415)),
        c("origin_on_another_port", Headers, "`Origin` with the service's host and another port", with_header("Origin: http://127.0.0.1:1"), Status(403)),
        c("origin_that_ends_like_the_host", Headers, "`Origin: http://<own host>.evil.example`", with_header("Origin: http://{host}.evil.example"), Status(403)),
        c("origin_with_credentials", Headers, "`Origin: http://user@<own host>`", with_header("Origin: http://user@{host}"), Status(403)),
        c("origin_with_a_path", Headers, "`Origin: http://<own host>/page`", with_header("Origin: http://{host}/page"), Status(403)),
        c("origin_empty", Headers, "`Origin:` with no value", with_header("Origin: "), Status(403)),
        c("origin_not_a_url", Headers, "`Origin: javascript:alert(1)`", with_header("Origin: javascript:alert(1)"), Status(403)),
        c("origin_of_non_ascii_bytes", Headers, "an `Origin` of bytes over 0x7f", {
            let mut b = post(&[FORM, COOKIE], b"vote=a");
            let at = b.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
            b.splice(at..at, b"Origin: http://\xe9vil\r\n".iter().copied());
            b
        }, Status(403)),
        c("two_origins_one_of_them_ours", Headers, "`Origin: http://evil.example` and `Origin: <own>`", post(&[FORM, COOKIE, "Origin: http://evil.example", "Origin: http://{host}"], b"vote=a"), Status(403)),
        c("referer_that_is_relative", Headers, "`Referer: /` (no origin to check)", with_header("Referer: /"), Status(403)),
        c("referer_with_another_scheme", Headers, "`Referer: ftp://<own host>/`", with_header("Referer: ftp://{host}/"), Status(403)),
        c("referer_naming_us_in_its_query", Headers, "`Referer: http://evil.example/?http://<own host>/`", with_header("Referer: http://evil.example/?u=http://{host}/"), Status(403)),
        c("same_site_fetch_from_a_foreign_origin", Headers, "`Sec-Fetch-Site: same-site` with `Origin: http://evil.example`", post(&[FORM, COOKIE, "Sec-Fetch-Site: same-site", "Origin: http://evil.example"], b"vote=a"), Status(403)),
        c("unknown_fetch_site_with_a_foreign_origin", Headers, "`Sec-Fetch-Site: sideways` with `Origin: http://evil.example`", post(&[FORM, COOKIE, "Sec-Fetch-Site: sideways", "Origin: http://evil.example"], b"vote=a"), Status(403)),
        c("cross_site_fetch_with_our_origin", Headers, "`Sec-Fetch-Site: cross-site` with the service's own `Origin`", post(&[FORM, COOKIE, "Sec-Fetch-Site: cross-site", "Origin: http://{host}"], b"vote=a"), Status(403)),
        c("foreign_origin_without_a_host", Headers, "no `Host`, `Origin: http://evil.example`", {
            let mut b = with_header("Origin: http://evil.example");
            let text = String::from_utf8(b.clone()).unwrap().replace("Host: {host}\r\n", "");
            b = text.into_bytes();
            b
        }, Status(403)),
        c("foreign_origin_with_two_hosts", Headers, "`Host: evil.example` and `Host: <own>` with `Origin: http://evil.example`", post(&["Host: evil.example", FORM, COOKIE, "Origin: http://evil.example"], b"vote=a"), Status(403)),
        c("absolute_target_on_a_foreign_host", Headers, "`POST http://evil.example/` with `Origin: http://evil.example`", {
            let text = String::from_utf8(with_header("Origin: http://evil.example")).unwrap().replacen("POST / ", "POST http://evil.example/ ", 1);
            text.into_bytes()
        }, Status(403)),
        c("foreign_host_with_our_origin", Headers, "`Host: evil.example` with the service's own `Origin`", {
            let text = String::from_utf8(with_header("Origin: http://{host}")).unwrap().replacen("Host: {host}", "Host: evil.example", 1);
            text.into_bytes()
        }, Status(403)),
        // Cookies.
        c("voter_id_empty", Cookies, "`voter_id=`", with_cookie(b"voter_id="), Status(400)),
        c("voter_id_of_256_bytes", Cookies, "a 256-byte `voter_id`", with_cookie(long_id.as_bytes()), Status(400)),
        c("voter_id_of_invalid_utf8", Cookies, "`voter_id=ab\\xffcd`", with_cookie(b"voter_id=ab\xffcd"), Status(400)),
        c("voter_id_of_utf8_letters", Cookies, "`voter_id=café`", with_cookie("voter_id=café".as_bytes()), Status(400)),
        c("voter_id_with_a_control_byte", Cookies, "`voter_id=ab\\x01cd`", with_cookie(b"voter_id=ab\x01cd"), StatusThenClose(400)),
        c("voter_id_with_a_del_byte", Cookies, "`voter_id=ab\\x7fcd`", with_cookie(b"voter_id=ab\x7fcd"), StatusThenClose(400)),
        c("voter_id_quoted_with_a_space", Cookies, "`voter_id=\"a b\"`", with_cookie(b"voter_id=\"a b\""), Status(400)),
        c("bad_voter_id_before_a_good_one", Cookies, "`voter_id=` then `voter_id=<good>` in one header", with_cookie(b"voter_id=; voter_id=00000000000ab05e"), Status(400)),
        c("bad_voter_id_in_the_first_of_two_headers", Cookies, "two `Cookie` headers, the first with a bad id", post(&[FORM, "Cookie: voter_id=caf\u{e9}", COOKIE], b"vote=a"), Status(400)),
        c("junk_cookies_around_an_empty_voter_id", Cookies, "400 other cookies and an empty `voter_id`", post(&[FORM, &junk_cookies], b"vote=a"), Status(400)),
        // Slow and idle clients (the limits are shortened for the test).
        c("silent_after_connecting", SlowClients, "connects and sends nothing", Vec::new(), Closed { within: OPTIONS.header_timeout })
            .with_input(Input::Stall(Vec::new())),
        c("half_a_request_line_then_silence", SlowClients, "`POST / HT`, then nothing", Vec::new(), Closed { within: OPTIONS.header_timeout })
            .with_input(Input::Stall(b"POST / HT".to_vec())),
        c("headers_trickled_a_byte_at_a_time", SlowClients, "the request one byte every 50 ms (slowloris)", Vec::new(), Closed { within: OPTIONS.header_timeout })
            .with_input(Input::Trickle { bytes: form(b"vote=a"), every: Duration::from_millis(50) }),
        c("body_stops_half_way", SlowClients, "headers for 6 bytes, then `vot` and silence", Vec::new(), StatusThenClose(408))
            .with_input(Input::Stall(post(&[FORM, COOKIE, "Content-Length: 6"], b"vot"))),
        c("body_never_sent_after_100_continue", SlowClients, "`Expect: 100-continue`, then no body", Vec::new(), StatusThenClose(408))
            .with_input(Input::Stall(post(&[FORM, COOKIE, "Expect: 100-continue", "Content-Length: 6"], b""))),
        c("idle_after_one_request", SlowClients, "a page request, then silence on the kept-alive connection", Vec::new(), StatusThenClose(200))
            .with_input(Input::Stall(b"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".to_vec())),
        c("never_reads_its_answers", SlowClients, "pipelined page requests until the service stops reading, no answer read", Vec::new(), OthersServed)
            .with_input(Input::NeverReads { bytes: b"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".to_vec(), times: testkit::abuse::FLOOD_LIMIT }),
        c("every_connection_held_open_and_silent", SlowClients, "16 silent connections, the whole connection cap", Vec::new(), OthersServed)
            .with_input(Input::HoldsEveryConnection { count: OPTIONS.max_connections }),
        HttpCase::idle_flood_from_one_address(
            FLOOD_OPTIONS.max_connections,
            FLOOD_OPTIONS.max_connections_per_address,
        ),
    ]);
    cases
}
