//! The fan-out floor's server: the least a WebSocket broadcaster can do.
//! Plain blocking sockets, no framework, no runtime: one thread accepts
//! connections and answers each upgrade request with a `101`, then
//! [`Broadcaster::send`] writes one and the same text frame to every
//! connection in a loop. What result does beyond this (reading the tally,
//! serialising it, a task and a channel per client, the frame codec) is
//! what the ratio to this floor measures.
//!
//! It runs as a process of its own (`xtask bench-broadcaster`, driven by
//! [`BroadcasterProcess`]), as result does: its sockets and CPU are not the
//! crowd's. The pipe round trip that starts each broadcast (tens of
//! microseconds) is inside the floor's figure.
//!
//! It answers with a fixed `Sec-WebSocket-Accept` (the [`crowd`] does not
//! check it) and never reads after the upgrade: it serves the bench's
//! crowd, nothing else.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

/// The broadcaster, listening on a loopback port until dropped.
pub struct Broadcaster {
    pub addr: SocketAddr,
    clients: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

/// `xtask bench-broadcaster`: starts a [`Broadcaster`], prints its
/// address, then for each number `N` read from stdin broadcasts the tally
/// of `N` votes and answers `sent`. Ends at the end of stdin.
pub fn serve_stdio() -> anyhow::Result<()> {
    servicekit::limits::raise_open_files_limit();
    let broadcaster = Broadcaster::start(0)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", broadcaster.addr)?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let total: u64 = line?.trim().parse().context("a number of votes")?;
        broadcaster.send(total)?;
        writeln!(out, "sent")?;
        out.flush()?;
    }
    Ok(())
}

/// A [`Broadcaster`] in a child process.
pub struct BroadcasterProcess {
    pub addr: SocketAddr,
    child: Child,
    commands: ChildStdin,
    answers: BufReader<ChildStdout>,
}

impl BroadcasterProcess {
    /// Starts `xtask bench-broadcaster` (this very binary).
    pub fn start() -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("bench-broadcaster")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the broadcaster process")?;
        let commands = child.stdin.take().context("the broadcaster's stdin")?;
        let mut answers = BufReader::new(child.stdout.take().context("the broadcaster's stdout")?);
        let mut line = String::new();
        answers.read_line(&mut line)?;
        let addr = line
            .trim()
            .parse()
            .with_context(|| format!("the broadcaster said {line:?}"))?;
        Ok(BroadcasterProcess {
            addr,
            child,
            commands,
            answers,
        })
    }

    /// Broadcasts the tally of `total` votes; returns once it is written
    /// to every client.
    pub fn send(&mut self, total: u64) -> anyhow::Result<()> {
        writeln!(self.commands, "{total}")?;
        self.commands.flush()?;
        let mut line = String::new();
        self.answers.read_line(&mut line)?;
        anyhow::ensure!(line.trim() == "sent", "the broadcaster said {line:?}");
        Ok(())
    }
}

impl Drop for BroadcasterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The WebSocket text frame of the live feed's message for `total` votes.
fn frame(total: u64) -> Vec<u8> {
    let text = contract::Tally { a: total, b: 0 }.to_json();
    let mut frame = vec![0x81, text.len() as u8];
    frame.extend_from_slice(text.as_bytes());
    frame
}

impl Broadcaster {
    /// Starts accepting; each new client is sent the tally `total` first,
    /// as result sends the current tally on connect.
    pub fn start(total: u64) -> anyhow::Result<Broadcaster> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let clients = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let greeting = frame(total);
        std::thread::Builder::new()
            .name("broadcaster".into())
            .spawn({
                let (clients, stop) = (clients.clone(), stop.clone());
                move || accept(&listener, &clients, &stop, &greeting)
            })
            .context("starting the broadcaster")?;
        Ok(Broadcaster {
            addr,
            clients,
            stop,
        })
    }

    /// Writes the frame for `total` to every client, in order.
    pub fn send(&self, total: u64) -> anyhow::Result<()> {
        let frame = frame(total);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        for client in clients.iter_mut() {
            client.write_all(&frame).context("writing a frame")?;
        }
        Ok(())
    }
}

impl Drop for Broadcaster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Accepts until `stop`: each connection's upgrade request is read and
/// answered, then the connection joins `clients`.
fn accept(
    listener: &TcpListener,
    clients: &Mutex<Vec<TcpStream>>,
    stop: &AtomicBool,
    greeting: &[u8],
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Ok(stream) = upgrade(stream, greeting) {
                    clients
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(stream);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn upgrade(mut stream: TcpStream, greeting: &[u8]) -> std::io::Result<TcpStream> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 || head.len() > 8192 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    stream.write_all(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    )?;
    stream.write_all(greeting)?;
    Ok(stream)
}
