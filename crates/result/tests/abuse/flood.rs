//! A frame case's flooding client: a small receive buffer, the handshake,
//! then the same frames over and over, never reading an answer, while
//! this process (the service runs in it) counts its heap.

use std::net::SocketAddr;
use std::time::Duration;

use testkit::abuse::with_host;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::upgrade_with;

/// How much a flooding client offers: far more than the socket buffers on
/// both sides hold.
const FLOOD_BYTES: usize = 64 << 20;
/// A flooding client's receive buffer: small, so what the server sends it
/// backs up at once.
const FLOOD_RCVBUF: u32 = 4096;
/// Heap the service may gain while a client floods it: its bounded write
/// buffer, with room for the runtime. Buffering what the client will not
/// read passes it within the first megabyte of the flood.
const FLOOD_HEAP_BOUND: usize = 1 << 20;

/// Plays a flood case (`After::Cut` in `frames.rs`): a client with a small
/// receive buffer that completes the handshake, then sends `bytes` over
/// and over and never reads. `Ok` once the server drops it or stops taking
/// its bytes, unless the heap grew past [`FLOOD_HEAP_BOUND`] first.
pub async fn play_flood(addr: SocketAddr, bytes: &[u8]) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let socket = tokio::net::TcpSocket::new_v4().map_err(io)?;
    socket.set_recv_buffer_size(FLOOD_RCVBUF).map_err(io)?;
    let mut stream = socket.connect(addr).await.map_err(io)?;
    stream
        .write_all(&with_host(&upgrade_with(&[]), addr))
        .await
        .map_err(io)?;
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await.map_err(io)? == 0 {
            return Err("closed during the handshake".to_owned());
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(format!(
            "the handshake got {:?}",
            String::from_utf8_lossy(&head)
        ));
    }
    let before = super::HEAP.allocated();
    let flood = async {
        let mut sent = 0;
        while sent < FLOOD_BYTES {
            if stream.write_all(bytes).await.is_err() {
                return Ok(()); // dropped
            }
            sent += bytes.len();
            let grown = super::HEAP.allocated().saturating_sub(before);
            if grown > FLOOD_HEAP_BOUND {
                return Err(format!(
                    "the heap grew by {grown} bytes once the client had sent {sent}: \
                     the server buffers what the client does not read"
                ));
            }
        }
        Err(format!("the server took all {sent} bytes"))
    };
    // Writes that stop being taken for this long: throttled.
    tokio::time::timeout(Duration::from_secs(5), flood)
        .await
        .unwrap_or(Ok(()))
}
