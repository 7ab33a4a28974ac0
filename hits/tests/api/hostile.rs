//! Hostile clients: whatever they send, the hit counter answers plainly
//! and keeps no trace of it beyond bounded counters.

use crate::helpers::TestApp;

#[tokio::test]
async fn the_standard_layers_are_mounted() {
    let recorded = testkit::metrics::Recorded::on_this_thread();
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let routes = ["/", "/healthz", "/readyz"];
    testkit::layers::assert_mounted(app.served.addr, &routes, &recorded).await;
}

/// Whether `text` names where Redis is: a URL, the loopback address, or
/// the socket path or port of the test's Redis.
fn names_an_address(text: &str, redis_url: &str) -> bool {
    let place = redis_url
        .rsplit_once("://")
        .map_or(redis_url, |(_, rest)| rest)
        .split(['?', '/'])
        .find(|s| !s.is_empty())
        .unwrap_or(redis_url);
    text.contains("redis://")
        || text.contains("redis+unix")
        || text.contains("127.0.0.1")
        || text.contains(place)
}

#[tokio::test]
async fn error_pages_say_what_happened_without_naming_where_redis_is() {
    let mut server = testkit::RedisServer::start(Default::default())
        .await
        .unwrap();
    let url = server.url(0);
    let app = TestApp::spawn(&url).await;
    let _: () = redis::cmd("SET")
        .arg("hits")
        .arg("abc")
        .query_async(
            &mut redis::Client::open(url.as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    let refused = app.get("/").await;
    assert_eq!(refused.status, 500);
    assert!(
        refused
            .body
            .starts_with("Sorry, this visit was not counted: Redis refused"),
        "{refused:?}"
    );
    assert!(!names_an_address(&refused.body, &url), "{refused:?}");

    server.stop();
    // The visit at the moment Redis goes, and those after.
    for _ in 0..3 {
        let unavailable = app.get("/").await;
        assert_eq!(unavailable.status, 503);
        assert!(unavailable.body.starts_with("Sorry, "), "{unavailable:?}");
        assert!(
            !names_an_address(&unavailable.body, &url),
            "{unavailable:?}"
        );
    }
}
