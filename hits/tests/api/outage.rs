//! Redis going away: the app stays up, says clearly why a visit was not
//! counted, and counts again by itself once Redis is back — whether Redis
//! left after the app started or was never there (compose starts both at
//! once).

use std::time::Duration;

use testkit::{RedisOptions, RedisServer};

use crate::helpers::{Answer, DEADLINE, TestApp};

const NOT_COUNTED: &str =
    "Sorry, this visit was not counted: Redis is not answering. Try again in a moment.";

fn assert_not_counted(answer: &Answer) {
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.content_type, "text/plain; charset=utf-8");
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(answer.body, NOT_COUNTED);
}

/// Waits until the admin listener's `/readyz` says Redis is not
/// answering.
async fn wait_until_not_ready(app: &TestApp) -> Answer {
    testkit::eventually("the app to see Redis gone", DEADLINE, || async {
        let ready = app.admin_get("/readyz").await;
        (ready.status == 503).then_some(ready)
    })
    .await
}

/// Visits until one is counted; every failed one must be a clean 503.
async fn visit_until_counted(app: &TestApp) -> String {
    testkit::eventually("a visit to be counted again", DEADLINE, || async {
        let answer = app.get("/").await;
        if answer.status == 200 {
            Some(answer.body)
        } else {
            assert_not_counted(&answer);
            None
        }
    })
    .await
}

#[tokio::test]
async fn redis_down_gets_a_clear_503_and_counting_resumes_where_it_stopped() {
    let mut redis = RedisServer::start(RedisOptions {
        appendonly: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let app = TestApp::spawn(&redis.url(0)).await;
    assert_eq!(app.get("/").await.body, hits::greeting(1));
    assert_eq!(app.get("/").await.body, hits::greeting(2));

    redis.stop();

    // Once the app has seen Redis go (a visit at that very moment could not
    // tell whether it was counted, and says so), a visit is certainly not
    // counted.
    let ready = wait_until_not_ready(&app).await;
    assert!(ready.body.contains("redis"), "{}", ready.body);
    // The page's port says only that it is not ready.
    let public = app.get("/readyz").await;
    assert_eq!((public.status, public.body.as_str()), (503, "not ready\n"));
    assert_not_counted(&app.get("/").await);
    assert_eq!(
        app.get("/healthz").await.status,
        200,
        "the app itself is alive"
    );

    redis.start_again().await.unwrap();

    // The appendonly file kept 2; no failed visit was counted behind our back.
    assert_eq!(visit_until_counted(&app).await, hits::greeting(3));
    assert_eq!(app.get("/readyz").await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn app_started_before_redis_answers_503_then_counts_from_one() {
    let mut redis = RedisServer::start(RedisOptions::default()).await.unwrap();
    redis.stop();
    let app = TestApp::spawn(&redis.url(0)).await;

    assert_not_counted(&app.get("/").await);
    assert_eq!(app.get("/healthz").await.status, 200);
    assert_eq!(app.get("/readyz").await.status, 503);

    redis.start_again().await.unwrap();

    assert_eq!(visit_until_counted(&app).await, hits::greeting(1));
    assert_eq!(app.get("/").await.body, hits::greeting(2));
    app.stop().await;
}

/// The outage log itself is servicekit's (`servicekit::outage`, tested
/// there); this checks that visits go through it.
#[tokio::test]
async fn a_redis_outage_is_logged_when_it_starts_and_ends_not_per_visit() {
    let logs = testkit::logs::Captured::on_this_thread();
    let mut redis = RedisServer::start(RedisOptions::default()).await.unwrap();
    let app = TestApp::spawn(&redis.url(0)).await;
    redis.stop();
    let visits = 3;
    for _ in 0..visits {
        assert_eq!(app.get("/").await.status, 503);
    }
    redis.start_again().await.unwrap();
    visit_until_counted(&app).await;
    app.stop().await;

    let events = logs.events();
    let warnings: Vec<_> = events.iter().filter(|e| e["level"] == "WARN").collect();
    assert_eq!(
        warnings.len(),
        1,
        "{visits} failed visits during one outage: one warning expected: {warnings:#?}"
    );
    assert_eq!(warnings[0]["message"], "unavailable");
    assert_eq!(warnings[0]["what"], "Redis");
    let back = events
        .iter()
        .find(|e| e["message"] == "available again")
        .unwrap_or_else(|| panic!("no line says Redis is back: {events:#?}"));
    assert_eq!(back["level"], "INFO");
    assert!(back["failures"].as_u64().unwrap() >= visits, "{back}");
}

#[tokio::test]
async fn the_first_visit_after_a_redis_restart_is_counted_once() {
    let mut redis = RedisServer::start(RedisOptions {
        appendonly: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let app = TestApp::spawn(&redis.url(0)).await;
    assert_eq!(app.get("/").await.body, hits::greeting(1));
    for round in 0..4 {
        // Clean stops and crashes; Redis back at once, or after staying down
        // longer than the client's own reconnection attempts last (the
        // pause is the scenario, not a wait for an event).
        if round % 2 == 1 {
            redis.kill();
        } else {
            redis.stop();
        }
        if round >= 2 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        redis.start_again().await.unwrap();
        let answer = app.get("/").await;
        assert_eq!(answer.status, 200, "round {round}: {answer:?}");
        assert_eq!(answer.body, hits::greeting(round + 2), "counted once");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_visit_redis_did_not_confirm_is_not_reported_as_uncounted() {
    let redis = RedisServer::start(RedisOptions::default()).await.unwrap();
    let url = redis.url(0);
    let app = TestApp::spawn(&url).await;
    assert_eq!(app.get("/").await.body, hits::greeting(1));

    // Redis holds every write until told to resume (a minute at most): the
    // app gives up waiting first, so it cannot know whether its INCR will
    // run.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut control = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(60_000)
        .arg("WRITE")
        .query_async(&mut control)
        .await
        .unwrap();
    let answer = app.get("/").await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(
        answer.body,
        "Sorry, Redis did not confirm this visit, so it may or may not have been counted. \
         Try again in a moment."
    );

    // It was counted, once Redis resumed.
    let () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut control)
        .await
        .unwrap();
    testkit::eventually("the unconfirmed visit to count", DEADLINE, || async {
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let count: Option<String> = redis::cmd("GET")
            .arg("hits")
            .query_async(&mut conn)
            .await
            .ok()?;
        (count.as_deref() == Some("2")).then_some(())
    })
    .await;
    assert_eq!(app.get("/").await.body, hits::greeting(3));
}
