//! Framing cases any of our HTTP services must refuse.

use std::fmt::Write as _;

use super::{Answer, HOST, HttpCase, Layer};

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
