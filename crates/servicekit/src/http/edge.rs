//! The outermost of the standard layers: what every answer gets on its way
//! out, done in one pass.
//!
//! It keeps or makes the request id, adds the security headers, and counts
//! the request in the metrics, as one layer with one boxed future: a
//! request id from a counter (no system call), and metric handles looked up
//! once per route, method and status. Separate middlewares would each box
//! a future and clone the route behind it on every request; vote's CPU per
//! POST is measured with `scripts/profile-vote.sh` (see docs/profile.md).

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY as CSP, REFERRER_POLICY, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use metrics::{Counter, Histogram};
use tower::{Layer, Service};

use super::{CONTENT_SECURITY_POLICY, UNMATCHED_ROUTE, method_label};

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id kept from a client; a longer one is replaced.
pub(super) const MAX_REQUEST_ID: usize = 64;

/// See the [module](self). Applied per route, so the route that matched is
/// known; each route keeps its own metric handles.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct EdgeLayer;

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            metrics: Arc::default(),
        }
    }
}

/// The service [`EdgeLayer`] wraps a route in.
#[derive(Clone)]
pub(super) struct Edge<S> {
    inner: S,
    metrics: Arc<RouteMetrics>,
}

impl<S, B> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let request_id = keep_or_make_request_id(req.headers_mut());
        let method = method_label(req.method());
        let route = req.extensions().get::<MatchedPath>().cloned();
        let started = Instant::now();
        // The clone is the one that was made ready; a fresh one stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let metrics = self.metrics.clone();
        let answer = inner.call(req);
        Box::pin(async move {
            let Ok(mut response) = answer.await;
            let headers = response.headers_mut();
            headers.insert(REQUEST_ID, request_id);
            add_security_headers(headers);
            let route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
            metrics.record(route, method, response.status().as_u16(), started);
            Ok(response)
        })
    }
}

/// Keeps a client's `x-request-id` (it ties our logs to theirs) only if
/// there is exactly one, short and plain, so no client writes what it likes
/// into every log line about its request; otherwise sets a fresh one.
/// Returns the id, for the response.
fn keep_or_make_request_id(headers: &mut HeaderMap) -> HeaderValue {
    let usable = |v: &HeaderValue| {
        let bytes = v.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    };
    let mut sent = headers.get_all(REQUEST_ID).iter();
    if let (Some(id), None) = (sent.next(), sent.next())
        && usable(id)
    {
        return id.clone();
    }
    let id = fresh_request_id();
    headers.insert(REQUEST_ID, id.clone());
    id
}

/// A request id no other request of this process shares, shaped like a
/// UUID: a per-process random prefix and a counter run through a
/// bijective mix (so ids differ in every digit, and never repeat). Not a
/// secret and not the visitor's identity, so no system call per request.
fn fresh_request_id() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // `RandomState` is seeded from the operating system once per process.
    let prefix = *PREFIX.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    let n = mix(COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut nibbles = ((u128::from(prefix) << 64) | u128::from(n))
        .to_be_bytes()
        .into_iter()
        .flat_map(|b| [b >> 4, b & 0xf]);
    let mut id = [b'-'; 36];
    for (i, c) in id.iter_mut().enumerate() {
        if !matches!(i, 8 | 13 | 18 | 23) {
            *c = b"0123456789abcdef"[usize::from(nibbles.next().unwrap_or(0))];
        }
    }
    // Only hex digits and dashes: always a valid header value.
    HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("-"))
}

/// SplitMix64's finaliser: a bijection on `u64`, so distinct counters give
/// distinct ids.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a page may load and who may frame it, on every answer (pages,
/// assets, errors, probes alike: a header too many costs nothing, a page
/// without them is a hole); and an answer that sets a cookie is not to be
/// stored, so no shared cache hands one visitor's cookie to another.
fn add_security_headers(headers: &mut HeaderMap) {
    headers.insert(CSP, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // For browsers that predate `frame-ancestors`.
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if headers.contains_key(SET_COOKIE) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// One route's `http_requests_total` counters (by method and status) and
/// its `http_request_duration_seconds` histogram, registered on first use.
/// Every label comes from a closed set: the routes the service declares,
/// [`method_label`], and the status codes the service answers with; so
/// the list stays a handful long.
#[derive(Default)]
struct RouteMetrics {
    handles: Mutex<Vec<Handles>>,
}

struct Handles {
    route: Box<str>,
    method: &'static str,
    status: u16,
    requests: Counter,
    duration: Histogram,
}

impl RouteMetrics {
    /// Counts one answer and its latency since `started`.
    fn record(&self, route: &str, method: &'static str, status: u16, started: Instant) {
        // A poisoned lock only means another request panicked mid-lookup;
        // the list itself is never left half-changed.
        let mut handles = self
            .handles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(h) = handles
            .iter()
            .find(|h| h.status == status && h.method == method && *h.route == *route)
        {
            h.requests.increment(1);
            h.duration.record(started.elapsed().as_secs_f64());
            return;
        }
        let requests = metrics::counter!(
            crate::metric::HTTP_REQUESTS.name,
            "route" => route.to_owned(),
            "method" => method,
            "status" => status.to_string()
        );
        let duration = metrics::histogram!(crate::metric::HTTP_REQUEST_DURATION.name, "route" => route.to_owned());
        requests.increment(1);
        duration.record(started.elapsed().as_secs_f64());
        handles.push(Handles {
            route: route.into(),
            method,
            status,
            requests,
            duration,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_request_ids_are_uuid_shaped_and_distinct() {
        let ids: std::collections::HashSet<_> = (0..10_000)
            .map(|_| fresh_request_id().to_str().expect("ascii").to_owned())
            .collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            assert_eq!(id.len(), 36, "{id}");
            let dashes_where_a_uuid_has_them = id.char_indices().all(|(i, c)| {
                if matches!(i, 8 | 13 | 18 | 23) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
            assert!(dashes_where_a_uuid_has_them, "{id}");
        }
    }

    #[test]
    fn each_answer_is_counted_under_its_own_route_method_and_status() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let metrics = RouteMetrics::default();
            let started = Instant::now();
            for _ in 0..3 {
                metrics.record("/", "POST", 200, started);
            }
            metrics.record("/", "POST", 503, started);
            metrics.record("/", "GET", 200, started);
            metrics.record("/static/style.css", "GET", 200, started);
        });
        let text = handle.render();
        for line in [
            r#"http_requests_total{route="/",method="POST",status="200"} 3"#,
            r#"http_requests_total{route="/",method="POST",status="503"} 1"#,
            r#"http_requests_total{route="/",method="GET",status="200"} 1"#,
            r#"http_requests_total{route="/static/style.css",method="GET",status="200"} 1"#,
            r#"http_request_duration_seconds_count{route="/"} 5"#,
            r#"http_request_duration_seconds_count{route="/static/style.css"} 1"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
    }
}
