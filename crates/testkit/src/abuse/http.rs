//! HTTP cases: raw bytes in, a status or a close out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{CASE_DEADLINE, Case, Entry, Layer};
use crate::raw::{RawConn, RawResponse, request};

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
    /// Sends the bytes again and again without reading a single answer,
    /// until the service pushes back (stops reading; at most `times`
    /// copies, or the case fails for want of back-pressure), then checks
    /// another client is served meanwhile.
    NeverReads { bytes: Vec<u8>, times: usize },
    /// Opens `count` connections (the service's whole connection cap) and
    /// sends nothing on them, then checks another client is served once
    /// the service has timed them out.
    HoldsEveryConnection { count: usize },
    /// Opens `count` connections from [`FLOOD_ADDRESS`] (the service's
    /// whole connection cap, from one address) and sends nothing on them,
    /// then checks another client is served while some are still open:
    /// the service's timeouts must be far longer than the case, so only a
    /// cap per address can let the other client in.
    FloodsFromOneAddress { count: usize },
}

/// The address a [`Input::FloodsFromOneAddress`] case connects from; every
/// other client connects from `127.0.0.1` (Linux routes all of
/// `127.0.0.0/8` to the loopback).
pub const FLOOD_ADDRESS: std::net::IpAddr =
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

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
    /// The service served another client while this one's connections
    /// were still open.
    OthersServedMeanwhile,
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
            Answer::OthersServedMeanwhile => f.write_str(
                "another address is served while the flood's connections are still open",
            ),
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

    /// The case every HTTP suite shares for a flood of idle connections
    /// from one address: `count` of them (the connection cap), against a
    /// service that serves at most `per_address` from one address. Played
    /// against a service whose timeouts are far longer than the case (see
    /// [`Input::FloodsFromOneAddress`]).
    pub fn idle_flood_from_one_address(count: usize, per_address: usize) -> HttpCase {
        HttpCase::new(
            "idle_connections_flooded_from_one_address",
            Layer::SlowClients,
            &format!(
                "{count} silent connections from one address, the whole connection cap, \
                 to a service that serves {per_address} per address and times out in a minute"
            ),
            Vec::new(),
            Answer::OthersServedMeanwhile,
        )
        .with_input(Input::FloodsFromOneAddress { count })
    }

    /// Whether the case floods from one address, and so needs a service
    /// with long timeouts and a cap per address.
    pub fn floods_from_one_address(&self) -> bool {
        matches!(self.input, Input::FloodsFromOneAddress { .. })
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

/// Most copies a [`Input::NeverReads`] case sends while it waits for the
/// service to push back. About 3,000 small requests fill the buffers of a
/// loopback connection on Linux; the rest is margin.
pub const FLOOD_LIMIT: usize = 50_000;

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
            drop(conn);
            let mut flood = RawConn::connect_with_small_buffers(addr)
                .await
                .map_err(io)?;
            let pushed_back = flood
                .flood_until_pushed_back(&with_host(bytes, addr), *times)
                .await
                .map_err(io)?;
            if pushed_back.is_none() {
                return Err(format!(
                    "{times} requests went out and the service never stopped reading: \
                     no back-pressure, so nothing was shown"
                ));
            }
            // The flood's connection is stuck, answers unread; the service
            // must serve someone else meanwhile.
            let other = crate::raw::send(addr, &request("GET", "/healthz", &[], b"")).await;
            drop(flood);
            return match other {
                Ok(answer) if answer.status == 200 => Ok(()),
                Ok(answer) => Err(format!("another client got {}", answer.status_line)),
                Err(e) => Err(format!("another client got no answer: {e}")),
            };
        }
        Input::FloodsFromOneAddress { count } => {
            drop(conn);
            let mut flood = Vec::with_capacity(*count);
            for _ in 0..*count {
                flood.push(
                    RawConn::connect_from(FLOOD_ADDRESS, addr)
                        .await
                        .map_err(io)?,
                );
            }
            let mut other = RawConn::connect(addr).await.map_err(io)?;
            other
                .send(&request("GET", "/healthz", &[], b""))
                .await
                .map_err(io)?;
            let answer = other.response(ANSWER_DEADLINE).await;
            let open = flood.iter().filter(|c| c.is_quiet()).count();
            return match answer {
                Ok(answer) if answer.status == 200 && open > 0 => Ok(()),
                Ok(answer) if answer.status == 200 => {
                    Err("another client was served only once the flood was closed".to_owned())
                }
                Ok(answer) => Err(format!("another client got {}", answer.status_line)),
                Err(e) => Err(format!(
                    "another client got no answer while the flood held its connections: {e}"
                )),
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
        Answer::OthersServed | Answer::OthersServedMeanwhile => Ok(()),
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
