//! HTTP/1.1 spoken by hand over a plain TCP socket, for tests that send
//! what no well-behaved client library would: made-up methods, lying
//! `Content-Length`s, `Expect: 100-continue` without a body, forged
//! `Origin`s, broken WebSocket handshakes.
//!
//! ```no_run
//! # async fn example(addr: std::net::SocketAddr) -> std::io::Result<()> {
//! use testkit::raw::{RawConn, request};
//! let mut conn = RawConn::connect(addr).await?;
//! let answer = conn.exchange(&request("BREW", "/", &[], b"")).await?;
//! assert_eq!(answer.status, 405);
//! # Ok(())
//! # }
//! ```
//!
//! A [`RawConn`] keeps its connection, so many requests can go down one
//! socket (keep-alive), and reads one response at a time, interim ones
//! (`100 Continue`) included, so a test sees exactly what the server sent
//! and when. Every read has a deadline ([`READ_DEADLINE`] unless told
//! otherwise): a server that says nothing fails the test instead of
//! hanging it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod flood;

/// How long a read waits for the server by default.
pub const READ_DEADLINE: Duration = Duration::from_secs(10);
/// Largest response head or body a test expects; more is an error.
const MAX_RESPONSE: usize = 4 << 20;

/// One response as it came off the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// `HTTP/1.1 413 Payload Too Large`, without the line end.
    pub status_line: String,
    pub status: u16,
    /// Header names lowercased, values as sent, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for RawResponse {
    /// The body as text, cut at 500 bytes: readable in a failure message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.text();
        let cut = text.char_indices().nth(500).map_or(text.len(), |(i, _)| i);
        f.debug_struct("RawResponse")
            .field("status_line", &self.status_line)
            .field("headers", &self.headers)
            .field("body", &&text[..cut])
            .finish()
    }
}

impl RawResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Panics unless this response carries the security headers every
    /// page of ours sends (a policy allowing only the service's own origin,
    /// no framing, no sniffing, referrers kept on the site), and
    /// `Cache-Control: no-store` if it sets a cookie. `what` names the
    /// request in the failure message.
    pub fn assert_security_headers(&self, what: &str) {
        let csp = self
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy in {self:?}"));
        for directive in [
            "default-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "object-src 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{what}: {directive} missing from {csp}"
            );
        }
        assert_eq!(
            self.header("x-content-type-options"),
            Some("nosniff"),
            "{what}: {self:?}"
        );
        assert_eq!(
            self.header("referrer-policy"),
            Some("same-origin"),
            "{what}: {self:?}"
        );
        if self.header("set-cookie").is_some() {
            assert_eq!(
                self.header("cache-control"),
                Some("no-store"),
                "{what} sets a cookie: {self:?}"
            );
        }
    }

    /// A 1xx answer (`100 Continue`, `101 Switching Protocols`): no body
    /// follows it.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

/// The bytes of a request: `METHOD path HTTP/1.1`, a `Host` header
/// naming `example.test` unless `headers` has one, the given headers, a
/// `Content-Length` for a non-empty body unless `headers` has one, then
/// the body. Nothing is checked: any bytes may go anywhere.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut out = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    if !has("host") {
        out.extend_from_slice(b"Host: example.test\r\n");
    }
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !body.is_empty() && !has("content-length") && !has("transfer-encoding") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The headers of a browser-like WebSocket upgrade request (key fixed,
/// version 13), to pass to [`request`] with more of one's own.
pub fn websocket_upgrade_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ]
}

/// Sends `bytes` on a new connection and reads the first final response
/// (skipping interim ones).
pub async fn send(addr: SocketAddr, bytes: &[u8]) -> std::io::Result<RawResponse> {
    RawConn::connect(addr).await?.exchange(bytes).await
}

/// A connection to a server, spoken to by hand.
pub struct RawConn {
    stream: TcpStream,
    /// Bytes read but not yet consumed as part of a response.
    pending: Vec<u8>,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<RawConn> {
        Ok(RawConn {
            stream: TcpStream::connect(addr).await?,
            pending: Vec::new(),
        })
    }

    /// Connects from the loopback address `local` (any of `127.0.0.0/8`
    /// on Linux), so one test can be several clients with their own
    /// addresses.
    pub async fn connect_from(
        local: std::net::IpAddr,
        addr: SocketAddr,
    ) -> std::io::Result<RawConn> {
        let socket = match local {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(local, 0))?;
        Ok(RawConn {
            stream: socket.connect(addr).await?,
            pending: Vec::new(),
        })
    }

    /// True while the server has neither closed this connection nor sent
    /// anything on it: a read would still wait (it is not waited for).
    pub fn is_quiet(&self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            self.stream.try_read(&mut byte),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        )
    }

    /// Writes `bytes` as they are.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Sends a request and returns its final response (interim ones such
    /// as `100 Continue` are skipped).
    pub async fn exchange(&mut self, bytes: &[u8]) -> std::io::Result<RawResponse> {
        self.send(bytes).await?;
        loop {
            let response = self.response(READ_DEADLINE).await?;
            if !response.is_interim() {
                return Ok(response);
            }
        }
    }

    /// The next response the server sends, interim ones included, waiting
    /// at most `deadline`. The body is read by `Content-Length` or chunked
    /// encoding; a response with neither (and not 1xx, 204 or 304) runs to
    /// the end of the connection. Use [`RawConn::head_response`] after a
    /// `HEAD` request.
    pub async fn response(&mut self, deadline: Duration) -> std::io::Result<RawResponse> {
        self.read_response(deadline, true).await
    }

    /// Like [`RawConn::response`] for the answer to a `HEAD`: no body.
    pub async fn head_response(&mut self, deadline: Duration) -> std::io::Result<RawResponse> {
        self.read_response(deadline, false).await
    }

    /// Shuts the sending side: the server reads end-of-file after what was
    /// sent.
    pub async fn shutdown_write(&mut self) -> std::io::Result<()> {
        self.stream.shutdown().await
    }

    /// The socket and the bytes already read from it but not consumed: for
    /// speaking another protocol after an upgrade.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.pending)
    }

    /// Bytes received but not yet read as a response, as text.
    pub fn pending_text(&self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }

    /// Whether the server closes the connection within `deadline` (bytes it
    /// sends meanwhile are kept for the next read).
    pub async fn closed_within(&mut self, deadline: Duration) -> bool {
        let wait = async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(deadline, wait).await.is_ok()
    }

    async fn read_response(
        &mut self,
        deadline: Duration,
        may_have_body: bool,
    ) -> std::io::Result<RawResponse> {
        tokio::time::timeout(deadline, self.read_response_now(may_have_body))
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no complete response within {deadline:?}"),
                )
            })?
    }

    async fn read_response_now(&mut self, may_have_body: bool) -> std::io::Result<RawResponse> {
        let head_end = loop {
            if let Some(i) = find(&self.pending, b"\r\n\r\n") {
                break i;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.pending[..head_end]).into_owned();
        self.pending.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_owned();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("not a status line: {status_line:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut response = RawResponse {
            status_line,
            status,
            headers,
            body: Vec::new(),
        };
        if !may_have_body || response.is_interim() || status == 204 || status == 304 {
            return Ok(response);
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            response.body = self.chunked_body().await?;
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length
                .parse()
                .map_err(|_| invalid(format!("bad content-length {length:?}")))?;
            if length > MAX_RESPONSE {
                return Err(invalid(format!("a {length}-byte body is too large")));
            }
            response.body = self.take(length).await?;
        } else {
            while self.fill().await.is_ok() {}
            response.body = std::mem::take(&mut self.pending);
        }
        Ok(response)
    }

    async fn chunked_body(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.pending, b"\r\n") {
                    break i;
                }
                self.fill().await?;
            };
            let line = String::from_utf8_lossy(&self.pending[..line_end]).into_owned();
            self.pending.drain(..line_end + 2);
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
            if body.len() + size > MAX_RESPONSE {
                return Err(invalid("chunked body too large".to_owned()));
            }
            let chunk = self.take(size + 2).await?;
            if size == 0 {
                return Ok(body); // no trailers expected from our services
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }

    async fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.pending.len() < n {
            self.fill().await?;
        }
        Ok(self.pending.drain(..n).collect())
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        if self.pending.len() > MAX_RESPONSE {
            return Err(invalid("response too large".to_owned()));
        }
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk).await? {
            0 => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )),
            n => {
                self.pending.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_get_a_host_and_a_length_unless_given() {
        assert_eq!(
            request("GET", "/", &[], b""),
            b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n"
        );
        assert_eq!(
            request("POST", "/x", &[("Host", "h")], b"ab"),
            b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab"
        );
        assert_eq!(
            request("POST", "/", &[("content-length", "9")], b"ab"),
            b"POST / HTTP/1.1\r\nHost: example.test\r\ncontent-length: 9\r\n\r\nab"
        );
    }

    #[tokio::test]
    async fn responses_are_read_one_at_a_time_interim_and_chunked_included() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(
                b"HTTP/1.1 100 Continue\r\n\r\n\
                  HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhi\
                  HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            )
            .await
            .unwrap();
        });
        let mut conn = RawConn::connect(addr).await.unwrap();
        let first = conn.response(READ_DEADLINE).await.unwrap();
        assert_eq!(first.status_line, "HTTP/1.1 100 Continue");
        assert!(first.is_interim());
        let second = conn.response(READ_DEADLINE).await.unwrap();
        assert_eq!((second.status, second.text()), (200, "hi".to_owned()));
        assert_eq!(second.header("x-a"), Some("b"));
        let third = conn.response(READ_DEADLINE).await.unwrap();
        assert_eq!((third.status, third.text()), (404, "abcde".to_owned()));
        assert!(conn.closed_within(READ_DEADLINE).await);
    }
}
