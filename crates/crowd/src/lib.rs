//! A crowd of cheap live-feed clients, for measuring fan-out: how long after
//! a commit the *last* of N open result pages has the new tally.
//!
//! A full WebSocket client per connection (a tokio task, a tungstenite
//! stream, a channel message per tally) costs more CPU than the server's
//! own send to it, so with thousands of them the crowd, not the server,
//! is what gets measured. Here every connection is a raw non-blocking
//! socket, all of them served by one thread on one `mio` poll: it writes
//! the upgrade request, reads the `101` answer, then reads unmasked frames
//! straight from the socket buffer, answers pings, and notes the instant
//! each client first sees a tally at or above the total a round waits for.
//! What it does per message is a few hundred nanoseconds of parsing, the
//! same for any server it reads from — so the bench's floor broadcaster and
//! the result service are read by exactly the same crowd.
//!
//! It speaks just enough of RFC 6455 for a bench on loopback: it does not
//! check `Sec-WebSocket-Accept`, and expects unfragmented text frames (what
//! the result service sends). Used by result's `fanout` bench and by
//! `cargo xtask bench`; it depends on the contract (for the tally message)
//! and `mio`, nothing heavier, so nothing that a service builds.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Upgrades in flight at once while the crowd connects: below the listen
/// backlog of a server that accepts slowly (128 for a std listener). Past
/// it, the kernel drops handshakes and the clients retry with backoff for
/// up to two minutes.
const CONNECTING_AT_ONCE: usize = 100;
/// How often the reader looks at its stop flag when nothing arrives.
const POLL_TICK: Duration = Duration::from_millis(20);
/// The close code a server sends when it shuts down ("going away").
const GOING_AWAY: u16 = 1001;

/// `N` open connections to a live feed, read by one thread.
pub struct Crowd {
    size: usize,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Crowd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crowd").field("size", &self.size).finish()
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The total the current round waits for.
    target: u64,
    /// When each client first saw a tally with at least `target` votes.
    arrived: Vec<Option<Instant>>,
    arrivals: usize,
    /// Clients that have had their first tally (the one sent on connect).
    greeted: Vec<bool>,
    greetings: usize,
    /// Clients the server closed with 1001 (going away).
    going_away: usize,
    /// Clients whose connection ended, for any reason.
    gone: usize,
    /// Connections opened, and upgraded (answered `101`).
    opened: usize,
    upgraded: usize,
    /// The first thing that went wrong, if anything did.
    error: Option<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means the reader panicked; its state is still the
        // best account of what happened.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The socket address of a result page's URL (`http://127.0.0.1:5001/`).
pub fn feed_addr(result_url: &str) -> anyhow::Result<SocketAddr> {
    let rest = result_url
        .split_once("://")
        .map_or(result_url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .to_socket_addrs()
        .with_context(|| format!("no address for {authority:?}"))?
        .next()
        .with_context(|| format!("no address for {authority:?}"))
}

impl Crowd {
    /// Opens `size` connections to `GET /ws` at `addr` and returns once each
    /// has received its first tally, or fails after `limit`.
    pub fn connect(addr: SocketAddr, size: usize, limit: Duration) -> anyhow::Result<Crowd> {
        let shared = Arc::new(Shared::default());
        {
            let mut state = shared.lock();
            state.arrived = vec![None; size];
            state.greeted = vec![false; size];
        }
        let stop = Arc::new(AtomicBool::new(false));
        let poll = Poll::new().context("creating the crowd's poll")?;
        let reader = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("crowd".into())
                .spawn(move || {
                    let mut reader = Reader::new(addr, size, poll, shared.clone());
                    if let Err(e) = reader.run(&stop) {
                        shared.lock().error.get_or_insert(format!("{e:#}"));
                        shared.changed.notify_all();
                    }
                })
                .context("starting the crowd's thread")?
        };
        let crowd = Crowd {
            size,
            shared,
            stop,
            reader: Some(reader),
        };
        drop(crowd.wait_for(
            limit,
            |s| s.greetings == size,
            |s| format!("only {} of {size} clients had a tally", s.greetings),
        )?);
        Ok(crowd)
    }

    /// How many clients the crowd holds.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Starts a round: from now on, note when each client first sees a
    /// tally with at least `total` votes. Call it before causing the tally.
    pub fn expect(&self, total: u64) {
        let mut state = self.shared.lock();
        state.target = total;
        state.arrived.iter_mut().for_each(|a| *a = None);
        state.arrivals = 0;
    }

    /// Waits until every client has seen the expected total; returns when
    /// each one saw it.
    pub fn wait_all(&self, limit: Duration) -> anyhow::Result<Vec<Instant>> {
        let size = self.size;
        let state = self.wait_for(
            limit,
            |s| s.arrivals == size,
            |s| {
                format!(
                    "only {} of {size} clients saw {} votes",
                    s.arrivals, s.target
                )
            },
        )?;
        Ok(state.arrived.iter().flatten().copied().collect())
    }

    /// Clients the server closed with "going away" (1001), as a shutting
    /// down result service does.
    pub fn going_away(&self) -> usize {
        self.shared.lock().going_away
    }

    /// Waits until every connection has ended (after the server's
    /// shutdown), or `limit`.
    pub fn wait_closed(&self, limit: Duration) -> anyhow::Result<()> {
        let size = self.size;
        self.wait_for(
            limit,
            |s| s.gone == size,
            |s| format!("{} of {size} connections still open", size - s.gone),
        )
        .map(drop)
    }

    fn wait_for(
        &self,
        limit: Duration,
        done: impl Fn(&State) -> bool,
        short: impl Fn(&State) -> String,
    ) -> anyhow::Result<MutexGuard<'_, State>> {
        let deadline = Instant::now() + limit;
        let mut state = self.shared.lock();
        loop {
            if done(&state) {
                return Ok(state);
            }
            if let Some(error) = &state.error {
                bail!("{}: {error}", short(&state));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("{} within {limit:?}", short(&state));
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// One connection as the reader sees it.
struct Client {
    stream: TcpStream,
    /// Bytes read and not yet parsed.
    buf: Vec<u8>,
    request_sent: bool,
    upgraded: bool,
    open: bool,
}

/// The crowd's thread: connects, then reads every socket as it turns
/// readable.
struct Reader {
    addr: SocketAddr,
    size: usize,
    poll: Poll,
    clients: Vec<Client>,
    connecting: usize,
    shared: Arc<Shared>,
    request: Vec<u8>,
}

impl Reader {
    fn new(addr: SocketAddr, size: usize, poll: Poll, shared: Arc<Shared>) -> Self {
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .into_bytes();
        Reader {
            addr,
            size,
            poll,
            clients: Vec::with_capacity(size),
            connecting: 0,
            shared,
            request,
        }
    }

    fn run(&mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        let mut events = Events::with_capacity(1024);
        while !stop.load(Ordering::Relaxed) {
            self.open_more()?;
            match self.poll.poll(&mut events, Some(POLL_TICK)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("polling the crowd's sockets"),
            }
            for event in &events {
                self.serve(event.token().0)?;
            }
        }
        Ok(())
    }

    /// Opens connections until the crowd is complete or enough are
    /// upgrading.
    fn open_more(&mut self) -> anyhow::Result<()> {
        while self.clients.len() < self.size && self.connecting < CONNECTING_AT_ONCE {
            let mut stream = TcpStream::connect(self.addr)
                .with_context(|| format!("connecting client {}", self.clients.len()))?;
            let _ = stream.set_nodelay(true);
            self.poll.registry().register(
                &mut stream,
                Token(self.clients.len()),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            self.clients.push(Client {
                stream,
                buf: Vec::with_capacity(512),
                request_sent: false,
                upgraded: false,
                open: true,
            });
            self.connecting += 1;
            self.shared.lock().opened += 1;
        }
        Ok(())
    }

    /// Handles a readiness event on client `i`: send the request once the
    /// socket is connected, then read whatever has arrived.
    fn serve(&mut self, i: usize) -> anyhow::Result<()> {
        let Some(client) = self.clients.get_mut(i) else {
            return Ok(());
        };
        if !client.open {
            return Ok(());
        }
        if !client.request_sent {
            match client.stream.write(&self.request) {
                Ok(n) if n == self.request.len() => client.request_sent = true,
                Ok(n) => bail!("client {i}: only {n} bytes of the upgrade request written"),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(e).with_context(|| format!("client {i}: sending upgrade")),
            }
        }
        let mut chunk = [0u8; 4096];
        let ended = loop {
            match client.stream.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => client.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
                Err(e) => return Err(e).with_context(|| format!("client {i}: reading")),
            }
        };
        let now = Instant::now();
        self.parse(i, now)?;
        if ended {
            self.end(i);
        }
        Ok(())
    }

    /// Consumes the upgrade answer and every complete frame in client
    /// `i`'s buffer.
    fn parse(&mut self, i: usize, now: Instant) -> anyhow::Result<()> {
        let client = &mut self.clients[i];
        if !client.upgraded {
            let Some(end) = client.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                return Ok(());
            };
            if !client.buf.starts_with(b"HTTP/1.1 101") {
                let line = String::from_utf8_lossy(&client.buf[..end]);
                bail!(
                    "client {i}: upgrade refused: {}",
                    line.lines().next().unwrap_or("")
                );
            }
            client.buf.drain(..end + 4);
            client.upgraded = true;
            self.connecting -= 1;
            self.shared.lock().upgraded += 1;
        }
        let mut offset = 0;
        let mut tallies = Vec::new();
        let mut pongs = Vec::new();
        let mut closed = None;
        while let Some(frame) = Frame::parse(&client.buf[offset..]) {
            let payload = &client.buf[offset + frame.payload.0..offset + frame.payload.1];
            match frame.opcode {
                0x1 => {
                    if let Some(tally) = std::str::from_utf8(payload)
                        .ok()
                        .and_then(contract::Tally::from_feed)
                    {
                        tallies.push(tally.total());
                    }
                }
                0x8 => {
                    closed = Some(payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]])));
                }
                0x9 => pongs.push(payload.to_vec()),
                _ => {}
            }
            offset += frame.len;
        }
        client.buf.drain(..offset);
        for payload in pongs {
            // A pong, masked with the all-zero key (payload unchanged).
            let mut pong = vec![0x8A, 0x80 | payload.len() as u8, 0, 0, 0, 0];
            pong.extend_from_slice(&payload);
            let _ = client.stream.write(&pong);
        }
        if !tallies.is_empty() {
            let mut state = self.shared.lock();
            let mut notify = false;
            if !state.greeted[i] {
                state.greeted[i] = true;
                state.greetings += 1;
                notify |= state.greetings == self.size;
            }
            if tallies.iter().any(|&t| t >= state.target) && state.arrived[i].is_none() {
                state.arrived[i] = Some(now);
                state.arrivals += 1;
                notify |= state.arrivals == self.size;
            }
            drop(state);
            if notify {
                self.shared.changed.notify_all();
            }
        }
        if let Some(code) = closed {
            if code == Some(GOING_AWAY) {
                self.shared.lock().going_away += 1;
            }
            self.end(i);
        }
        Ok(())
    }

    /// Client `i`'s connection has ended.
    fn end(&mut self, i: usize) {
        let client = &mut self.clients[i];
        if !client.open {
            return;
        }
        client.open = false;
        let _ = self.poll.registry().deregister(&mut client.stream);
        let _ = client.stream.shutdown(std::net::Shutdown::Both);
        let mut state = self.shared.lock();
        state.gone += 1;
        drop(state);
        self.shared.changed.notify_all();
    }
}

/// Where a frame's payload sits in a buffer, and how long the frame is.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    opcode: u8,
    payload: (usize, usize),
    len: usize,
}

impl Frame {
    /// The first complete frame at the start of `buf`, if there is one.
    fn parse(buf: &[u8]) -> Option<Frame> {
        let (&b0, &b1) = (buf.first()?, buf.get(1)?);
        let (len, mut start): (u64, usize) = match b1 & 0x7F {
            126 => (
                u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
                4,
            ),
            127 => {
                let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
                (u64::from_be_bytes(bytes), 10)
            }
            n => (u64::from(n), 2),
        };
        if b1 & 0x80 != 0 {
            start += 4; // a mask key: servers do not send one
        }
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        (buf.len() >= end).then_some(Frame {
            opcode: b0 & 0x0F,
            payload: (start, end),
            len: end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_parsed_only_when_complete() {
        let text = b"\x81\x0d{\"a\":1,\"b\":2}";
        assert_eq!(
            Frame::parse(text),
            Some(Frame {
                opcode: 1,
                payload: (2, 15),
                len: 15
            })
        );
        assert_eq!(Frame::parse(&text[..10]), None);
        assert_eq!(Frame::parse(&[]), None);
        let mut long = vec![0x81, 126, 0x01, 0x00];
        long.extend(std::iter::repeat_n(b'x', 256));
        assert_eq!(Frame::parse(&long).map(|f| f.payload), Some((4, 260)));
        assert_eq!(Frame::parse(&[0x81, 127, 0xff, 0xff]), None);
        assert_eq!(
            Frame::parse(&[0x81, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            None
        );
    }

    #[test]
    fn feed_addresses_come_from_page_urls() {
        assert_eq!(
            feed_addr("http://127.0.0.1:5001/").unwrap(),
            "127.0.0.1:5001".parse().unwrap()
        );
        assert!(feed_addr("http://127.0.0.1/").is_err());
    }
}
