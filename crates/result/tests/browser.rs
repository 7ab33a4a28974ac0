//! The result page in a real browser (headless Chromium): live updates in
//! place, the reconnect indicator, and the script's figures matching the
//! server's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use contract::Tally;
use serde_json::json;
use support::{DEADLINE, TestApp, insert_many, insert_vote, migrate, settings};
use testkit::browser::Browser;

/// Runs `script` in the page and returns its result.
async fn eval(browser: &Browser, script: &str) -> serde_json::Value {
    browser
        .execute(script, vec![])
        .await
        .unwrap()
        .json()
        .clone()
}

#[tokio::test]
async fn the_page_updates_in_place_with_the_servers_figures() {
    let db = testkit::postgres().await;
    migrate(&db.pool).await;
    let app = TestApp::spawn(&db.url).await;
    let browser = Browser::start().await.unwrap();
    browser.goto(app.url("/")).await.unwrap();
    browser
        .wait_for_text("#votes", "No votes yet", DEADLINE)
        .await
        .unwrap();
    // A mark on this document: a reload would wipe it.
    eval(&browser, "window.notReloaded = true;").await;

    insert_many(&db.pool, "a", "a", 2).await;
    insert_vote(&db.pool, "b1", "b").await;
    browser
        .wait_for_text("#votes", "3 votes", DEADLINE)
        .await
        .unwrap();
    assert_eq!(browser.text("#percent-a").await.unwrap(), "67.0%");
    assert_eq!(browser.text("#percent-b").await.unwrap(), "33.0%");
    let widths = eval(
        &browser,
        "return [document.getElementById('bar-a').style.width, \
                 document.getElementById('bar-b').style.width];",
    )
    .await;
    assert_eq!(widths, json!(["67%", "33%"]));
    assert_eq!(
        eval(&browser, "return window.notReloaded === true;").await,
        json!(true)
    );

    // The script's percentages and labels are the server's, for any tally.
    let mut pairs: Vec<(u64, u64)> = vec![
        (0, 0),
        (1, 0),
        (0, 1),
        (1, 2),
        (2, 1),
        (1, 1),
        (1, 199),
        (199, 1),
        (2000, 1000),
        (5_000_000, 5_000_001),
        (123_456_789_012, 987_654_321_098),
    ];
    let mut seed: u64 = 0x5eed;
    for _ in 0..300 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let scale = [10, 1000, 1_000_000][(seed % 3) as usize];
        pairs.push(((seed >> 20) % scale, (seed >> 40) % scale));
    }
    let from_script = browser
        .execute(
            "return arguments[0].map(([a, b]) => { \
               const v = window.resultView(a, b); return [v.aLabel, v.bLabel, v.votes]; });",
            vec![json!(pairs)],
        )
        .await
        .unwrap()
        .convert::<Vec<(String, String, String)>>()
        .unwrap();
    for ((a, b), script) in pairs.iter().zip(from_script) {
        let tally = Tally { a: *a, b: *b };
        let (a_label, b_label) = result::page::percent_labels(tally);
        assert_eq!(
            script,
            (a_label, b_label, result::page::votes_label(tally)),
            "{a}/{b}"
        );
    }
    // All of it, the live feed included, within the page's security policy.
    let violations = browser.csp_violations().await.unwrap();
    assert!(violations.is_empty(), "{violations:#?}");
    browser.quit().await.unwrap();
}

#[tokio::test]
async fn the_page_shows_it_is_reconnecting_and_recovers_by_itself() {
    let db = testkit::postgres().await;
    migrate(&db.pool).await;
    let mut app = TestApp::spawn(&db.url).await;
    let addr = app.served.addr;
    let browser = Browser::start().await.unwrap();
    browser.goto(app.url("/")).await.unwrap();
    insert_vote(&db.pool, "v1", "a").await;
    browser
        .wait_for_text("#votes", "1 vote", DEADLINE)
        .await
        .unwrap();

    app.stop().await;
    browser
        .wait_for_text("#status", "Reconnecting…", DEADLINE)
        .await
        .unwrap();

    // A vote while the service is away, then the service is back on the
    // same address: the page reconnects and catches up.
    insert_vote(&db.pool, "v2", "b").await;
    let mut back = settings(&db.url);
    back.http.port = addr.port();
    let _back = TestApp::spawn_with(back).await;
    browser
        .wait_for_text("#votes", "2 votes", DEADLINE)
        .await
        .unwrap();
    assert_eq!(browser.text("#percent-b").await.unwrap(), "50.0%");
    assert_eq!(
        eval(&browser, "return document.getElementById('status').hidden;").await,
        json!(true)
    );
    let violations = browser.csp_violations().await.unwrap();
    assert!(violations.is_empty(), "{violations:#?}");
    browser.quit().await.unwrap();
}
