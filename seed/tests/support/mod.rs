//! What the seed's tests share: a result service in the test process.

use clap::Parser;

#[derive(Parser)]
struct ResultCli {
    #[command(flatten)]
    settings: result::Settings,
}

/// A result service in this process on a free port, over `db` (migrated
/// here, so it needs no worker), pinging its live pages every
/// `ping_interval_ms` and dropping those silent for two pings.
pub async fn result_service(
    db: &testkit::TestDb,
    ping_interval_ms: u64,
) -> testkit::Served<anyhow::Error> {
    worker::schema::migrate(&db.pool).await.unwrap();
    let settings = ResultCli::try_parse_from([
        "result",
        "--port=0",
        "--bind-address=127.0.0.1",
        "--admin-port=0",
        "--admin-bind-address=127.0.0.1",
        &format!("--database-url={}", db.url),
        &format!("--ping-interval-ms={ping_interval_ms}"),
    ])
    .unwrap()
    .settings;
    let state = result::AppState::new(&settings);
    testkit::Served::start_with_admin_on(settings.http.addr(), |public, admin, shutdown| {
        servicekit::launch::serve(state, Some(public), admin, shutdown)
    })
    .await
}
