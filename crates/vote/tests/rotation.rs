//! Whether an orchestrator keeps vote in rotation: through a Redis outage
//! it must (its page needs no Redis, and a vote gets a clear 503 page),
//! and on SIGTERM it must keep serving for its drain delay while its
//! readiness answer turns 503, so no client is refused while load
//! balancers catch up.
//!
//! "Readiness" here is whatever `k8s/vote.yaml`'s readinessProbe asks, so
//! the manifest and the service are tested together.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use contract::BallotChoices;
use testkit::raw::request;
use testkit::{RedisOptions, RedisServer};
use tokio::time::Instant;

/// Far beyond anything these tests wait for on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);

/// The drain delay the SIGTERM test gives the binary.
const DRAIN_DELAY: Duration = Duration::from_secs(3);

/// The part of the drain delay in which every request must be served: the
/// rest is left for the signal's delivery and the last requests in flight
/// on a loaded machine.
const MUST_SERVE_FOR: Duration = Duration::from_secs(2);

/// The path of vote's readiness probe in the Kubernetes manifest.
fn readiness_path() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../k8s/vote.yaml");
    let manifest = std::fs::read_to_string(path).unwrap();
    let probe = manifest
        .split_once("readinessProbe:")
        .expect("k8s/vote.yaml has a readinessProbe")
        .1;
    let path = probe
        .lines()
        .find_map(|l| l.trim().strip_prefix("path:"))
        .expect("the readinessProbe asks an HTTP path");
    path.trim().to_owned()
}

async fn get(http: &reqwest::Client, url: String) -> (u16, String) {
    let res = http.get(url).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn a_redis_outage_leaves_vote_ready_for_traffic_while_readyz_reports_it() {
    tokio::time::timeout(DEADLINE, async {
        let mut server = RedisServer::start(RedisOptions::default()).await.unwrap();
        let choices = BallotChoices {
            option_a: "Cats".to_owned(),
            option_b: "Dogs".to_owned(),
        };
        let redis = servicekit::connect::Redis::at(&server.url(0)).unwrap();
        let state = vote::AppState::new(&redis, &choices, "test-host".to_owned()).unwrap();
        let served = testkit::Served::start_with_admin(|public, admin, shutdown| {
            servicekit::launch::serve(state, Some(public), admin, shutdown)
        })
        .await;
        let http = reqwest::Client::new();
        let readiness = readiness_path();
        assert_eq!(get(&http, served.admin_url(&readiness)).await.0, 200);

        server.stop();
        // `/readyz`, for people, reports the outage once vote has seen it.
        let why = testkit::eventually("/readyz to report Redis down", DEADLINE, || async {
            let (status, body) = get(&http, served.admin_url("/readyz")).await;
            (status == 503).then_some(body)
        })
        .await;
        assert!(why.starts_with("not ready: redis: "), "{why}");

        let (status, body) = get(&http, served.admin_url(&readiness)).await;
        assert_eq!(
            status, 200,
            "the readiness probe ({readiness}) takes vote out of rotation during a Redis outage: {body}"
        );
        let page = http.get(served.url("/")).send().await.unwrap();
        assert_eq!(page.status(), 200, "the page needs no Redis");
        let vote = http
            .post(served.url("/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", "voter_id=00000000000000ee")
            .body("vote=a")
            .send()
            .await
            .unwrap();
        assert_eq!(vote.status(), 503, "a vote is refused with its page");
    })
    .await
    .expect("the test finishes within its deadline");
}

/// What one request of the load got, and when it started, counted from
/// SIGTERM (negative: before).
struct Outcome {
    started: f64,
    answer: Result<u16, String>,
}

/// Sends `GET /` to `addr`, each on a new connection (a refused
/// connection shows at once), until `stop`; returns every outcome.
async fn load(
    addr: SocketAddr,
    sigterm: Arc<tokio::sync::OnceCell<Instant>>,
    stop: Arc<AtomicBool>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let answer = testkit::raw::send(addr, &request("GET", "/", &[], b""))
            .await
            .map(|r| r.status)
            .map_err(|e| e.to_string());
        let started = match sigterm.get() {
            Some(at) if started >= *at => (started - *at).as_secs_f64(),
            Some(at) => -(*at - started).as_secs_f64(),
            None => -1.0,
        };
        outcomes.push(Outcome { started, answer });
    }
    outcomes
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn under_load_vote_serves_every_request_through_its_drain_delay_then_exits_zero() {
    let server = RedisServer::start(RedisOptions::default()).await.unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vote"))
        .env("REDIS_URL", server.url(0))
        .env("PORT", port.to_string())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("ADMIN_PORT", admin_port.to_string())
        .env("ADMIN_BIND_ADDRESS", "127.0.0.1")
        .env("SHUTDOWN_DELAY_SECONDS", DRAIN_DELAY.as_secs().to_string())
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let readiness = readiness_path();
    testkit::eventually("vote to be ready for traffic", DEADLINE, || async {
        let answer = testkit::raw::send(admin, &request("GET", &readiness, &[], b""))
            .await
            .ok()?;
        (answer.status == 200).then_some(())
    })
    .await;

    let sigterm = Arc::new(tokio::sync::OnceCell::new());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| tokio::spawn(load(addr, sigterm.clone(), stop.clone())))
        .collect();
    // The load is flowing before the signal.
    testkit::eventually("the load to be served", DEADLINE, || async {
        testkit::raw::send(addr, &request("GET", "/", &[], b""))
            .await
            .ok()
            .filter(|r| r.status == 200)
    })
    .await;

    let pid = child.id().unwrap().to_string();
    sigterm.set(Instant::now()).unwrap();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    // Meanwhile readiness must turn 503 while the process still serves:
    // the orchestrator takes it out of rotation before it stops accepting.
    let saw_draining = tokio::spawn(async move {
        loop {
            match testkit::raw::send(admin, &request("GET", &readiness, &[], b"")).await {
                Ok(answer) if answer.status == 503 => return true,
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(_) => return false, // the admin listener is gone
            }
        }
    });

    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("vote exits after its drain delay")
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.extend(client.await.unwrap());
    }
    assert!(status.success(), "{status}");

    let window = MUST_SERVE_FOR.as_secs_f64();
    let in_window: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.started >= 0.0 && o.started < window)
        .collect();
    for o in outcomes.iter().filter(|o| o.started < window) {
        assert_eq!(
            o.answer,
            Ok(200),
            "a request started {:.3} s after SIGTERM, inside the drain delay, was not served",
            o.started
        );
    }
    assert!(
        saw_draining.await.unwrap(),
        "readiness never answered 503 between SIGTERM and the exit"
    );
    assert!(
        in_window.len() >= 20,
        "only {} requests in the first {window} s after SIGTERM: the load did not test the drain",
        in_window.len()
    );
}
