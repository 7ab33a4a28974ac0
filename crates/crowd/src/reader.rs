//! The crowd's thread: one `mio` poll over every client's non-blocking
//! socket. It opens connections a batch at a time, sends each its upgrade
//! request once connected, reads whatever arrives, answers pings, and
//! records in the shared state the tallies each client sees and how its
//! connection ends.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::state::Shared;
use crate::websocket::{self, CLOSE, Frame, GOING_AWAY, PING, TEXT};

/// Upgrades in flight at once while the crowd connects: below the listen
/// backlog of a server that accepts slowly (128 for a std listener). Past
/// it, the kernel drops handshakes and the clients retry with backoff for
/// up to two minutes.
const CONNECTING_AT_ONCE: usize = 100;
/// How often the reader looks at its stop flag when nothing arrives.
const POLL_TICK: Duration = Duration::from_millis(20);

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
pub(crate) struct Reader {
    addr: SocketAddr,
    size: usize,
    poll: Poll,
    clients: Vec<Client>,
    connecting: usize,
    shared: Arc<Shared>,
    request: Vec<u8>,
}

impl Reader {
    pub(crate) fn new(addr: SocketAddr, size: usize, poll: Poll, shared: Arc<Shared>) -> Self {
        Reader {
            addr,
            size,
            poll,
            clients: Vec::with_capacity(size),
            connecting: 0,
            shared,
            request: websocket::upgrade_request(addr),
        }
    }

    /// Serves every socket until `stop` is set.
    pub(crate) fn run(&mut self, stop: &AtomicBool) -> anyhow::Result<()> {
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
        }
        let mut offset = 0;
        let mut tallies = Vec::new();
        let mut pings = Vec::new();
        let mut closed = None;
        while let Some(frame) = Frame::parse(&client.buf[offset..]) {
            let payload = &client.buf[offset + frame.payload.0..offset + frame.payload.1];
            match frame.opcode {
                TEXT => {
                    if let Some(tally) = std::str::from_utf8(payload)
                        .ok()
                        .and_then(contract::Tally::from_feed)
                    {
                        tallies.push(tally.total());
                    }
                }
                CLOSE => closed = Some(websocket::close_code(payload)),
                PING => pings.push(payload.to_vec()),
                _ => {}
            }
            offset += frame.len;
        }
        client.buf.drain(..offset);
        for payload in pings {
            let _ = client.stream.write(&websocket::pong(&payload));
        }
        if !tallies.is_empty() && self.shared.lock().saw(i, &tallies, now) {
            self.shared.changed.notify_all();
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
