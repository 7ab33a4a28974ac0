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
