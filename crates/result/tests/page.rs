//! The result page, its assets and the operational endpoints, against a
//! real Postgres over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE};
use support::{TestApp, insert_many, migrate, settings, tally};

/// The text between `<tag id="id" …>` and the next `<`.
fn element_text<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!(r#"id="{id}""#))
        .unwrap_or_else(|| panic!("no #{id} in:\n{html}"));
    let open_end = start + html[start..].find('>').unwrap() + 1;
    let close = open_end + html[open_end..].find('<').unwrap();
    html[open_end..close].trim()
}

#[tokio::test]
async fn the_page_shows_percentages_bars_and_the_vote_count() {
    let db = testkit::postgres().await;
    migrate(&db.pool).await;
    let app = TestApp::spawn(&db.url).await;
    // (a, b) → (a %, b %, count label), (bar widths in whole percent)
    let cases = [
        ((0, 0), ("50.0%", "50.0%", "No votes yet"), (50, 50)),
        ((1, 0), ("100.0%", "0.0%", "1 vote"), (100, 0)),
        ((0, 1), ("0.0%", "100.0%", "1 vote"), (0, 100)),
        ((0, 3), ("0.0%", "100.0%", "3 votes"), (0, 100)),
        ((1, 2), ("33.0%", "67.0%", "3 votes"), (33, 67)),
        ((2, 1), ("67.0%", "33.0%", "3 votes"), (67, 33)),
        ((1, 1), ("50.0%", "50.0%", "2 votes"), (50, 50)),
        ((1, 199), ("1.0%", "99.0%", "200 votes"), (1, 99)),
    ];
    for ((a, b), (a_label, b_label, votes), (a_width, b_width)) in cases {
        sqlx::query("TRUNCATE votes")
            .execute(&db.pool)
            .await
            .unwrap();
        insert_many(&db.pool, "a", "a", a).await;
        insert_many(&db.pool, "b", "b", b).await;
        app.wait_for_tally(tally(a as u64, b as u64)).await;

        let html = app.page().await;
        assert!(
            html.contains(&format!(r#"id="bar-a" class="bar a w{a_width}""#)),
            "{a}/{b}: bar a should be {a_width}% wide:\n{html}"
        );
        assert!(
            html.contains(&format!(r#"id="bar-b" class="bar b w{b_width}""#)),
            "{a}/{b}: bar b should be {b_width}% wide:\n{html}"
        );
        assert_eq!(element_text(&html, "percent-a"), a_label, "{a}/{b}");
        assert_eq!(element_text(&html, "percent-b"), b_label, "{a}/{b}");
        assert_eq!(element_text(&html, "votes"), votes, "{a}/{b}");
    }
}

#[tokio::test]
async fn custom_option_names_are_shown_and_escaped() {
    let db = testkit::postgres().await;
    let mut settings = settings(&db.url);
    settings.choices.option_a = "Tabs".to_owned();
    settings.choices.option_b = "<Spaces & co>".to_owned();
    let app = TestApp::spawn_with(settings).await;
    let html = app.page().await;
    assert!(
        html.contains("<title>Tabs vs &#60;Spaces &#38; co&#62; — Result</title>"),
        "{html}"
    );
    assert!(html.contains(r#"<h2 class="label">Tabs</h2>"#));
    assert!(html.contains(r#"<h2 class="label">&#60;Spaces &#38; co&#62;</h2>"#));
    assert!(!html.contains("Cats") && !html.contains("Dogs"));
    assert!(!html.contains("<Spaces"));
}

#[tokio::test]
async fn the_page_is_self_contained_and_not_cached() {
    let db = testkit::postgres().await;
    let app = TestApp::spawn(&db.url).await;
    let res = app.get("/").await;
    assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    let html = res.text().await.unwrap();
    for (path, content_type) in [
        ("/static/result.css", "text/css; charset=utf-8"),
        ("/static/result.js", "text/javascript; charset=utf-8"),
        ("/static/favicon.svg", "image/svg+xml"),
    ] {
        assert!(html.contains(&format!(r#""{path}""#)), "{path} not linked");
        let res = app.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()[CONTENT_TYPE], content_type, "{path}");
        let body = res.text().await.unwrap();
        if path != "/static/favicon.svg" {
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{path} refers to another host"
            );
        }
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
    // Nothing inline: the security policy would block it.
    assert!(!html.contains("style="), "{html}");
    let css = app.get("/static/result.css").await.text().await.unwrap();
    for width in [0, 1, 50, 67, 100] {
        assert!(css.contains(&format!(".w{width} {{ width: {width}%; }}")));
    }
    // No framework: the one script is ours and small.
    assert_eq!(html.matches("<script").count(), 1);
    let script = app.get("/static/result.js").await.text().await.unwrap();
    assert!(script.len() < 4096, "{} bytes", script.len());
}

#[tokio::test]
async fn the_endpoints_answer_and_the_metrics_count_the_page_views() {
    let recorded = testkit::metrics::Recorded::on_this_thread();
    let db = testkit::postgres().await;
    let app = TestApp::spawn(&db.url).await;
    app.page().await;
    app.page().await;
    for path in ["/healthz", "/readyz"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(
            app.admin_get(path).await.status(),
            StatusCode::OK,
            "admin {path}"
        );
    }
    assert_eq!(
        app.get("/metrics").await.status(),
        StatusCode::NOT_FOUND,
        "/metrics on the page's port"
    );
    assert_eq!(app.admin_get("/metrics").await.status(), StatusCode::OK);

    let pages = [("route", "/"), ("method", "GET"), ("status", "200")];
    assert_eq!(recorded.value("http_requests_total", &pages), 2.0);
    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert_eq!(recorded.value("http_requests_total", &unmatched), 1.0);
    assert!(recorded.value("result_ticks_total", &[]) >= 1.0);
}

#[tokio::test]
async fn a_plain_get_of_the_feed_is_a_client_error() {
    let db = testkit::postgres().await;
    let app = TestApp::spawn(&db.url).await;
    let res = app.get("/ws").await;
    assert!(res.status().is_client_error(), "{}", res.status());
}

#[tokio::test]
async fn settings_that_cannot_work_stop_result_at_start_naming_the_variable() {
    use testkit::refused::assert_refused_at_start;
    let result = env!("CARGO_BIN_EXE_result");
    for (env, name) in [
        (&[("MAX_CONNECTIONS", "0")][..], "MAX_CONNECTIONS"),
        (&[("MAX_CLIENTS", "0")], "MAX_CLIENTS"),
        (&[("POLL_INTERVAL_MS", "0")], "POLL_INTERVAL_MS"),
        (&[("PING_INTERVAL_MS", "0")], "PING_INTERVAL_MS"),
        (
            &[("ALLOWED_ORIGINS", "result.example.com")],
            "ALLOWED_ORIGINS",
        ),
        (&[("DATABASE_URL", "not a url")], "DATABASE_URL"),
        (&[("DATABASE_URL", "mysql://db/votes")], "DATABASE_URL"),
        (&[("OPTION_B", "")], "OPTION_B"),
    ] {
        assert_refused_at_start(result, env, name).await;
    }
}

#[tokio::test]
async fn every_setting_is_listed_by_help() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_result"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for setting in [
        "PORT",
        "BIND_ADDRESS",
        "DATABASE_URL",
        "OPTION_A",
        "OPTION_B",
        "MAX_CLIENTS",
        "MAX_CLIENTS_PER_ADDRESS",
        "ALLOWED_ORIGINS",
        "MAX_CONNECTIONS",
        "POLL_INTERVAL_MS",
        "PING_INTERVAL_MS",
        "healthcheck",
    ] {
        assert!(
            help.contains(setting),
            "{setting} missing from --help:\n{help}"
        );
    }
}

#[tokio::test]
async fn the_standard_layers_are_mounted() {
    let recorded = testkit::metrics::Recorded::on_this_thread();
    let db = testkit::postgres().await;
    migrate(&db.pool).await;
    let app = TestApp::spawn(&db.url).await;
    let routes = [
        "/",
        "/ws",
        "/static/result.css",
        "/static/result.js",
        "/static/favicon.svg",
        "/healthz",
        "/readyz",
    ];
    testkit::layers::assert_mounted(app.served.addr, &routes, &recorded).await;
}
