//! What one connection may make the server hold: the limits of
//! `servicekit::http::serve` that keep a service inside its memory limit.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use servicekit::http::ServeOptions;
use testkit::raw::RawConn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Serves a one-route router with the default options; returns its address.
async fn serve_default() -> testkit::Served<std::io::Error> {
    let router = Router::new().route("/", get(|| async { "ok" }));
    testkit::Served::start(|listener, shutdown| {
        servicekit::http::serve(listener, router, shutdown, ServeOptions::default())
    })
    .await
}

/// Sends `head` (a request line and headers, without the blank line that
/// ends them) followed by the blank line; returns the status line.
async fn status_for(addr: std::net::SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connecting");
    // The server may answer (and stop reading) before the head is whole.
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(b"\r\n").await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 1024];
        while !answer.windows(2).any(|w| w == b"\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 10 s");
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

/// A request whose headers add up to `bytes` (in 1 KiB headers).
fn request_with_headers(bytes: usize) -> String {
    let mut head = String::from("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    let line = format!("X-Pad: {}\r\n", "a".repeat(1024 - 9));
    for _ in 0..bytes / 1024 {
        head.push_str(&line);
    }
    head
}

#[tokio::test]
async fn a_request_head_over_16_kib_is_refused_without_being_buffered() {
    let served = serve_default().await;
    // Ordinary requests, cookies and all, fit.
    let small = status_for(served.addr, &request_with_headers(8 * 1024)).await;
    assert!(
        small.starts_with("HTTP/1.1 200"),
        "8 KiB of headers: {small}"
    );
    // Hyper would otherwise buffer about 400 KiB per connection: times the
    // connection cap, far beyond any service's memory limit.
    let big = status_for(served.addr, &request_with_headers(40 * 1024)).await;
    assert!(
        big.starts_with("HTTP/1.1 431"),
        "40 KiB of headers should get 431, got: {big:?}"
    );
}

/// A server whose `/held` handler tells the test it has started (on
/// `entered`) and answers once the test says so (on `release`), or never.
async fn serve_held(
    options: ServeOptions,
    entered: tokio::sync::mpsc::Sender<()>,
    release: std::sync::Arc<tokio::sync::Notify>,
) -> testkit::Served<std::io::Error> {
    let held = move || {
        let (entered, release) = (entered.clone(), release.clone());
        async move {
            let _ = entered.send(()).await;
            release.notified().await;
            "answered after the shutdown signal"
        }
    };
    let router = Router::new().route("/held", get(held));
    testkit::Served::start(|listener, shutdown| {
        servicekit::http::serve(listener, router, shutdown, options)
    })
    .await
}

#[tokio::test]
async fn a_request_in_flight_at_shutdown_is_answered_before_the_server_stops() {
    use testkit::raw::{RawConn, request};
    let (entered, mut in_handler) = tokio::sync::mpsc::channel(1);
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let options = ServeOptions {
        drain_timeout: Duration::from_secs(600),
        ..ServeOptions::default()
    };
    let mut served = serve_held(options, entered, release.clone()).await;
    let addr = served.addr;
    let mut client = RawConn::connect(addr).await.unwrap();
    client
        .send(&request("GET", "/held", &[], b""))
        .await
        .unwrap();
    in_handler
        .recv()
        .await
        .expect("the request reached its handler");

    let stopping = served.stop();
    let answered = async {
        // Shutdown has begun (the server stops accepting); then the handler
        // finishes.
        testkit::eventually("the listener to close", Duration::from_secs(10), || async {
            RawConn::connect(addr).await.is_err().then_some(())
        })
        .await;
        release.notify_one();
        client.response(Duration::from_secs(10)).await
    };
    let ((), answer) = tokio::join!(stopping, answered);
    let answer = answer.expect("an answer, not a dropped connection");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.text(), "answered after the shutdown signal");
}

#[tokio::test]
async fn connections_still_open_at_the_drain_timeout_are_closed() {
    use testkit::raw::{RawConn, request};
    let (entered, mut in_handler) = tokio::sync::mpsc::channel(1);
    // Never released: the request outlasts any drain.
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let options = ServeOptions {
        drain_timeout: Duration::from_millis(200),
        ..ServeOptions::default()
    };
    let mut served = serve_held(options, entered, release).await;
    let mut held = RawConn::connect(served.addr).await.unwrap();
    held.send(&request("GET", "/held", &[], b"")).await.unwrap();
    in_handler
        .recv()
        .await
        .expect("the request reached its handler");
    // And one idle kept-alive connection, after a request of its own.
    let mut idle = RawConn::connect(served.addr).await.unwrap();
    idle.send(&request("GET", "/nope", &[], b"")).await.unwrap();
    assert_eq!(
        idle.response(Duration::from_secs(10)).await.unwrap().status,
        404
    );

    // `stop` fails unless `serve` returns within its own deadline.
    served.stop().await;
    for (what, conn) in [("the held request", &mut held), ("the idle one", &mut idle)] {
        assert!(
            conn.closed_within(Duration::from_secs(10)).await,
            "{what}'s connection stayed open after the server stopped"
        );
        assert_eq!(conn.pending_text(), "", "{what} got an answer");
    }
}

/// Where the test's clients connect from: the flood, and everyone else
/// (Linux routes all of 127.0.0.0/8 to the loopback).
const FLOODER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const SOMEONE_ELSE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Serves a one-route router with `options`.
async fn serve_with(options: ServeOptions) -> testkit::Served<std::io::Error> {
    let router = Router::new().route("/", get(|| async { "ok" }));
    testkit::Served::start(|listener, shutdown| {
        servicekit::http::serve(listener, router, shutdown, options)
    })
    .await
}

/// The report: idle connections from one address took every slot, and
/// everyone else waited until the header timeout freed some. The timeouts
/// here are a minute, so only the per-address cap can let the other
/// client in while the flood's connections are still open; the ones over
/// the cap are closed at once.
#[tokio::test]
async fn an_idle_flood_from_one_address_leaves_room_for_everyone_else() {
    let options = ServeOptions {
        header_timeout: Duration::from_secs(60),
        first_byte_timeout: Duration::from_secs(60),
        max_connections: 16,
        max_connections_per_address: 4,
        ..ServeOptions::default()
    };
    let served = serve_with(options).await;
    let mut flood = Vec::new();
    for _ in 0..options.max_connections {
        flood.push(RawConn::connect_from(FLOODER, served.addr).await.unwrap());
    }
    let mut other = RawConn::connect_from(SOMEONE_ELSE, served.addr)
        .await
        .unwrap();
    other
        .send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = other.response(Duration::from_secs(10)).await;
    assert!(
        matches!(&answer, Ok(a) if a.status == 200),
        "the other client was not served while the flood held its connections: {answer:?}"
    );
    // Served while the flood's first four are still open; the rest were
    // closed without an answer.
    let (held, over) = flood.split_at_mut(options.max_connections_per_address);
    assert!(
        held.iter().all(RawConn::is_quiet),
        "a connection within the cap was closed"
    );
    for conn in over {
        assert!(conn.closed_within(Duration::from_secs(10)).await);
        assert_eq!(
            conn.pending_text(),
            "",
            "a refused connection got an answer"
        );
    }
}

/// A new connection that sends nothing is closed at the first-byte
/// timeout, long before the header timeout, without an answer; one that
/// starts a request in time is served.
#[tokio::test]
async fn a_connection_silent_past_the_first_byte_timeout_is_closed_without_an_answer() {
    let served = serve_with(ServeOptions {
        header_timeout: Duration::from_secs(60),
        first_byte_timeout: Duration::from_millis(200),
        ..ServeOptions::default()
    })
    .await;
    let mut silent = RawConn::connect(served.addr).await.unwrap();
    let mut prompt = RawConn::connect(served.addr).await.unwrap();
    prompt
        .send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = prompt.response(Duration::from_secs(10)).await.unwrap();
    assert_eq!(answer.status, 200);
    // Well within the header timeout's minute.
    assert!(silent.closed_within(Duration::from_secs(10)).await);
    assert_eq!(silent.pending_text(), "");
}
