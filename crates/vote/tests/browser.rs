//! The vote page in a real browser (headless Chromium): clicking a button
//! votes, the choice is marked, survives a reload, and can be changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use contract::BallotChoices;
use testkit::browser::Browser;
use testkit::browser::thirtyfour::prelude::*;

const DEADLINE: Duration = Duration::from_secs(10);

async fn queued(redis: &testkit::TestRedis) -> Vec<serde_json::Value> {
    redis
        .list(contract::queue::QUEUE_KEY)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect()
}

async fn class_of(browser: &Browser, id: &str) -> String {
    browser
        .find(By::Id(id))
        .await
        .unwrap()
        .attr("class")
        .await
        .unwrap()
        .unwrap_or_default()
}

#[tokio::test]
async fn clicking_votes_marks_the_choice_and_a_reload_remembers_it() {
    let redis = testkit::redis().await;
    let choices = BallotChoices {
        option_a: "Cats".into(),
        option_b: "Dogs".into(),
    };
    let state = vote::AppState::new(
        &servicekit::connect::Redis::at(&redis.url).unwrap(),
        &choices,
        "browser-test".into(),
    )
    .unwrap();
    let served =
        testkit::Served::start(|listener, shutdown| vote::serve(listener, state, shutdown)).await;
    let url = served.url("/");

    let browser = Browser::start().await.unwrap();
    browser.goto(&url).await.unwrap();
    assert_eq!(browser.title().await.unwrap(), "Cats vs Dogs!");
    browser
        .click_and_wait_for_next_page("#a", DEADLINE)
        .await
        .unwrap();
    let chosen = class_of(&browser, "a").await;
    assert!(chosen.contains("chosen"));
    assert!(class_of(&browser, "b").await.contains("dimmed"));
    assert!(
        browser
            .find(By::Id("a"))
            .await
            .unwrap()
            .prop("disabled")
            .await
            .unwrap()
            .as_deref()
            == Some("true")
    );

    let ballots = queued(&redis).await;
    assert_eq!(ballots.len(), 1);
    assert_eq!(ballots[0]["vote"], "a");
    let voter = ballots[0]["voter_id"].as_str().unwrap().to_owned();
    assert_eq!(voter.len(), 16);

    // A reload (a plain GET) still shows the choice.
    browser.goto(&url).await.unwrap();
    assert!(class_of(&browser, "a").await.contains("chosen"));

    // Changing the vote: same voter, second ballot.
    browser
        .click_and_wait_for_next_page("#b", DEADLINE)
        .await
        .unwrap();
    assert!(class_of(&browser, "b").await.contains("chosen"));
    assert!(class_of(&browser, "a").await.contains("dimmed"));
    let ballots = queued(&redis).await;
    assert_eq!(ballots.len(), 2);
    assert_eq!(ballots[1]["vote"], "b");
    assert_eq!(ballots[1]["voter_id"], voter.as_str());

    // Everything the page loaded came from the vote service itself.
    let origins = browser
        .execute(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin);",
            vec![],
        )
        .await
        .unwrap()
        .json()
        .clone();
    let own = url.trim_end_matches('/');
    for origin in origins.as_array().unwrap() {
        assert_eq!(origin.as_str().unwrap(), own);
    }
    // All of it within the page's security policy.
    let violations = browser.csp_violations().await.unwrap();
    assert!(violations.is_empty(), "{violations:#?}");
    browser.quit().await.unwrap();
}
