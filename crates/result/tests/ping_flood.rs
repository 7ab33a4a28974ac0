//! A live-feed client that floods pings and never reads the pongs cannot
//! take result's memory.
//!
//! A WebSocket peer must answer every ping with a pong. Before the fix,
//! result queued each pong in a write buffer without a maximum and went on
//! reading: a client with a small receive buffer sending 125-byte pings
//! took result from 9 MB to 976 MB in four seconds. This binary counts
//! live heap bytes with a wrapping global allocator (its own binary, so no
//! other test's allocations blur the figure), floods one socket from a
//! client that never reads, and checks that result's heap stayed within a
//! bound and that the client was dropped or throttled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::alloc::System;
use std::time::Duration;

use cap::Cap;
use support::{TestApp, migrate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// Pings the client offers: far more than the socket buffers on both
/// sides hold, so a server that reads them all has buffered its pongs.
const FLOOD_BYTES: usize = 64 << 20;
/// Heap this process may gain while the flood lasts: the server's bounded
/// write buffer and the flood's own chunk, with room for the runtime. A
/// pong per ping kept would be about as large as the flood.
const BOUND_BYTES: usize = 1 << 20;
/// The client's receive buffer, as in the report.
const CLIENT_RCVBUF: u32 = 4096;
/// How long the client keeps offering pings before it counts as throttled.
const GIVE_UP: Duration = Duration::from_secs(30);

/// One masked client ping with a 125-byte payload (the largest a control
/// frame may carry).
fn ping() -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x89, 0x80 | 125];
    frame.extend_from_slice(&mask);
    frame.extend((0..125).map(|i| b'p' ^ mask[i % 4]));
    frame
}

/// How the flood ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The server closed or reset the connection.
    Dropped,
    /// Writes stopped being accepted for [`GIVE_UP`].
    Throttled,
    /// Every byte was accepted.
    AllTaken,
    /// The heap grew past the bound first.
    HeapGrew(usize),
}

#[tokio::test]
async fn a_client_that_floods_pings_and_never_reads_is_dropped_and_costs_a_bounded_heap() {
    let db = testkit::postgres().await;
    migrate(&db.pool).await;
    let app = TestApp::spawn(&db.url).await;

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(CLIENT_RCVBUF).unwrap();
    let mut stream = socket.connect(app.served.addr).await.unwrap();
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        app.served.addr
    );
    stream.write_all(handshake.as_bytes()).await.unwrap();
    let mut answer = [0u8; 512];
    let got = stream.read(&mut answer).await.unwrap();
    assert!(
        answer[..got].starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&answer[..got])
    );

    let chunk: Vec<u8> = (0..512).flat_map(|_| ping()).collect();
    let before = HEAP.allocated();
    let flood = async {
        let mut sent = 0;
        while sent < FLOOD_BYTES {
            if stream.write_all(&chunk).await.is_err() {
                return Ended::Dropped;
            }
            sent += chunk.len();
            let grown = HEAP.allocated().saturating_sub(before);
            if grown > BOUND_BYTES {
                return Ended::HeapGrew(grown);
            }
        }
        Ended::AllTaken
    };
    let ended = tokio::time::timeout(GIVE_UP, flood)
        .await
        .unwrap_or(Ended::Throttled);
    let peak = HEAP.max_allocated().saturating_sub(before);
    eprintln!("the flood ended {ended:?}; the heap grew by up to {peak} bytes");
    assert!(
        matches!(ended, Ended::Dropped | Ended::Throttled),
        "the flooding client was neither dropped nor throttled: {ended:?}"
    );
    assert!(
        peak <= BOUND_BYTES,
        "the heap grew by up to {peak} bytes during the flood, over {BOUND_BYTES}"
    );
    // The service is fine: a new client gets the tally.
    let mut client = app.connect().await;
    client.next_tally().await;
}
