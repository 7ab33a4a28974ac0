//! Starting the hit counter for a test: in-process on `127.0.0.1:0`
//! ([`TestApp`]), or as the real binary ([`AppProcess`]) where the process
//! is the point.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// How long a test waits for anything before failing.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A response reduced to what the tests look at.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

/// The hit counter's state for Redis at `redis_url` (not contacted yet).
pub fn state(redis_url: &str) -> hits::AppState {
    hits::AppState::new(&servicekit::connect::Redis::at(redis_url).unwrap()).unwrap()
}

/// The hit counter served in-process as its binary serves it (its page on
/// a free port, its admin listener on another), pointed at `redis_url`.
pub struct TestApp {
    pub served: testkit::Served<anyhow::Error>,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn spawn(redis_url: &str) -> TestApp {
        let state = state(redis_url);
        let served = testkit::Served::start_with_admin(|public, admin, shutdown| {
            servicekit::launch::serve(state, Some(public), admin, shutdown)
        })
        .await;
        TestApp {
            served,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.served.url(path)
    }

    pub async fn get(&self, path: &str) -> Answer {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        answer(response).await
    }

    /// `GET path` on the admin listener.
    pub async fn admin_get(&self, path: &str) -> Answer {
        let url = self.served.admin_url(path);
        answer(self.client.get(url).send().await.unwrap()).await
    }

    /// Stops the server and waits until it has drained.
    pub async fn stop(mut self) {
        self.served.stop().await;
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

/// One request through the router, no socket involved.
pub async fn oneshot(router: &axum::Router, path: &str) -> (u16, String, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// Reads `hits` straight from Redis.
pub async fn stored_count(redis_url: &str) -> Option<String> {
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET")
        .arg("hits")
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `hits` binary, running with a clean environment plus `env`.
pub struct AppProcess {
    child: tokio::process::Child,
    /// Where it listens, as its own log says.
    pub addr: SocketAddr,
    /// Every log line so far, parsed.
    pub log: Arc<Mutex<Vec<serde_json::Value>>>,
    /// Reads the rest of the log until the process closes it.
    drain: JoinHandle<()>,
}

/// The settings the tests control; inherited values are removed.
const SETTINGS: [&str; 6] = [
    "REDIS_HOST",
    "REDIS_PORT",
    "BIND_PORT",
    "BIND_ADDRESS",
    "ADMIN_PORT",
    "ADMIN_BIND_ADDRESS",
];

/// `hits` with the given arguments and a clean environment plus `env`;
/// its admin listener on any free loopback port unless `env` says.
pub fn hits_command(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hits"));
    cmd.args(args);
    for name in SETTINGS {
        cmd.env_remove(name);
    }
    cmd.env("ADMIN_PORT", "0")
        .env("ADMIN_BIND_ADDRESS", "127.0.0.1");
    cmd.env("RUST_LOG", "info").env("RUST_LOG_FORMAT", "json");
    cmd.envs(env.iter().copied());
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

impl AppProcess {
    /// Starts the binary and waits until it logs that it is listening.
    pub async fn start(env: &[(&str, &str)]) -> AppProcess {
        let mut child = hits_command(&[], env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let listening = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let event: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| panic!("log line is not JSON: {line}"));
                log.lock().unwrap().push(event.clone());
                if event["message"] == "hits listening" {
                    return event["addr"]
                        .as_str()
                        .unwrap()
                        .parse::<SocketAddr>()
                        .unwrap();
                }
            }
            panic!(
                "hits exited before listening; its log: {:?}",
                log.lock().unwrap()
            );
        };
        let addr = tokio::time::timeout(DEADLINE, listening)
            .await
            .expect("hits logs that it listens within the deadline");
        // Keep draining stderr so the process never blocks on a full pipe.
        let sink = log.clone();
        let drain = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(event) = serde_json::from_str(&line) {
                    sink.lock().unwrap().push(event);
                }
            }
        });
        AppProcess {
            child,
            addr,
            log,
            drain,
        }
    }

    /// The first log event with this message.
    pub fn event(&self, message: &str) -> serde_json::Value {
        let log = self.log.lock().unwrap();
        log.iter()
            .find(|e| e["message"] == message)
            .cloned()
            .unwrap_or_else(|| panic!("no {message:?} in the log: {log:?}"))
    }

    /// Sends SIGTERM, as `docker stop` does, and waits for the exit and
    /// the last line of its log.
    pub async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("hits exits within the deadline after SIGTERM")
            .unwrap();
        tokio::time::timeout(DEADLINE, self.drain)
            .await
            .expect("the log closes when hits exits")
            .unwrap();
        status
    }
}
