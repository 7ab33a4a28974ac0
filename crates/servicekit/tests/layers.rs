//! The standard layers every service's router gets
//! (`servicekit::http::with_standard_layers`), tested once here: the
//! security headers on every answer, whatever produced it, and request
//! metrics labelled from closed sets whatever a client sends. Each service
//! keeps one small test that the layers are mounted on its router
//! (`testkit::layers::assert_mounted`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::http::header::SET_COOKIE;
use axum::routing::get;
use servicekit::admin::Probe;
use servicekit::http::{ServeOptions, with_standard_layers};
use testkit::raw::{request, send};

/// A router with a page, a page that sets a cookie, a handler that panics
/// and one that outlasts the request timeout, under the standard layers;
/// served with its admin listener.
async fn serve_layered() -> testkit::Served<std::io::Error> {
    let router = Router::new()
        .route("/", get(|| async { "a page" }).post(|| async { "posted" }))
        .route(
            "/cookie",
            get(|| async { ([(SET_COOKIE, "voter_id=0123456789abcdef")], "a cookie") }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("a handler's bug");
                }
                "unreachable"
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(600)).await;
                "too late"
            }),
        );
    let router = with_standard_layers(router, Duration::from_millis(200));
    testkit::Served::start_with_admin(|public, admin, shutdown| async move {
        let admin = tokio::spawn(servicekit::admin::serve(
            admin,
            Probe::nothing(),
            shutdown.clone(),
        ));
        servicekit::http::serve(public, router, shutdown, ServeOptions::default()).await?;
        admin.await.expect("the admin listener's task")
    })
    .await
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_one_that_sets_a_cookie_is_not_stored() {
    let served = serve_layered().await;
    for (what, bytes, status) in [
        ("a page", request("GET", "/", &[], b""), 200),
        ("a post", request("POST", "/", &[], b""), 200),
        ("an unknown path", request("GET", "/nope", &[], b""), 404),
        ("a made-up method", request("BREW", "/", &[], b""), 405),
        ("a handler's panic", request("GET", "/panic", &[], b""), 500),
        ("a request timeout", request("GET", "/slow", &[], b""), 503),
        ("a cookie", request("GET", "/cookie", &[], b""), 200),
    ] {
        let answer = send(served.addr, &bytes).await.unwrap();
        assert_eq!(answer.status, status, "{what}: {answer:?}");
        answer.assert_security_headers(what);
        assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{what}");
        let stored = answer.header("cache-control") != Some("no-store");
        let sets_cookie = answer.header("set-cookie").is_some();
        assert_eq!(stored, !sets_cookie, "{what}: {answer:?}");
    }
}

#[tokio::test]
async fn made_up_methods_and_paths_add_no_metric_series() {
    let served = serve_layered().await;
    let routes = ["/", "/cookie", "/panic", "/slow"];
    testkit::metrics::assert_request_labels_are_bounded(
        served.addr,
        served.admin_addr.unwrap(),
        &routes,
        1500,
        400,
    )
    .await;
}
