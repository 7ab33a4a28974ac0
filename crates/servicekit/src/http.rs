//! Serving HTTP: the accept loop and the middleware every service shares.
//!
//! `axum::serve` sets no timeout for reading request headers, so one
//! slow client ("slowloris") can hold a connection open forever. [`serve`]
//! drives hyper directly instead: headers must arrive within
//! [`ServeOptions::header_timeout`], at most
//! [`ServeOptions::max_connections`] connections are open at once (further
//! clients wait in the listen backlog), and on shutdown every connection is
//! asked to finish its request in flight and close; those still open after
//! [`ServeOptions::drain_timeout`] are closed. WebSocket upgrades work:
//! an upgraded connection leaves the count (its HTTP part is over), and its
//! handler watches the same shutdown token and closes itself. Every request
//! carries the client's address as [`ConnectInfo`].
//!
//! Before the first byte of a request, a connection costs its client
//! nothing and holds one of the server's slots, so a flood of idle
//! connections (2,177 from one address in a test) kept everyone else
//! waiting until the header timeout freed slots. Two limits apply there:
//!
//! - a new connection must send its first byte within
//!   [`ServeOptions::first_byte_timeout`] (3 s, against the header
//!   timeout's 10 s for a whole head), or it is closed without an answer;
//! - optionally, at most [`ServeOptions::max_connections_per_address`]
//!   connections from one remote address are served at once
//!   (`MAX_CONNECTIONS_PER_ADDRESS`); further ones from that address are
//!   closed as soon as they are accepted, holding no slot, and counted in
//!   `http_connections_refused_total`. Off by default: behind a proxy or a
//!   NAT every client has the same address (see [`crate::addresses`]).
//!
//! What is left to a reverse proxy or the network in front: floods from
//! many addresses, rate limits, SYN floods, and connections idle between
//! two requests (they are closed by the header timeout).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::addresses::AddressCap;
use crate::outage::Outage;

mod edge;

pub use edge::REQUEST_ID;

/// Connections served at once unless configured (`MAX_CONNECTIONS`).
/// `cargo xtask bench` measured what one costs the server: about 9 KiB idle
/// after a request, about 21 KiB at worst (mid-way through a request head
/// just under [`ServeOptions::max_head_bytes`]). At this cap that is at most
/// about 43 MiB on top of a service's ~10 MiB: inside the 128 MiB its
/// manifests allow, with room for result's live pages (`MAX_CLIENTS`).
/// Clients beyond the cap wait in the listen backlog rather than being
/// refused.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 2_048;

/// Largest request head a connection buffers unless configured
/// ([`ServeOptions::max_head_bytes`]): several times what a browser sends,
/// cookies and all.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;

/// Limits for [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Time a new connection has to send the first byte of its first
    /// request; a silent one is closed without an answer.
    pub first_byte_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Connections served at once from one remote address; more from it
    /// are closed when accepted. 0: no such cap.
    pub max_connections_per_address: usize,
    /// How long shutdown waits for open connections to finish before it
    /// closes them.
    pub drain_timeout: Duration,
    /// Longest a request may take, body and handler included, before it is
    /// answered with 503 (applied by [`with_standard_layers`]).
    pub request_timeout: Duration,
    /// Longest a client may take to send a request's body once its headers
    /// are in. A handler that reads a body answers 408 past it, before the
    /// request timeout turns a client's slowness into the server's 503.
    pub body_timeout: Duration,
    /// Largest request head (request line and headers) a connection
    /// buffers; a larger one is answered 431. With hyper's default (about
    /// 400 KiB) a thousand clients sending long headers took vote to 321 MB.
    /// Never below 8 KiB (hyper's minimum).
    pub max_head_bytes: usize,
}

impl ServeOptions {
    /// The default limits with other connection caps (in all, and per
    /// remote address; 0 is none).
    pub fn with_max_connections(max_connections: u32, per_address: u32) -> Self {
        ServeOptions {
            max_connections: max_connections as usize,
            max_connections_per_address: per_address as usize,
            ..ServeOptions::default()
        }
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(3),
            max_connections: DEFAULT_MAX_CONNECTIONS as usize,
            max_connections_per_address: 0,
            drain_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(5),
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` fires, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    options: ServeOptions,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(options.max_connections));
    let per_address = (options.max_connections_per_address > 0)
        .then(|| AddressCap::new(options.max_connections_per_address as u32));
    let connections = TaskTracker::new();
    // Fired when the drain timeout is up: what is still open is closed.
    let drained = CancellationToken::new();
    // Failing accepts (out of file descriptors) repeat 20 times a second.
    let accepting = Outage::new("new connections", "clients wait until one closes");
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(options.max_head_bytes.max(8 * 1024))
        .keep_alive(true);

    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // the semaphore is never closed
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    accepting.succeeded();
                    accepted
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    accepting.failed(&e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let address_slot = match &per_address {
            Some(cap) => match cap.try_take(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    // Dropped here, with the permit: it holds no slot.
                    metrics::counter!(crate::metric::HTTP_CONNECTIONS_REFUSED.name).increment(1);
                    tracing::debug!("too many connections from one address; closing one");
                    continue;
                }
            },
            None => None,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let http = http.clone();
        let (shutdown, drained) = (shutdown.clone(), drained.clone());
        connections.spawn(async move {
            let _permit = permit;
            let _address_slot = address_slot;
            let mut first = [0u8; 1];
            let started = tokio::select! {
                _ = shutdown.cancelled() => return,
                peeked = tokio::time::timeout(options.first_byte_timeout, stream.peek(&mut first)) => peeked,
            };
            // Silent past the timeout, closed, or failed: nothing to serve.
            if !matches!(started, Ok(Ok(1..))) {
                return;
            }
            // Handlers that need the client's address take `ConnectInfo`.
            let service = TowerToHyperService::new(router.map_request(
                move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                },
            ));
            let conn = http
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            // Dropping the connection closes its socket.
            tokio::select! {
                _ = conn => {}
                _ = drained.cancelled() => {}
            }
        });
    }

    drop(listener);
    connections.close();
    if tokio::time::timeout(options.drain_timeout, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the drain timeout; closing them"
        );
        drained.cancel();
        connections.wait().await;
    }
    Ok(())
}

/// Adds what every service's router needs: a request id (`x-request-id`,
/// kept if the client sent a plain one), a tracing span per request,
/// per-route request metrics, the security headers, a timeout answered
/// with 503, and a 500 for a handler that panics. The request id, the
/// metrics and the security headers are one layer of our own ([`edge`]:
/// as four middlewares they cost vote a third of its CPU per POST); the
/// span, the panic's answer and the timeout are tower-http's.
pub fn with_standard_layers(router: Router, request_timeout: Duration) -> Router {
    // One `layer` call: axum boxes the route once per call, and clones every
    // box on every request.
    router.layer(
        tower::ServiceBuilder::new()
            .layer(edge::EdgeLayer)
            // A 5xx here is an answer the service chose (a store is down,
            // the client cap is reached) and has logged with its cause;
            // tower-http would add an ERROR line per request on top.
            // `http_requests_total` counts them by status.
            .layer(
                TraceLayer::new_for_http()
                    .on_failure(DefaultOnFailure::new().level(Level::DEBUG))
                    .make_span_with(request_span),
            )
            .layer(CatchPanicLayer::custom(answer_panic))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                request_timeout,
            )),
    )
}

/// The span around a request: its method, route template and id.
fn request_span(req: &Request) -> tracing::Span {
    let id = req
        .headers()
        .get(edge::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    tracing::info_span!(
        "request",
        method = method_label(req.method()),
        route,
        request_id = id
    )
}

/// What a page may load and who may frame it: only this service's own
/// origin (its stylesheets, scripts, icons and, for the result page, its
/// WebSocket: `'self'` covers `ws:`/`wss:` to the same host), no plugins,
/// no `<base>`, forms only to itself, and no framing (clickjacking).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A handler that panicked: logged at ERROR inside the request's span, and
/// answered with a plain 500 that says nothing of the cause. Without this,
/// hyper drops the connection (the client sees a reset, the request is in
/// no metric) and the panic's message reaches only stderr.
fn answer_panic(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    use axum::response::IntoResponse;
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    tracing::error!(panic = message, "a request handler panicked; answered 500");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "Sorry, something went wrong on our side. The service log says what.\n",
    )
        .into_response()
}

/// A file embedded in the binary (stylesheet, script, icon), served with
/// its type and cached for an hour: a new release shows within the hour.
pub fn static_asset(content_type: &'static str, body: &'static str) -> Response {
    use axum::response::IntoResponse;
    (
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The `method` label of a request: one of the standard methods, or
/// `OTHER` for whatever else a client sends (a label per made-up method
/// would let any client grow the metrics without bound).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// The `route` label of a request no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn request_id_seen(sent: &[&str]) -> String {
        let app = with_standard_layers(
            Router::new().route("/", get(|| async { "ok" })),
            Duration::from_secs(5),
        );
        let mut request = axum::http::Request::get("/");
        for value in sent {
            request = request.header("x-request-id", *value);
        }
        let response = app
            .oneshot(request.body(Body::empty()).expect("a valid request"))
            .await
            .expect("infallible");
        let ids: Vec<_> = response.headers().get_all("x-request-id").iter().collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
        ids[0].to_str().expect("ascii").to_owned()
    }

    #[tokio::test]
    async fn a_plain_client_request_id_is_kept_and_anything_else_replaced() {
        assert_eq!(request_id_seen(&["abc-123_x.y:z"]).await, "abc-123_x.y:z");
        let long = "a".repeat(edge::MAX_REQUEST_ID + 1);
        for sent in [
            vec![long.as_str()],
            vec!["has space"],
            vec!["quote\""],
            vec![""],
            vec!["one", "two"],
        ] {
            let seen = request_id_seen(&sent).await;
            assert!(!sent.contains(&seen.as_str()), "{sent:?} kept as {seen}");
            assert_eq!(seen.len(), 36, "a fresh id instead of {sent:?}: {seen}");
        }
    }

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for made_up in ["BREW", "get", "M00001X"] {
            let method = Method::from_bytes(made_up.as_bytes()).expect("a token");
            assert_eq!(method_label(&method), "OTHER");
        }
    }
}
