//! Hostile clients: whatever they send, the hit counter answers plainly
//! and keeps no trace of it beyond bounded counters.

use crate::helpers::TestApp;

#[tokio::test]
async fn made_up_methods_and_paths_add_no_metric_series() {
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let routes = ["/", "/healthz", "/readyz", "/metrics"];
    testkit::metrics::assert_request_labels_are_bounded(app.served.addr, &routes, 1500, 400).await;
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    use testkit::raw::{request, send};
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let visit = request("GET", "/", &[], b"");
    send(app.served.addr, &visit)
        .await
        .unwrap()
        .assert_security_headers("a visit");
    send(app.served.addr, &request("GET", "/nope", &[], b""))
        .await
        .unwrap()
        .assert_security_headers("an unknown path");
    let _: () = redis::cmd("SET")
        .arg("hits")
        .arg("abc")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let refused = send(app.served.addr, &visit).await.unwrap();
    assert_eq!(refused.status, 500);
    refused.assert_security_headers("a visit Redis refused to count");
}
