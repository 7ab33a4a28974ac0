//! What a visitor sees: the count, from 1, one per visit, none lost when
//! many arrive at once.

use std::collections::BTreeSet;

use crate::helpers::{TestApp, oneshot, state, stored_count};

#[tokio::test]
async fn first_visit_is_counted_as_one_and_each_visit_adds_one() {
    let redis = testkit::redis().await;
    let app = hits::router(state(&redis.url));

    for n in 1..=3 {
        let (status, content_type, body) = oneshot(&app, "/").await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "text/plain; charset=utf-8");
        assert_eq!(
            body,
            format!("Hello from Redis! I have been seen {n} times.")
        );
    }
    assert_eq!(stored_count(&redis.url).await.as_deref(), Some("3"));
}

#[tokio::test]
async fn counting_continues_from_what_redis_already_holds() {
    let redis = testkit::redis().await;
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("SET")
        .arg("hits")
        .arg(41)
        .query_async(&mut conn)
        .await
        .unwrap();
    let app = hits::router(state(&redis.url));

    let (status, _, body) = oneshot(&app, "/").await;

    assert_eq!(status, 200);
    assert_eq!(body, "Hello from Redis! I have been seen 42 times.");
}

#[tokio::test]
async fn a_thousand_concurrent_visits_count_exactly_a_thousand() {
    const VISITS: usize = 1_000;
    const AT_A_TIME: usize = 50;
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;

    // 50 visitors, each making 20 visits one after the other: 50 requests
    // in flight at any moment, 1,000 in all.
    let mut visitors = tokio::task::JoinSet::new();
    for _ in 0..AT_A_TIME {
        let client = app.client.clone();
        let url = app.url("/");
        visitors.spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..VISITS / AT_A_TIME {
                let response = client.get(&url).send().await.unwrap();
                assert_eq!(response.status(), 200);
                seen.push(response.text().await.unwrap());
            }
            seen
        });
    }
    let mut counts = BTreeSet::new();
    while let Some(seen) = visitors.join_next().await {
        for body in seen.unwrap() {
            let n: u64 = body
                .strip_prefix("Hello from Redis! I have been seen ")
                .and_then(|rest| rest.strip_suffix(" times."))
                .unwrap_or_else(|| panic!("unexpected body {body:?}"))
                .parse()
                .unwrap();
            assert!(counts.insert(n), "two visitors were shown the count {n}");
        }
    }

    assert_eq!(stored_count(&redis.url).await.as_deref(), Some("1000"));
    assert_eq!(counts, (1..=1000).collect::<BTreeSet<u64>>());
    app.stop().await;
}

#[tokio::test]
async fn only_the_home_page_counts() {
    let redis = testkit::redis().await;
    let app = hits::router(state(&redis.url));

    for path in ["/healthz", "/readyz"] {
        let (status, _, _) = oneshot(&app, path).await;
        assert_eq!(status, 200, "{path}");
    }
    // Metrics are on the admin listener only.
    let (status, _, _) = oneshot(&app, "/metrics").await;
    assert_eq!(status, 404);
    let (status, _, _) = oneshot(&app, "/favicon.ico").await;
    assert_eq!(status, 404);
    assert_eq!(stored_count(&redis.url).await, None);

    let (_, _, body) = oneshot(&app, "/").await;
    assert_eq!(body, "Hello from Redis! I have been seen 1 times.");
}

#[tokio::test]
async fn a_hits_key_that_is_not_a_number_gets_a_clear_500_and_is_left_alone() {
    let redis = testkit::redis().await;
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("SET")
        .arg("hits")
        .arg("lots")
        .query_async(&mut conn)
        .await
        .unwrap();
    let app = hits::router(state(&redis.url));

    let (status, content_type, body) = oneshot(&app, "/").await;

    assert_eq!(status, 500);
    assert_eq!(content_type, "text/plain; charset=utf-8");
    assert_eq!(
        body,
        "Sorry, this visit was not counted: Redis refused to increment the key `hits`, \
         which does not hold a whole number."
    );
    assert_eq!(stored_count(&redis.url).await.as_deref(), Some("lots"));
}

#[tokio::test]
async fn a_hits_key_of_another_type_gets_a_clear_500() {
    let redis = testkit::redis().await;
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("RPUSH")
        .arg("hits")
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    let app = hits::router(state(&redis.url));

    let (status, _, body) = oneshot(&app, "/").await;

    assert_eq!(status, 500);
    assert!(body.contains("does not hold a whole number"), "{body}");
}

#[tokio::test]
async fn metrics_count_the_visits() {
    let recorded = testkit::metrics::Recorded::on_this_thread();
    let redis = testkit::redis().await;
    let app = hits::router(state(&redis.url));

    for _ in 0..3 {
        assert_eq!(oneshot(&app, "/").await.0, 200);
    }

    assert_eq!(recorded.value("hits_counted_total", &[]), 3.0);
    let visits = [("route", "/"), ("method", "GET"), ("status", "200")];
    assert_eq!(recorded.value("http_requests_total", &visits), 3.0);
    assert_eq!(
        recorded.value("http_request_duration_seconds_count", &[("route", "/")]),
        3.0
    );
}
