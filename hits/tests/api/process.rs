//! The binary itself, where the process is the point: configuration from
//! the environment, `--help`, the `healthcheck` subcommand, SIGTERM.

use testkit::{RedisOptions, RedisServer};

use crate::helpers::{AppProcess, DEADLINE, free_port, hits_command};

/// A Redis on a loopback TCP port, since `REDIS_HOST`/`REDIS_PORT` speak TCP.
async fn tcp_redis() -> (RedisServer, u16) {
    let port = free_port();
    let server = RedisServer::start(RedisOptions {
        tcp_port: Some(port),
        ..Default::default()
    })
    .await
    .unwrap();
    (server, port)
}

#[tokio::test]
async fn settings_come_from_redis_host_redis_port_and_bind_port() {
    let (_redis, redis_port) = tcp_redis().await;
    let bind_port = free_port();
    let app = AppProcess::start(&[
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", &redis_port.to_string()),
        ("BIND_PORT", &bind_port.to_string()),
        ("BIND_ADDRESS", "127.0.0.1"),
    ])
    .await;

    assert_eq!(app.addr.port(), bind_port);
    let started = app.event("starting hits");
    assert_eq!(started["redis_host"], "127.0.0.1");
    assert_eq!(started["redis_port"], redis_port);
    assert_eq!(started["bind_port"], bind_port);
    let body = reqwest::get(format!("http://{}/", app.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "Hello from Redis! I have been seen 1 times.");
    assert!(app.terminate().await.success());
}

#[tokio::test]
async fn without_settings_the_defaults_are_redis_6379_and_port_5000() {
    let output = hits_command(&["--help"], &[]).output().await.unwrap();
    let help = String::from_utf8(output.stdout).unwrap();

    assert!(output.status.success());
    for expected in [
        "[env: REDIS_HOST=]",
        "[default: redis]",
        "[env: REDIS_PORT=]",
        "[default: 6379]",
        "[env: BIND_PORT=]",
        "[default: 5000]",
        "[env: MAX_CONNECTIONS=]",
        "healthcheck",
    ] {
        assert!(
            help.contains(expected),
            "--help lacks {expected:?}:\n{help}"
        );
    }
}

#[tokio::test]
async fn a_redis_host_that_is_no_host_name_is_refused_with_a_clear_error() {
    for bad in ["", "bad host"] {
        let env = [
            ("REDIS_HOST", bad),
            ("BIND_PORT", "0"),
            ("BIND_ADDRESS", "127.0.0.1"),
        ];
        let output = tokio::time::timeout(DEADLINE, hits_command(&[], &env).output())
            .await
            .unwrap()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();

        assert!(!output.status.success(), "{bad:?} was accepted");
        assert!(stderr.contains("REDIS_HOST"), "{bad:?}: {stderr}");
    }
}

#[tokio::test]
async fn healthcheck_subcommand_passes_only_while_the_app_answers() {
    // `--live`: Redis is not needed; an app whose Redis is down is alive.
    let bind_port = free_port().to_string();
    let admin_port = free_port().to_string();
    let env = [
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", "1"),
        ("BIND_PORT", bind_port.as_str()),
        ("BIND_ADDRESS", "127.0.0.1"),
        ("ADMIN_PORT", admin_port.as_str()),
    ];
    let healthcheck = |args: &'static [&'static str]| async move {
        tokio::time::timeout(DEADLINE, hits_command(args, &env).output())
            .await
            .unwrap()
            .unwrap()
    };

    let before = healthcheck(&["healthcheck", "--live"]).await;
    assert!(!before.status.success());
    assert!(
        String::from_utf8_lossy(&before.stderr).contains("hits healthcheck failed"),
        "{before:?}"
    );

    let app = AppProcess::start(&env).await;
    assert!(
        healthcheck(&["healthcheck", "--live"])
            .await
            .status
            .success()
    );
    // Not ready, though: its Redis does not answer.
    let ready = healthcheck(&["healthcheck"]).await;
    assert!(!ready.status.success(), "{ready:?}");
    assert!(app.terminate().await.success());
}

#[tokio::test]
async fn sigterm_stops_the_app_cleanly_and_it_says_so() {
    let (_redis, redis_port) = tcp_redis().await;
    let app = AppProcess::start(&[
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", &redis_port.to_string()),
        ("BIND_PORT", "0"),
        ("BIND_ADDRESS", "127.0.0.1"),
    ])
    .await;
    let log = app.log.clone();

    let status = app.terminate().await;

    assert!(status.success(), "{status}");
    let log = log.lock().unwrap();
    assert!(
        log.iter().any(|e| e["message"] == "hits stopped"),
        "{log:?}"
    );
}

#[tokio::test]
async fn the_log_says_where_redis_is_when_a_visit_fails() {
    let redis_port = free_port(); // nothing listens there
    let app = AppProcess::start(&[
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", &redis_port.to_string()),
        ("BIND_PORT", "0"),
        ("BIND_ADDRESS", "127.0.0.1"),
    ])
    .await;
    let answer = reqwest::get(format!("http://{}/", app.addr)).await.unwrap();
    assert_eq!(answer.status(), 503);
    let where_redis_is = format!("redis://127.0.0.1:{redis_port}");
    assert!(!answer.text().await.unwrap().contains(&where_redis_is));
    let logged = testkit::eventually("the failed visit in the log", DEADLINE, || async {
        let log = app.log.lock().unwrap();
        log.iter().find(|e| e["message"] == "unavailable").cloned()
    })
    .await;
    let error = logged["error"].as_str().unwrap();
    assert!(error.contains(&where_redis_is), "{logged}");
    assert!(app.terminate().await.success());
}
