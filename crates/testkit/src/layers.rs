//! One small check per service that the standard layers
//! (`servicekit::http::with_standard_layers`) wrap its router: what those
//! layers do is tested once, in servicekit's `tests/layers.rs`.

use std::net::SocketAddr;

use crate::metrics::Recorded;
use crate::raw::{request, send};

/// Sends the service at `addr` a `GET` of each of its `routes`, a made-up
/// method on `/` and a request for a path it does not have; checks that
/// every answer carries the security headers, and that `recorded`
/// (installed before the service was built) counted the last two once
/// each, under the closed labels: `OTHER` on `/`, and the unmatched route.
pub async fn assert_mounted(addr: SocketAddr, routes: &[&str], recorded: &Recorded) {
    for route in routes {
        send(addr, &request("GET", route, &[], b""))
            .await
            .unwrap_or_else(|e| panic!("GET {route}: {e}"))
            .assert_security_headers(&format!("GET {route}"));
    }
    let made_up = send(addr, &request("BREW", "/", &[], b""))
        .await
        .expect("an answer to a made-up method");
    assert_eq!(made_up.status, 405, "{made_up:?}");
    made_up.assert_security_headers("a made-up method");
    let unknown = send(addr, &request("GET", "/made-up/path?q=1", &[], b""))
        .await
        .expect("an answer for an unknown path");
    assert_eq!(unknown.status, 404, "{unknown:?}");
    unknown.assert_security_headers("an unknown path");

    let counted = |labels: &[(&str, &str)]| recorded.value("http_requests_total", labels);
    assert_eq!(
        counted(&[("route", "/"), ("method", "OTHER"), ("status", "405")]),
        1.0,
        "{}",
        recorded.render()
    );
    assert_eq!(
        counted(&[("route", "unmatched"), ("method", "GET"), ("status", "404")]),
        1.0,
        "{}",
        recorded.render()
    );
}
