//! The real `vote` binary: stopped by SIGTERM with a vote in flight, and
//! started with settings that cannot work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use testkit::raw::{RawConn, request};
use testkit::refused::assert_refused_at_start;
use testkit::{RedisOptions, RedisServer, TestRedis};

/// Far beyond anything these tests wait for on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);

/// The id of a client whose push (the enqueue script) Redis holds, if any.
async fn held_push(redis: &TestRedis) -> Option<()> {
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut redis.conn().await)
        .await
        .ok()?;
    clients
        .lines()
        .any(|client| {
            let fields: Vec<&str> = client.split(' ').collect();
            fields.contains(&"cmd=evalsha")
                && fields
                    .iter()
                    .any(|f| f.strip_prefix("flags=").is_some_and(|f| f.contains('b')))
        })
        .then_some(())
}

#[tokio::test]
async fn a_vote_in_flight_at_sigterm_is_answered_and_the_process_exits_zero() {
    let server = RedisServer::start(RedisOptions::default()).await.unwrap();
    let redis = TestRedis { url: server.url(0) };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vote"))
        .env("REDIS_URL", &redis.url)
        .env("PORT", port.to_string())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("ADMIN_PORT", "0")
        .env("ADMIN_BIND_ADDRESS", "127.0.0.1")
        .env("SHUTDOWN_DELAY_SECONDS", "0")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    testkit::eventually("vote to answer", DEADLINE, || async {
        let answer = testkit::raw::send(addr, &request("GET", "/readyz", &[], b""))
            .await
            .ok()?;
        (answer.status == 200).then_some(())
    })
    .await;

    // Redis holds every write until told to resume: the vote's push is in
    // flight, in Redis's hands, when SIGTERM comes.
    let mut control = redis.conn().await;
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(60_000)
        .arg("WRITE")
        .query_async(&mut control)
        .await
        .unwrap();
    let mut voter = RawConn::connect(addr).await.unwrap();
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let cookie = ("Cookie", "voter_id=00000000000000aa");
    voter
        .send(&request("POST", "/", &[form, cookie], b"vote=b"))
        .await
        .unwrap();
    testkit::eventually("the push held by Redis", DEADLINE, || held_push(&redis)).await;
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut control)
        .await
        .unwrap();

    let answer = voter
        .response(DEADLINE)
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(answer.status, 200, "{answer:?}");
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("vote exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let queued = redis.list(contract::queue::QUEUE_KEY).await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert!(queued[0].contains(r#""vote":"b""#), "{queued:?}");
}

#[tokio::test]
async fn settings_that_cannot_work_stop_vote_at_start_naming_the_variable() {
    let vote = env!("CARGO_BIN_EXE_vote");
    for (env, name) in [
        (&[("MAX_CONNECTIONS", "0")][..], "MAX_CONNECTIONS"),
        (
            &[("ALLOWED_ORIGINS", "ftp://vote.example.com")],
            "ALLOWED_ORIGINS",
        ),
        (
            &[("ALLOWED_ORIGINS", "https://vote.example.com/path")],
            "ALLOWED_ORIGINS",
        ),
        (
            &[("REDIS_SENTINELS", "127.0.0.1:26379")],
            "REDIS_SENTINEL_MASTER",
        ),
        (&[("REDIS_SENTINEL_MASTER", "voting")], "REDIS_SENTINELS"),
        (
            &[
                ("REDIS_SENTINELS", "nonsense"),
                ("REDIS_SENTINEL_MASTER", "voting"),
            ],
            "REDIS_SENTINELS",
        ),
        (&[("REDIS_URL", "not a url")], "REDIS_URL"),
        (
            &[("REDIS_MIN_REPLICAS_ACK", "-1")],
            "REDIS_MIN_REPLICAS_ACK",
        ),
        (
            &[("REDIS_REPLICA_ACK_TIMEOUT_MS", "0")],
            "REDIS_REPLICA_ACK_TIMEOUT_MS",
        ),
        (&[("OPTION_A", "")], "OPTION_A"),
        (&[("PORT", "70000")], "PORT"),
    ] {
        assert_refused_at_start(vote, env, name).await;
    }
}
