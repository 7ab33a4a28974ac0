//! The vote service against a real Redis, over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use contract::BallotChoices;
use contract::queue::QUEUE_KEY;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};

/// A vote service running in this process, as its binary runs it: its
/// page on a free port, its admin listener on another.
struct TestApp {
    served: testkit::Served<anyhow::Error>,
    http: reqwest::Client,
}

impl TestApp {
    async fn spawn(redis_url: &str) -> Self {
        Self::spawn_with(redis_url, "Cats", "Dogs").await
    }

    async fn spawn_with(redis_url: &str, a: &str, b: &str) -> Self {
        let choices = BallotChoices {
            option_a: a.to_owned(),
            option_b: b.to_owned(),
        };
        let state = vote::AppState::new(
            &servicekit::connect::Redis::at(redis_url).unwrap(),
            &choices,
            "test-host".to_owned(),
        )
        .unwrap();
        let served = testkit::Served::start_with_admin(|public, admin, shutdown| {
            servicekit::launch::serve(state, Some(public), admin, shutdown)
        })
        .await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        TestApp { served, http }
    }

    fn url(&self, path: &str) -> String {
        self.served.url(path)
    }

    /// `GET path` on the admin listener: the status and the body.
    async fn admin_get(&self, path: &str) -> (StatusCode, String) {
        let res = self
            .http
            .get(self.served.admin_url(path))
            .send()
            .await
            .unwrap();
        (res.status(), res.text().await.unwrap())
    }

    async fn get(&self, cookie: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(self.url("/"));
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        req.send().await.unwrap()
    }

    async fn post(&self, cookie: Option<&str>, body: &str) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url("/"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.to_owned());
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        req.send().await.unwrap()
    }
}

/// The `voter_id` value a response sets, if any.
fn voter_cookie(res: &reqwest::Response) -> Option<String> {
    set_cookie(res, "voter_id")
}

fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (n, v) = pair.split_once('=')?;
            (n == name).then(|| v.to_owned())
        })
}

async fn queued(redis: &testkit::TestRedis) -> Vec<String> {
    redis.list(QUEUE_KEY).await
}

/// The ballot JSON without its `seq` stamp, and the stamp.
fn split_seq(ballot: &str) -> (String, i64) {
    let v: serde_json::Value = serde_json::from_str(ballot).unwrap();
    let seq = v["seq"].as_i64().expect("ballot carries a seq");
    let cut = ballot.find(r#","seq":"#).unwrap();
    (format!("{}}}", &ballot[..cut]), seq)
}

fn is_our_voter_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn first_visit_sets_a_well_formed_cookie() {
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let res = app.get(None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let id = voter_cookie(&res).expect("voter_id cookie set");
    assert!(is_our_voter_id(&id), "{id}");
    let raw = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("voter_id="))
        .unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(raw.contains(attr), "{raw} lacks {attr}");
    }
    // Two first visits are two different voters.
    let other = voter_cookie(&app.get(None).await).unwrap();
    assert_ne!(id, other);
}

#[tokio::test]
async fn returning_voter_keeps_their_cookie() {
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    // Ours, and the original app's 15-hex-char ids, are kept.
    for id in ["0123456789abcdef", "5a1f2c3d4e5f6a7"] {
        let res = app.get(Some(&format!("voter_id={id}"))).await;
        assert_eq!(voter_cookie(&res).as_deref(), Some(id));
    }
}

#[tokio::test]
async fn a_post_queues_exactly_one_ballot_with_the_exact_json() {
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let res = app.post(Some("voter_id=0123456789abcdef"), "vote=a").await;
    assert_eq!(res.status(), StatusCode::OK);
    let queue = queued(&redis).await;
    assert_eq!(queue.len(), 1, "{queue:?}");
    let (json, seq) = split_seq(&queue[0]);
    assert_eq!(json, r#"{"voter_id":"0123456789abcdef","vote":"a"}"#);
    assert!(seq > 0);
}

#[tokio::test]
async fn a_first_time_voter_is_given_an_id_and_their_ballot_uses_it() {
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let res = app.post(None, "vote=b").await;
    assert_eq!(res.status(), StatusCode::OK);
    let id = voter_cookie(&res).unwrap();
    let (json, _) = split_seq(&queued(&redis).await[0]);
    assert_eq!(json, format!(r#"{{"voter_id":"{id}","vote":"b"}}"#));
}

#[tokio::test]
async fn changing_the_vote_queues_a_second_ballot_for_the_same_voter_with_a_higher_seq() {
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let cookie = "voter_id=00000000000000aa";
    app.post(Some(cookie), "vote=a").await;
    app.post(Some(cookie), "vote=b").await;
    let queue = queued(&redis).await;
    assert_eq!(queue.len(), 2);
    let (first, seq1) = split_seq(&queue[0]);
    let (second, seq2) = split_seq(&queue[1]);
    assert_eq!(first, r#"{"voter_id":"00000000000000aa","vote":"a"}"#);
    assert_eq!(second, r#"{"voter_id":"00000000000000aa","vote":"b"}"#);
    assert!(seq2 > seq1, "{seq1} then {seq2}");
}

fn now_us() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_micros()).unwrap()
}

/// How far ahead of now a `seq` may be, in microseconds.
const AHEAD_US: i64 = contract::SeqWindow::ahead_us();

async fn set_counter(redis: &testkit::TestRedis, value: &str) {
    let _: () = redis::cmd("SET")
        .arg(contract::queue::SEQ_KEY)
        .arg(value)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
}

async fn counter(redis: &testkit::TestRedis) -> Option<String> {
    redis::cmd("GET")
        .arg(contract::queue::SEQ_KEY)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_corrupt_seq_counter_gets_a_503_and_queues_nothing() {
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let cookie = Some("voter_id=00000000000000cc");
    let past_the_window = (now_us() + 2 * AHEAD_US).to_string();
    for corrupt in [
        "not a number",
        "1e5",
        " 12",
        "1152921504606846976",
        "9223372036854775807",
        "99999999999999999999999",
        &past_the_window,
    ] {
        set_counter(&redis, corrupt).await;
        let res = app.post(cookie, "vote=a").await;
        assert_eq!(
            res.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "a vote with votes:seq = {corrupt:?}"
        );
        let page = res.text().await.unwrap();
        assert!(page.contains("out of order"), "{corrupt:?}: {page}");
        assert_eq!(queued(&redis).await, Vec::<String>::new(), "{corrupt:?}");
        assert_eq!(counter(&redis).await.as_deref(), Some(corrupt));
        // The refusal is recognisable, so callers never retry it.
        let ballot = contract::Ballot::new(
            contract::VoterId::parse("00000000000000cc").unwrap(),
            contract::Vote::A,
        );
        let refused = contract::queue::enqueue(&mut redis.conn().await, &ballot)
            .await
            .unwrap_err();
        assert!(contract::queue::is_bad_counter(&refused), "{refused}");
    }
    // Deleting the counter is the fix: the clock takes over.
    let _: () = redis::cmd("DEL")
        .arg(contract::queue::SEQ_KEY)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    assert_eq!(app.post(cookie, "vote=a").await.status(), StatusCode::OK);
    assert_eq!(queued(&redis).await.len(), 1);
}

#[tokio::test]
async fn the_seq_counts_on_exactly_from_a_counter_ahead_of_the_clock() {
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let cookie = Some("voter_id=00000000000000ce");
    let last = now_us() + AHEAD_US - 10_000_000;
    set_counter(&redis, &last.to_string()).await;
    app.post(cookie, "vote=a").await;
    app.post(cookie, "vote=b").await;
    let seqs: Vec<i64> = queued(&redis)
        .await
        .iter()
        .map(|ballot| split_seq(ballot).1)
        .collect();
    assert_eq!(seqs, [last + 1, last + 2]);
    assert_eq!(counter(&redis).await, Some((last + 2).to_string()));
}

#[tokio::test]
async fn the_chosen_option_is_marked_after_a_vote_and_after_a_reload() {
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let res = app.post(Some("voter_id=00000000000000bb"), "vote=b").await;
    let remembered = set_cookie(&res, "vote").expect("choice remembered");
    assert_eq!(remembered, "b");
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"class="choice b chosen""#), "{html}");
    assert!(html.contains(r#"class="choice a dimmed""#));
    assert!(html.contains(r#"value="b" disabled"#));
    assert!(
        html.contains(r#"aria-label="your vote""#),
        "check mark shown"
    );

    let reload = app
        .get(Some("voter_id=00000000000000bb; vote=b"))
        .await
        .text()
        .await
        .unwrap();
    assert!(reload.contains(r#"class="choice b chosen""#));

    let fresh = app.get(None).await.text().await.unwrap();
    assert!(!fresh.contains("chosen") && !fresh.contains("dimmed"));
}

#[tokio::test]
async fn the_page_shows_the_default_options_tip_and_host() {
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let html = app.get(None).await.text().await.unwrap();
    assert!(html.contains("<title>Cats vs Dogs!</title>"));
    assert!(html.contains("<h1>Cats vs Dogs!</h1>"));
    assert!(html.contains("(Tip: you can change your vote)"));
    assert!(html.contains("Processed by container ID test-host"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external requests"
    );
}

#[tokio::test]
async fn custom_option_names_are_shown_and_escaped() {
    let redis = testkit::redis().await;
    let app = TestApp::spawn_with(&redis.url, "Tabs", "Spaces <&>").await;
    let html = app.get(None).await.text().await.unwrap();
    assert!(
        html.contains("<h1>Tabs vs Spaces &#60;&#38;&#62;!</h1>"),
        "{html}"
    );
    assert!(html.contains("<span>Tabs</span>"));
}

#[tokio::test]
async fn the_stylesheet_and_icon_are_served_by_the_binary() {
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    for (path, mime) in [
        ("/static/style.css", "text/css"),
        ("/static/favicon.svg", "image/svg+xml"),
    ] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let ct = res.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
        assert!(ct.starts_with(mime), "{path}: {ct}");
    }
}

#[tokio::test]
async fn bad_input_gets_a_readable_4xx_and_queues_nothing() {
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let ok = Some("voter_id=00000000000000cc");
    let long_cookie = format!("voter_id={}", "a".repeat(256));
    let cases: Vec<(&str, Option<&str>, String, StatusCode, &str)> = vec![
        (
            "vote not a/b",
            ok,
            "vote=c".into(),
            StatusCode::BAD_REQUEST,
            "must be",
        ),
        (
            "vote missing",
            ok,
            "".into(),
            StatusCode::BAD_REQUEST,
            "no &#34;vote&#34; field",
        ),
        (
            "vote repeated",
            ok,
            "vote=a&vote=b".into(),
            StatusCode::BAD_REQUEST,
            "more than one",
        ),
        (
            "body too large",
            ok,
            format!("vote=a&x={}", "y".repeat(2000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than 1024 bytes",
        ),
        (
            "cookie too long",
            Some(&long_cookie),
            "vote=a".into(),
            StatusCode::BAD_REQUEST,
            "longer than 255 bytes",
        ),
        (
            "cookie not printable",
            Some("voter_id=caf\u{e9}"),
            "vote=a".into(),
            StatusCode::BAD_REQUEST,
            "visible ASCII",
        ),
    ];
    for (what, cookie, body, status, message) in cases {
        let res = app.post(cookie, &body).await;
        assert_eq!(res.status(), status, "{what}");
        let replaced = voter_cookie(&res).expect("voter cookie always set");
        assert!(is_our_voter_id(&replaced) || cookie == ok, "{what}");
        let html = res.text().await.unwrap();
        assert!(html.contains(message), "{what}: {html}");
        assert!(html.contains("not recorded"), "{what}");
    }

    let wrong_type = app
        .http
        .post(app.url("/"))
        .header(CONTENT_TYPE, "application/json")
        .header(COOKIE, "voter_id=00000000000000cc")
        .body(r#"{"vote":"a"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let cross_site = app
        .http
        .post(app.url("/"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body("vote=a")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);

    assert!(queued(&redis).await.is_empty(), "nothing queued");
}

#[tokio::test]
async fn a_malformed_cookie_is_replaced_on_the_page() {
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let long = format!("voter_id={}; vote=a", "f".repeat(300));
    let res = app.get(Some(&long)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(is_our_voter_id(&voter_cookie(&res).unwrap()));
    // The remembered choice belonged to the old id: forgotten.
    assert_eq!(set_cookie(&res, "vote").as_deref(), Some(""));
    assert!(!res.text().await.unwrap().contains("chosen"));
}

#[tokio::test]
async fn redis_down_gives_a_503_page_and_voting_recovers_when_it_returns() {
    let mut server = testkit::RedisServer::start(Default::default())
        .await
        .unwrap();
    let app = TestApp::spawn(&server.url(0)).await;
    let cookie = Some("voter_id=00000000000000dd");
    assert_eq!(app.post(cookie, "vote=a").await.status(), StatusCode::OK);

    server.stop();
    // Once the service has seen Redis go (a push at that very moment could
    // not tell whether it arrived, and says so), a vote is certainly not
    // recorded.
    testkit::eventually(
        "vote to see Redis gone",
        Duration::from_secs(10),
        || async {
            let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
            (ready.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())
        },
    )
    .await;
    let res = app.post(cookie, "vote=b").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "5");
    let page = res.text().await.unwrap();
    assert!(page.contains("cannot be reached"), "{page}");
    // Where Redis is goes to the log only.
    assert!(!page.contains("redis") && !page.contains(".sock"), "{page}");
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "alive while Redis is down"
    );

    server.start_again().await.unwrap();
    // The manager reconnects on the next command; the first may still fail.
    let status = testkit::eventually("voting to recover", Duration::from_secs(10), || async {
        let s = app.post(cookie, "vote=b").await.status();
        (s == StatusCode::OK).then_some(s)
    })
    .await;
    assert_eq!(status, StatusCode::OK);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_endpoints_answer_and_the_metrics_count_a_queued_ballot() {
    let recorded = testkit::metrics::Recorded::on_this_thread();
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let res = app.post(Some("voter_id=00000000000000ee"), "vote=a").await;
    assert_eq!(res.status(), StatusCode::OK);
    for path in ["/healthz", "/readyz"] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(app.admin_get(path).await.0, StatusCode::OK, "admin {path}");
    }
    assert_eq!(app.admin_get("/metrics").await.0, StatusCode::OK);

    assert_eq!(
        recorded.value("ballots_queued_total", &[("vote", "a")]),
        1.0
    );
    assert_eq!(
        recorded.value("ballots_queued_total", &[("vote", "b")]),
        0.0
    );
    let vote = [("route", "/"), ("method", "POST"), ("status", "200")];
    assert_eq!(recorded.value("http_requests_total", &vote), 1.0);
    let probes = [("route", "/readyz"), ("status", "200")];
    assert_eq!(recorded.value("http_requests_total", &probes), 1.0);
    assert_eq!(
        recorded.value("http_request_duration_seconds_count", &[("route", "/")]),
        1.0
    );
}

#[tokio::test]
async fn metrics_and_the_reasons_for_readiness_are_only_on_the_admin_listener() {
    let mut server = testkit::RedisServer::start(Default::default())
        .await
        .unwrap();
    let app = TestApp::spawn(&server.url(0)).await;
    let public = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(
        public.status(),
        StatusCode::NOT_FOUND,
        "/metrics on the page's port"
    );
    assert_eq!(app.admin_get("/metrics").await.0, StatusCode::OK);

    server.stop();
    let (status, why) = testkit::eventually(
        "vote to see Redis gone",
        Duration::from_secs(10),
        || async {
            let (status, why) = app.admin_get("/readyz").await;
            (status == StatusCode::SERVICE_UNAVAILABLE).then_some((status, why))
        },
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(why.starts_with("not ready: redis: "), "{why}");
    let public = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        public.text().await.unwrap(),
        "not ready\n",
        "no reason on the page's port"
    );
}

#[tokio::test]
async fn the_healthcheck_subcommand_reports_readiness_or_with_live_liveness() {
    let mut server = testkit::RedisServer::start(Default::default())
        .await
        .unwrap();
    let app = TestApp::spawn(&server.url(0)).await;
    // Run the binary without blocking this thread: the service under test
    // shares it.
    let check = |args: &'static [&'static str]| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_vote"))
            .args(args)
            .env(
                "ADMIN_PORT",
                app.served.admin_addr.unwrap().port().to_string(),
            )
            .output()
            .await
            .unwrap()
    };
    assert!(check(&["healthcheck"]).await.status.success());
    server.stop();
    let out = check(&["healthcheck"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("healthcheck failed"));
    // Alive all the same: an orchestrator need not restart it.
    assert!(check(&["healthcheck", "--live"]).await.status.success());
}

#[tokio::test]
async fn every_setting_is_listed_by_help() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vote"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for setting in [
        "PORT",
        "REDIS_URL",
        "OPTION_A",
        "OPTION_B",
        "ALLOWED_ORIGINS",
        "MAX_CONNECTIONS",
        "SHUTDOWN_DELAY_SECONDS",
        "healthcheck",
    ] {
        assert!(
            help.contains(setting),
            "{setting} missing from --help:\n{help}"
        );
    }
}

/// The outage log itself is servicekit's (`servicekit::outage`, tested
/// there); this checks that vote's pushes go through it.
#[tokio::test]
async fn a_redis_outage_is_logged_when_it_starts_and_ends_not_per_ballot() {
    let logs = testkit::logs::Captured::on_this_thread();
    let mut server = testkit::RedisServer::start(Default::default())
        .await
        .unwrap();
    let app = TestApp::spawn(&server.url(0)).await;
    let cookie = Some("voter_id=00000000000000ff");
    assert_eq!(app.post(cookie, "vote=a").await.status(), StatusCode::OK);

    server.stop();
    let ballots = 3;
    for _ in 0..ballots {
        let refused = app.post(cookie, "vote=a").await.status();
        assert_eq!(refused, StatusCode::SERVICE_UNAVAILABLE);
    }
    server.start_again().await.unwrap();
    testkit::eventually("voting to recover", Duration::from_secs(10), || async {
        (app.post(cookie, "vote=a").await.status() == StatusCode::OK).then_some(())
    })
    .await;

    let events = logs.events();
    let warnings: Vec<_> = events.iter().filter(|e| e["level"] == "WARN").collect();
    assert_eq!(
        warnings.len(),
        1,
        "{ballots} refused ballots during one outage: one warning expected: {warnings:#?}"
    );
    assert_eq!(warnings[0]["message"], "unavailable");
    assert_eq!(warnings[0]["what"], "Redis");
    let back = events
        .iter()
        .find(|e| e["message"] == "available again")
        .unwrap_or_else(|| panic!("no line says Redis is back: {events:#?}"));
    assert_eq!(back["level"], "INFO");
    assert!(back["failures"].as_u64().unwrap() >= ballots, "{back}");
}

#[tokio::test]
async fn a_body_announced_larger_than_the_limit_is_refused_at_once_without_being_read() {
    use testkit::raw::{RawConn, request};
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let cookie = ("Cookie", "voter_id=00000000000000ff");
    for expect in [true, false] {
        let mut headers = vec![form, cookie, ("Content-Length", "100000000")];
        if expect {
            headers.push(("Expect", "100-continue"));
        }
        let mut conn = RawConn::connect(app.served.addr).await.unwrap();
        // Only the head: a client that asked to continue waits for leave.
        conn.send(&request("POST", "/", &headers, b""))
            .await
            .unwrap();
        let first = conn.response(Duration::from_secs(2)).await.unwrap();
        assert_eq!(
            first.status, 413,
            "expect: {expect}: the first answer was {:?}",
            first.status_line
        );
        assert!(first.text().contains("larger than 1024 bytes"), "{first:?}");
        // The body was never read, so the connection cannot be reused.
        assert!(conn.closed_within(Duration::from_secs(2)).await);
    }
    assert!(queued(&redis).await.is_empty(), "nothing queued");
}

#[tokio::test]
async fn the_standard_layers_are_mounted_and_the_page_that_sets_the_cookie_is_not_stored() {
    use testkit::raw::{request, send};
    let recorded = testkit::metrics::Recorded::on_this_thread();
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let routes = [
        "/",
        "/static/style.css",
        "/static/favicon.svg",
        "/healthz",
        "/readyz",
    ];
    testkit::layers::assert_mounted(app.served.addr, &routes, &recorded).await;
    // Every answer of the page sets the voter cookie.
    let page = send(app.served.addr, &request("GET", "/", &[], b""))
        .await
        .unwrap();
    assert!(page.header("set-cookie").is_some());
    assert_eq!(page.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn the_first_vote_after_a_redis_restart_is_accepted() {
    let mut server = testkit::RedisServer::start(testkit::RedisOptions {
        appendonly: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let app = TestApp::spawn(&server.url(0)).await;
    let cookie = Some("voter_id=0000000000000200");
    assert_eq!(app.post(cookie, "vote=a").await.status(), StatusCode::OK);
    for round in 0..4 {
        // Clean stops and crashes; Redis back at once, or after staying down
        // longer than the client's own reconnection attempts last (the
        // pause is the scenario, not a wait for an event).
        if round % 2 == 1 {
            server.kill();
        } else {
            server.stop();
        }
        if round >= 2 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        server.start_again().await.unwrap();
        let res = app.post(cookie, "vote=b").await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "round {round}: {}",
            res.text().await.unwrap()
        );
    }
    let redis = testkit::TestRedis { url: server.url(0) };
    let queue = queued(&redis).await;
    assert!(queue.len() >= 5, "{queue:?}");
}

#[tokio::test]
async fn a_vote_redis_did_not_confirm_is_reported_as_unconfirmed_not_as_lost() {
    let recorded = testkit::metrics::Recorded::on_this_thread();
    let server = testkit::RedisServer::start(Default::default())
        .await
        .unwrap();
    let redis = testkit::TestRedis { url: server.url(0) };
    let app = TestApp::spawn(&redis.url).await;
    let cookie = Some("voter_id=0000000000000300");
    assert_eq!(app.post(cookie, "vote=a").await.status(), StatusCode::OK);

    // Redis holds every write until told to resume (a minute at most):
    // the vote service gives up waiting first, so it cannot know whether
    // the push will happen.
    let mut control = redis.conn().await;
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(60_000)
        .arg("WRITE")
        .query_async(&mut control)
        .await
        .unwrap();
    let res = app.post(cookie, "vote=b").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "5");
    let page = res.text().await.unwrap();
    assert!(!page.contains("not recorded"), "{page}");
    assert!(page.contains("could not confirm"), "{page}");
    assert!(page.contains("Voting again is harmless"), "{page}");

    // And indeed the ballot arrives once Redis resumes.
    let () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut control)
        .await
        .unwrap();
    let client = redis.client();
    testkit::eventually(
        "the unconfirmed ballot",
        Duration::from_secs(10),
        || async {
            let mut conn = client.get_multiplexed_async_connection().await.ok()?;
            let queue: Vec<String> = redis::cmd("LRANGE")
                .arg(QUEUE_KEY)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .ok()?;
            queue
                .iter()
                .any(|b| b.contains(r#""vote":"b""#))
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        recorded.value("ballots_unconfirmed_total", &[("vote", "b")]),
        1.0
    );
}

#[tokio::test]
async fn votes_posted_from_another_sites_page_are_refused_and_queue_nothing() {
    use testkit::raw::{request, send};
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    let own = format!("http://{}", app.served.addr);
    let own_page = format!("{own}/");
    let vote = |extra: Vec<(&'static str, String)>| {
        let mut headers = vec![
            ("Host", app.served.addr.to_string()),
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("Cookie", "voter_id=0000000000000400".to_owned()),
        ];
        headers.extend(extra);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        request("POST", "/", &headers, b"vote=a")
    };
    // No Sec-Fetch-Site: an older browser, or a page that is not one.
    let refused = [
        vec![("Origin", "http://evil.example".to_owned())],
        vec![("Origin", "null".to_owned())],
        vec![(
            "Referer",
            "http://evil.example/vote-for-cats.html".to_owned(),
        )],
        vec![("Origin", format!("http://{}", app.served.addr.ip()))],
    ];
    for extra in refused {
        let answer = send(app.served.addr, &vote(extra.clone())).await.unwrap();
        assert_eq!(answer.status, 403, "{extra:?}: {answer:?}");
        assert!(answer.text().contains("not recorded"), "{answer:?}");
    }
    assert!(queued(&redis).await.is_empty(), "nothing queued");

    let accepted = [
        vec![("Origin", own.clone())],
        vec![("Referer", own_page.clone())],
        vec![("Sec-Fetch-Site", "same-origin".to_owned())],
        vec![], // curl, the seed: no browser, no one else's cookie
    ];
    for extra in accepted {
        let answer = send(app.served.addr, &vote(extra.clone())).await.unwrap();
        assert_eq!(answer.status, 200, "{extra:?}: {answer:?}");
    }
    assert_eq!(queued(&redis).await.len(), 4);
}

#[tokio::test]
async fn allowed_origins_admit_votes_from_a_proxys_public_address() {
    use testkit::raw::{request, send};
    let redis = testkit::redis().await;
    let choices = BallotChoices {
        option_a: "Cats".to_owned(),
        option_b: "Dogs".to_owned(),
    };
    let state = vote::AppState::new(
        &servicekit::connect::Redis::at(&redis.url).unwrap(),
        &choices,
        "test-host".to_owned(),
    )
    .unwrap()
    .with_allowed_origins("https://vote.example.com".parse().unwrap());
    let served =
        testkit::Served::start(|listener, shutdown| vote::serve(listener, state, shutdown)).await;
    // The proxy forwards to `vote:80`; the browser was on the public name.
    let from = |origin: &str| {
        request(
            "POST",
            "/",
            &[
                ("Host", "vote"),
                ("Origin", origin),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            b"vote=b",
        )
    };
    let answer = send(served.addr, &from("https://vote.example.com"))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let answer = send(served.addr, &from("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_eq!(queued(&redis).await.len(), 1);
}

#[tokio::test]
async fn the_vote_counters_exist_at_zero_before_the_first_vote() {
    // Prometheus sees no increase in a counter whose first sample is
    // already N: every counter must be scraped at 0 first.
    let recorded = testkit::metrics::Recorded::on_this_thread();
    let redis = testkit::redis().await;
    let app = TestApp::spawn(&redis.url).await;
    assert_eq!(app.admin_get("/healthz").await.0, StatusCode::OK);
    let text = recorded.render();
    for name in ["ballots_queued_total", "ballots_unconfirmed_total"] {
        let mut options: Vec<String> = testkit::metrics::series(&text, name)
            .iter()
            .filter(|s| s.value == 0.0)
            .filter_map(|s| s.labels.get("vote").cloned())
            .collect();
        options.sort();
        assert_eq!(options, ["a", "b"], "{name} at 0 for each option:\n{text}");
    }
    for name in ["redis_errors_total", "ballots_replica_ack_missing_total"] {
        assert_eq!(
            testkit::metrics::series(&text, name).len(),
            1,
            "{name} at 0:\n{text}"
        );
    }
}
