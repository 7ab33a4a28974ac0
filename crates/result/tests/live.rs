//! The live feed (`GET /ws`) against a real Postgres, with real WebSocket
//! clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{
    DEADLINE, Seen, TestApp, group_by, insert_many, insert_vote, migrate, notified_only, settings,
    store_with_the_worker, tally,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn a_client_gets_the_tally_as_json_on_connect() {
    let db = testkit::postgres().await;
    migrate(&db.pool).await;
    insert_many(&db.pool, "a", "a", 2).await;
    insert_vote(&db.pool, "b1", "b").await;
    let app = TestApp::spawn(&db.url).await;
    let mut client = app.connect().await;
    let first = tokio::time::timeout(DEADLINE, futures_util::StreamExt::next(&mut client.ws))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first, Message::text(r#"{"a":2,"b":1}"#));
}

#[tokio::test]
async fn a_row_inserted_by_plain_sql_reaches_every_client() {
    let db = testkit::postgres().await;
    migrate(&db.pool).await;
    let app = TestApp::spawn(&db.url).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = app.connect().await;
        assert_eq!(client.next_tally().await, tally(0, 0));
        clients.push(client);
    }
    insert_vote(&db.pool, "v1", "a").await;
    for client in &mut clients {
        assert_eq!(client.next_tally().await, tally(1, 0));
    }
}

#[tokio::test]
async fn a_ballot_stored_by_the_worker_reaches_clients_by_notification() {
    let db = testkit::postgres().await;
    migrate(&db.pool).await;
    let app = TestApp::spawn_with(notified_only(&db.url)).await;
    let mut client = app.connect().await;
    assert_eq!(client.next_tally().await, tally(0, 0));

    store_with_the_worker(&db.pool, "0123456789abcdef", "a", 1).await;
    client.wait_for(tally(1, 0)).await;
    // The voter changes their mind: same row, other option.
    store_with_the_worker(&db.pool, "0123456789abcdef", "b", 2).await;
    client.wait_for(tally(0, 1)).await;
    // A stale ballot (lower seq) changes nothing; a new voter does.
    store_with_the_worker(&db.pool, "0123456789abcdef", "a", 1).await;
    store_with_the_worker(&db.pool, "fedcba9876543210", "a", 3).await;
    client.wait_for(tally(1, 1)).await;
    assert_eq!(group_by(&db.pool).await, tally(1, 1));
}

#[tokio::test]
async fn changes_arrive_by_notification_without_waiting_for_the_poll() {
    let db = testkit::postgres().await;
    migrate(&db.pool).await;
    // With an hour between polls, only a notification can deliver this.
    let app = TestApp::spawn_with(notified_only(&db.url)).await;
    let mut client = app.connect().await;
    assert_eq!(client.next_tally().await, tally(0, 0));
    for n in 1..=3 {
        insert_vote(&db.pool, &format!("v{n}"), "b").await;
        client.wait_for(tally(0, n)).await;
    }
}

#[tokio::test]
async fn every_kind_of_change_is_notified_and_the_tally_shown_agrees_with_the_group_by_query() {
    let db = testkit::postgres().await;
    migrate(&db.pool).await;
    // Inserts, updates, deletes and a truncate, each delivered by its
    // notification alone.
    let app = TestApp::spawn_with(notified_only(&db.url)).await;
    let mut client = app.connect().await;
    assert_eq!(client.next_tally().await, tally(0, 0));

    let steps = [
        "INSERT INTO votes (id, vote) SELECT 'x' || g, CASE WHEN g % 3 = 0 THEN 'b' ELSE 'a' END \
         FROM generate_series(1, 300) g",
        "UPDATE votes SET vote = 'b' WHERE id IN ('x1', 'x2', 'x4')",
        "UPDATE votes SET vote = 'a' WHERE id = 'x3'",
        "DELETE FROM votes WHERE id IN ('x5', 'x6')",
        // A value other than a or b is counted by nobody.
        "UPDATE votes SET vote = 'c' WHERE id = 'x7'",
        "TRUNCATE votes",
        "INSERT INTO votes (id, vote) VALUES ('y1', 'b')",
    ];
    for step in steps {
        // Shown if the change never arrives.
        println!("after: {step}");
        sqlx::query(step).execute(&db.pool).await.unwrap();
        let expected = group_by(&db.pool).await;
        client.wait_for(expected).await;
        assert_eq!(app.state.current(), Some(expected), "after {step}");
    }
}

#[tokio::test]
async fn a_full_live_feed_refuses_new_clients_with_a_clear_503() {
    let recorded = testkit::metrics::Recorded::on_this_thread();
    let db = testkit::postgres().await;
    let app = TestApp::spawn_with(result::Settings {
        max_clients: 2,
        ..settings(&db.url)
    })
    .await;
    let mut first = app.connect().await;
    let _second = app.connect().await;
    first.next_tally().await;

    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.served.addr))
        .await
        .expect_err("a third client is refused");
    let tokio_tungstenite::tungstenite::Error::Http(response) = refused else {
        panic!("expected an HTTP refusal, got {refused:?}");
    };
    assert_eq!(response.status(), 503);
    let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default());
    assert!(body.contains("Too many live result pages"), "{body}");

    // A slot frees up when a client leaves.
    first.ws.close(None).await.unwrap();
    testkit::eventually("a free slot", DEADLINE, || async {
        (app.state.free_client_slots() == 1).then_some(())
    })
    .await;
    let mut third = app.connect().await;
    assert_eq!(third.next_tally().await, tally(0, 0));

    assert_eq!(
        recorded.value("result_clients_refused_total", &[("reason", "full")]),
        1.0
    );
}

#[tokio::test]
async fn idle_clients_are_pinged_and_stay_connected() {
    let db = testkit::postgres().await;
    migrate(&db.pool).await;
    let app = TestApp::spawn_with(result::Settings {
        ping_interval_ms: 100,
        ..settings(&db.url)
    })
    .await;
    let mut client = app.connect().await;
    assert_eq!(client.next_tally().await, tally(0, 0));
    // Text from a client is ignored, not an error.
    client.send_text("hello").await;
    // The client answers each ping (tungstenite does so while reading), so
    // it outlives many intervals.
    let mut pings = 0;
    while pings < 5 {
        match client.next().await {
            Seen::Ping => pings += 1,
            other => panic!("expected a ping, got {other:?}"),
        }
    }
    insert_vote(&db.pool, "v1", "a").await;
    client.wait_for(tally(1, 0)).await;
}

#[tokio::test]
async fn a_client_that_never_answers_is_disconnected() {
    let db = testkit::postgres().await;
    let app = TestApp::spawn_with(result::Settings {
        ping_interval_ms: 100,
        ..settings(&db.url)
    })
    .await;
    // A bare socket that completes the handshake and then stays silent: no
    // pongs, nothing.
    let mut socket = tokio::net::TcpStream::connect(app.served.addr)
        .await
        .unwrap();
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        app.served.addr
    );
    socket.write_all(handshake.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let read_to_end = tokio::time::timeout(DEADLINE, socket.read_to_end(&mut received)).await;
    assert!(
        read_to_end.is_ok(),
        "the server kept a silent client for {DEADLINE:?}"
    );
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    testkit::eventually("the client slot back", DEADLINE, || async {
        (app.state.free_client_slots() == 100).then_some(())
    })
    .await;
}

#[tokio::test]
async fn shutdown_closes_every_client_with_going_away() {
    let db = testkit::postgres().await;
    let mut app = TestApp::spawn(&db.url).await;
    let mut clients = vec![app.connect().await, app.connect().await];
    for client in &mut clients {
        client.next_tally().await;
    }
    let stopping = async { app.stop().await };
    let closes = async {
        let mut frames = Vec::new();
        for client in &mut clients {
            loop {
                match client.next().await {
                    Seen::Closed(frame) => {
                        frames.push(frame);
                        break;
                    }
                    Seen::Ping | Seen::Tally(_) => continue,
                }
            }
        }
        frames
    };
    let ((), frames) = tokio::join!(stopping, closes);
    for frame in frames {
        let frame = frame.expect("a close frame, not a dropped connection");
        assert_eq!(frame.code, CloseCode::Away);
    }
}

#[tokio::test]
async fn the_metrics_count_clients_ticks_queries_and_messages() {
    let recorded = testkit::metrics::Recorded::on_this_thread();
    let db = testkit::postgres().await;
    migrate(&db.pool).await;
    let app = TestApp::spawn(&db.url).await;
    let mut client = app.connect().await;
    client.next_tally().await;
    assert_eq!(recorded.value("result_clients_connected", &[]), 1.0);
    insert_vote(&db.pool, "v1", "a").await;
    client.wait_for(tally(1, 0)).await;
    assert_eq!(app.state.free_client_slots(), 99);

    // Two tallies sent to the one client: on connect and after the vote.
    assert_eq!(recorded.value("result_messages_sent_total", &[]), 2.0);
    assert!(recorded.value("result_ticks_total", &[]) >= 1.0);
    assert!(recorded.value("result_query_seconds_count", &[]) >= 1.0);
    drop(client);
    testkit::eventually("the client to be counted out", DEADLINE, || async {
        (recorded.value("result_clients_connected", &[]) == 0.0).then_some(())
    })
    .await;
}

/// A browser-like WebSocket handshake for `/ws` from `local`, with
/// `extra` headers; the connection stays open for as long as it is kept.
async fn handshake(
    app: &TestApp,
    local: &str,
    extra: &[(&str, &str)],
) -> (u16, testkit::raw::RawConn) {
    use testkit::raw::{RawConn, request, websocket_upgrade_headers};
    let host = app.served.addr.to_string();
    let mut headers = websocket_upgrade_headers();
    headers.push(("Host", &host));
    headers.extend_from_slice(extra);
    let mut conn = RawConn::connect_from(local.parse().unwrap(), app.served.addr)
        .await
        .unwrap();
    conn.send(&request("GET", "/ws", &headers, b""))
        .await
        .unwrap();
    let answer = conn.response(DEADLINE).await.unwrap();
    (answer.status, conn)
}

#[tokio::test]
async fn the_live_feed_refuses_upgrades_from_other_sites_pages() {
    let db = testkit::postgres().await;
    let app = TestApp::spawn(&db.url).await;
    let own = format!("http://{}", app.served.addr);
    let own_page = format!("{own}/");
    for extra in [
        vec![("Origin", "http://evil.example")],
        vec![("Origin", "null")],
        vec![("Referer", "http://evil.example/")],
        vec![("Sec-Fetch-Site", "cross-site"), ("Origin", own.as_str())],
    ] {
        let (status, _) = handshake(&app, "127.0.0.1", &extra).await;
        assert_eq!(status, 403, "{extra:?}");
    }
    for extra in [
        vec![("Origin", own.as_str())],
        vec![("Referer", own_page.as_str())],
        vec![], // not a browser
    ] {
        let (status, _) = handshake(&app, "127.0.0.1", &extra).await;
        assert_eq!(status, 101, "{extra:?}");
    }
}

#[tokio::test]
async fn one_address_cannot_hold_every_live_feed_slot_when_capped() {
    let db = testkit::postgres().await;
    let app = TestApp::spawn_with(result::Settings {
        max_clients: 10,
        max_clients_per_address: 2,
        ..settings(&db.url)
    })
    .await;
    let (first, first_conn) = handshake(&app, "127.0.0.2", &[]).await;
    let (second, _second_conn) = handshake(&app, "127.0.0.2", &[]).await;
    assert_eq!((first, second), (101, 101));
    let (third, _) = handshake(&app, "127.0.0.2", &[]).await;
    assert_eq!(third, 503, "a third client from one address");
    let (other, _other_conn) = handshake(&app, "127.0.0.3", &[]).await;
    assert_eq!(other, 101, "another address still gets in");

    // The address gets its slot back when a client leaves.
    drop(first_conn);
    testkit::eventually("the slot to free up", DEADLINE, || async {
        let (status, conn) = handshake(&app, "127.0.0.2", &[]).await;
        (status == 101).then_some(conn)
    })
    .await;
}

#[tokio::test]
async fn without_a_per_address_cap_one_address_may_open_many_feeds() {
    let db = testkit::postgres().await;
    let app = TestApp::spawn(&db.url).await;
    let mut open = Vec::new();
    for n in 0..5 {
        let (status, conn) = handshake(&app, "127.0.0.4", &[]).await;
        assert_eq!(status, 101, "client {n}");
        open.push(conn);
    }
}

/// The benches' crowd (raw sockets read by one thread) against the real
/// service: every client sees every commit, and the close frame at
/// shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_raw_clients_sees_every_commit_and_the_close() {
    let db = testkit::postgres().await;
    migrate(&db.pool).await;
    let mut app = TestApp::spawn(&db.url).await;
    let addr = app.served.addr;
    let crowd = tokio::task::spawn_blocking(move || crowd::Crowd::connect(addr, 50, DEADLINE))
        .await
        .unwrap()
        .unwrap();
    for n in 1..=3 {
        crowd.expect(n);
        insert_vote(&db.pool, &format!("v{n}"), "a").await;
        let seen = tokio::task::block_in_place(|| crowd.wait_all(DEADLINE)).unwrap();
        assert_eq!(seen.len(), 50, "round {n}");
    }
    app.stop().await;
    tokio::task::block_in_place(|| crowd.wait_closed(DEADLINE)).unwrap();
    assert_eq!(crowd.going_away(), 50);
}
