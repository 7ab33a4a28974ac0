//! `GET /ws`: the live feed. Each client gets the tally as `{"a":N,"b":M}`
//! when it connects and again on every change.
//!
//! One task per client waits on four things at once: a new tally on the
//! feed, its ping timer, a message from the client, and shutdown. The
//! client's only state is a watch receiver, so however slow it is it holds
//! no backlog: when it can take a message again it gets the latest tally.
//! A send that does not complete within [`LiveOptions::send_timeout`] (the
//! client stopped reading and the socket buffers are full) drops the
//! client; a client silent for two ping intervals is dropped too.
//!
//! A client's pings cost it, not us. The WebSocket library answers each
//! ping with a pong queued in the socket's write buffer and goes on
//! reading; with no maximum on that buffer, a client that sends pings and
//! never reads the pongs grew it without bound (a flood of 125-byte pings
//! took result to 976 MB in four seconds). So the write buffer has a
//! maximum ([`MAX_WRITE_BUFFER`]; a pong that does not fit waits in the
//! library's single reply slot, replaced by the next), and after every
//! ping from a client the loop flushes before it reads another frame: a
//! client that does not read its pongs is no longer read either — TCP then
//! stops its sending — and if the flush does not complete within the send
//! timeout the client is dropped as stuck. One client's pings cost at most
//! the write buffer and the socket's kernel buffers.
//!
//! A handshake whose `Sec-WebSocket-Key` is not exactly one base64 form of
//! 16 bytes gets a 400, as RFC 6455 asks ([`crate::handshake`]). An
//! upgrade from another site's page is refused with 403 (see
//! [`servicekit::origin`]; browsers always send `Origin` on a WebSocket
//! handshake). The number of clients is capped by a semaphore, and
//! optionally per remote address ([`servicekit::addresses`]): beyond a cap
//! the upgrade is refused with 503 before any WebSocket exists. On shutdown
//! every client gets a close frame (1001, going away) — axum's graceful
//! shutdown does not wait for upgraded connections, so the loops watch the
//! token themselves and [`crate::serve`] waits for them.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use servicekit::addresses::AddressSlot;
use servicekit::origin::check_same_origin;

use crate::AppState;
use crate::feed::FeedReceiver;
use crate::handshake::check_key;
use crate::metrics::{self, Refusal};

/// Clients only ever send control frames; anything bigger is refused.
const MAX_CLIENT_MESSAGE: usize = 4096;
/// Small read buffers keep ten thousand idle clients cheap: tungstenite
/// zero-fills its whole read buffer (128 KiB by default) on first read.
const READ_BUFFER: usize = 1024;
/// Most bytes a client's socket buffers for it to read: the tally is
/// tens of bytes, a pong at most 127. Beyond it, a pong is not buffered
/// (see the module doc) and a send fails, which drops the client.
pub const MAX_WRITE_BUFFER: usize = 16 * 1024;
/// How long a closing handshake may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Per-client timing.
#[derive(Debug, Clone, Copy)]
pub struct LiveOptions {
    /// Time between pings; a client silent for two intervals is dropped.
    pub ping_interval: Duration,
    /// Longest a single send may take before the client counts as stuck.
    pub send_timeout: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            ping_interval: Duration::from_secs(20),
            send_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a client's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    ShuttingDown,
    ClientClosed,
    Unresponsive,
    Stuck,
    Broken,
}

/// The `GET /ws` handler: refuses malformed handshakes (400) and other
/// sites' pages (403), upgrades when there is room, 503 when not.
pub async fn live_feed(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(why) = check_key(&headers) {
        tracing::debug!(%why, "refusing a malformed WebSocket handshake");
        return (
            StatusCode::BAD_REQUEST,
            "This address serves the result page's live feed; the request to open \
             it was malformed.\n",
        )
            .into_response();
    }
    if let Err(why) = check_same_origin(&headers, &state.allowed_origins) {
        metrics::client_refused(Refusal::CrossSite);
        tracing::debug!(%why, "refusing a live client from another site");
        return (
            StatusCode::FORBIDDEN,
            "The live feed serves the result page of this site only.\n",
        )
            .into_response();
    }
    // Taken before the global slot, so a refused address holds none.
    let address_slot = match (&state.per_address, peer) {
        (Some(cap), Some(Extension(ConnectInfo(peer)))) => match cap.try_take(peer.ip()) {
            Some(slot) => Some(slot),
            None => {
                metrics::client_refused(Refusal::PerAddress);
                tracing::debug!("too many live clients from one address; refusing one");
                return too_many(
                    "Too many live result pages are open from your address; \
                     close some or try again shortly.\n",
                );
            }
        },
        _ => None,
    };
    let Ok(permit) = state.clients.clone().try_acquire_owned() else {
        metrics::client_refused(Refusal::Full);
        tracing::debug!("live feed full; refusing a client");
        return too_many(
            "Too many live result pages are open on this server; try again shortly.\n",
        );
    };
    let slots = Slots {
        _global: permit,
        _address: address_slot,
    };
    let feed = state.feed.subscribe();
    let shutdown = state.shutdown.clone();
    let options = state.live;
    let tracker = state.tracker.clone();
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| {
            tracker.track_future(serve_client(socket, feed, shutdown, options, slots))
        })
}

/// A 503 saying the feed has no room for this client.
fn too_many(message: &'static str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(RETRY_AFTER, "5")],
        message,
    )
        .into_response()
}

/// The places a live client holds while it lives: one of `MAX_CLIENTS`,
/// and one of its address's if that is capped.
struct Slots {
    _global: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
}

/// Counts a client in `result_clients_connected` for as long as it lives.
struct Connected;

impl Connected {
    fn new() -> Self {
        metrics::clients_connected(1.0);
        Connected
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        metrics::clients_connected(-1.0);
    }
}

/// Streams the tally to one client until it leaves, fails or we shut down.
async fn serve_client(
    mut socket: WebSocket,
    mut feed: FeedReceiver,
    shutdown: CancellationToken,
    options: LiveOptions,
    _slots: Slots,
) {
    let _connected = Connected::new();
    // Handles made once: this loop runs for every client on every change.
    let sent = metrics::messages_sent();
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    // The current tally goes out at once (if there is one yet).
    feed.mark_changed();
    let mut ping = tokio::time::interval_at(
        Instant::now() + options.ping_interval,
        options.ping_interval,
    );
    let mut last_heard = Instant::now();
    let ending = loop {
        tokio::select! {
            _ = &mut cancelled => break Ending::ShuttingDown,
            changed = feed.changed() => {
                if changed.is_err() {
                    break Ending::ShuttingDown; // the feed is gone: we are stopping
                }
                let json = feed.borrow_and_update().as_ref().map(|s| s.json.clone());
                if let Some(json) = json {
                    if let Err(ending) = send(&mut socket, Message::Text(json), options).await {
                        break ending;
                    }
                    sent.increment(1);
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > 2 * options.ping_interval {
                    break Ending::Unresponsive;
                }
                if let Err(ending) = send(&mut socket, Message::Ping(Default::default()), options).await {
                    break ending;
                }
            }
            incoming = socket.recv() => match incoming {
                // Text from a client means nothing here; any frame shows it is alive.
                Some(Ok(Message::Close(_))) | None => break Ending::ClientClosed,
                // Its pong goes out before we read on (see the module doc).
                Some(Ok(Message::Ping(_))) => {
                    last_heard = Instant::now();
                    if let Err(ending) = flush(&mut socket, options).await {
                        break ending;
                    }
                }
                Some(Ok(_)) => last_heard = Instant::now(),
                Some(Err(_)) => break Ending::Broken,
            },
        }
    };
    tracing::debug!(?ending, "live client gone");
    match ending {
        Ending::ShuttingDown => {
            let close = Message::Close(Some(CloseFrame {
                code: close_code::AWAY,
                reason: "server shutting down".into(),
            }));
            if send(&mut socket, close, options).await.is_ok() {
                // Give the client a moment to answer the close handshake.
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                    while let Some(Ok(_)) = socket.recv().await {}
                })
                .await;
            }
        }
        // tungstenite queued the reply to the client's close; send it.
        Ending::ClientClosed => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.flush()).await;
        }
        Ending::Unresponsive | Ending::Stuck | Ending::Broken => {}
    }
}

/// Writes out what the socket holds (a pong), giving up on a client that
/// does not take it in time.
async fn flush(socket: &mut WebSocket, options: LiveOptions) -> Result<(), Ending> {
    match tokio::time::timeout(options.send_timeout, socket.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Ending::Broken),
        Err(_) => Err(Ending::Stuck),
    }
}

/// Sends one message, giving up on a client that does not take it in time.
async fn send(
    socket: &mut WebSocket,
    message: Message,
    options: LiveOptions,
) -> Result<(), Ending> {
    match tokio::time::timeout(options.send_timeout, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Ending::Broken),
        Err(_) => Err(Ending::Stuck),
    }
}
