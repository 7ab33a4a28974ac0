//! Shared helpers for the result service's tests: the service in-process on
//! a free port, a live-feed client, and the SQL other writers run.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

use contract::BallotChoices;
use contract::Tally;
use futures_util::{SinkExt, StreamExt};
use servicekit::settings::{AdminArgs, DatabaseArgs, HttpArgs};
use sqlx::PgPool;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for any single event.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Settings for a test instance: loopback, port 0, Cats vs Dogs.
pub fn settings(database_url: &str) -> result::Settings {
    result::Settings {
        http: HttpArgs {
            port: 0,
            bind_address: "127.0.0.1".parse().unwrap(),
            connections: Default::default(),
            shutdown_delay_seconds: 0,
        },
        database: DatabaseArgs::at(database_url).unwrap(),
        choices: BallotChoices {
            option_a: "Cats".to_owned(),
            option_b: "Dogs".to_owned(),
        },
        origins: Default::default(),
        admin: AdminArgs::at("127.0.0.1:0".parse().unwrap()),
        max_clients: 100,
        max_clients_per_address: 0,
        poll_interval_ms: 1000,
        ping_interval_ms: 20_000,
    }
}

/// Settings that leave every change to notifications: an hour between
/// polls, far beyond any test's deadline, so a trigger that stopped
/// notifying shows as a change that never arrives.
pub fn notified_only(database_url: &str) -> result::Settings {
    result::Settings {
        poll_interval_ms: 3_600_000,
        ..settings(database_url)
    }
}

/// A result service running in this process, as its binary runs it: its
/// page on a free port (or the one its settings name), its admin listener
/// on another.
pub struct TestApp {
    pub served: testkit::Served<anyhow::Error>,
    pub http: reqwest::Client,
    pub state: result::AppState,
}

impl TestApp {
    pub async fn spawn(database_url: &str) -> Self {
        Self::spawn_with(settings(database_url)).await
    }

    pub async fn spawn_with(settings: result::Settings) -> Self {
        let state = result::AppState::new(&settings);
        let served = testkit::Served::start_with_admin_on(settings.http.addr(), {
            let state = state.clone();
            |public, admin, shutdown| {
                servicekit::launch::serve(state, Some(public), admin, shutdown)
            }
        })
        .await;
        TestApp {
            served,
            http: reqwest::Client::new(),
            state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.served.url(path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// `GET path` on the admin listener.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.served.admin_url(path))
            .send()
            .await
            .unwrap()
    }

    pub async fn page(&self) -> String {
        let res = self.get("/").await;
        assert_eq!(res.status(), reqwest::StatusCode::OK);
        res.text().await.unwrap()
    }

    /// A live-feed client, connected.
    pub async fn connect(&self) -> LiveClient {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", self.served.addr))
            .await
            .unwrap();
        LiveClient { ws }
    }

    /// Waits until the service has published `expected`.
    pub async fn wait_for_tally(&self, expected: Tally) {
        testkit::eventually(&format!("the tally {expected:?}"), DEADLINE, || async {
            (self.state.current() == Some(expected)).then_some(())
        })
        .await;
    }

    /// Shuts the service down and waits for `serve` to return.
    pub async fn stop(&mut self) {
        self.served.stop().await;
    }
}

/// A browser-like live-feed client.
pub struct LiveClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a client saw next on the socket.
#[derive(Debug)]
pub enum Seen {
    Tally(Tally),
    Ping,
    Closed(Option<CloseFrame>),
}

impl LiveClient {
    /// The next thing the server sent, within [`DEADLINE`].
    pub async fn next(&mut self) -> Seen {
        loop {
            let message = tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("a message from the server within the deadline");
            match message {
                Some(Ok(Message::Text(text))) => {
                    let tally = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("not a tally: {text}: {e}"));
                    return Seen::Tally(tally);
                }
                Some(Ok(Message::Ping(_))) => return Seen::Ping,
                Some(Ok(Message::Close(frame))) => return Seen::Closed(frame),
                Some(Ok(Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(b))) => panic!("unexpected binary message {b:?}"),
                Some(Err(_)) | None => return Seen::Closed(None),
            }
        }
    }

    /// The next tally, skipping pings.
    pub async fn next_tally(&mut self) -> Tally {
        loop {
            match self.next().await {
                Seen::Tally(tally) => return tally,
                Seen::Ping => continue,
                Seen::Closed(frame) => panic!("socket closed while waiting for a tally: {frame:?}"),
            }
        }
    }

    /// Reads tallies until `expected` arrives (intermediate ones may be
    /// skipped by the server: it always sends the latest).
    pub async fn wait_for(&mut self, expected: Tally) {
        let started = tokio::time::Instant::now();
        loop {
            let seen = self.next_tally().await;
            if seen == expected {
                return;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "waited {DEADLINE:?} for {expected:?}; last saw {seen:?}"
            );
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }
}

pub fn tally(a: u64, b: u64) -> Tally {
    Tally { a, b }
}

/// Our schema, as the worker creates it.
pub async fn migrate(pool: &PgPool) {
    worker::schema::migrate(pool).await.unwrap();
}

/// A vote inserted with plain SQL, as any other writer might.
pub async fn insert_vote(pool: &PgPool, voter: &str, vote: &str) {
    sqlx::query("INSERT INTO votes (id, vote) VALUES ($1, $2)")
        .bind(voter)
        .bind(vote)
        .execute(pool)
        .await
        .unwrap();
}

/// `n` new voters for `vote`, in one statement.
pub async fn insert_many(pool: &PgPool, prefix: &str, vote: &str, n: i64) {
    sqlx::query(
        "INSERT INTO votes (id, vote) SELECT $1 || g::text, $2 FROM generate_series(1, $3) g",
    )
    .bind(prefix)
    .bind(vote)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}

/// Stores a ballot through the worker's own store function (the ordered
/// upsert: a later `seq` replaces the voter's row, an earlier one changes
/// nothing).
pub async fn store_with_the_worker(pool: &PgPool, voter: &str, vote: &str, seq: i64) {
    let ballot = contract::Ballot {
        voter_id: contract::VoterId::parse(voter).unwrap(),
        vote: contract::Vote::parse(vote).unwrap(),
        seq: Some(seq),
    };
    worker::store::store_ballots(pool, &[&ballot])
        .await
        .unwrap();
}

/// What `SELECT vote, COUNT(id) FROM votes GROUP BY vote` says.
pub async fn group_by(pool: &PgPool) -> Tally {
    result::tally::count_votes(pool).await.unwrap()
}
