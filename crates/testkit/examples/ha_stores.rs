//! Runs both replicated stores until Ctrl-C, for trying things by hand
//! (kill a primary with `kill -9`, watch the logs, point a service at them).
//!
//! ```text
//! cargo run -p testkit --features postgres --example ha_stores
//! ```
//!
//! Prints the settings a service needs (`REDIS_SENTINELS`,
//! `REDIS_SENTINEL_MASTER`, `DATABASE_URL`), every node's address and every
//! log file. Everything stops, and its folder is deleted, on Ctrl-C.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit::{PostgresHa, PostgresHaOptions, RedisHa, RedisHaOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (redis, postgres) = tokio::join!(
        RedisHa::start(RedisHaOptions::default()),
        PostgresHa::start(PostgresHaOptions::default())
    );
    let (redis, postgres) = (redis?, postgres?);
    println!("REDIS_SENTINELS={}", redis.sentinels_env());
    println!("REDIS_SENTINEL_MASTER={}", redis.master_name());
    println!("DATABASE_URL={}", postgres.url("postgres"));
    println!();
    println!(
        "Redis nodes (primary now: node {}):",
        redis.primary_node().await?
    );
    for url in redis.urls() {
        println!("  {url}");
    }
    println!(
        "Postgres nodes (primary now: node {}):",
        postgres.primary_node().await?
    );
    for node in 0..postgres.node_count() {
        println!("  {}", postgres.node_url(node, "postgres"));
    }
    println!("  standby endpoint: {}", postgres.read_url("postgres"));
    println!("  etcd: {}", postgres.etcd_endpoint());
    println!("Logs:");
    for log in redis.log_paths().iter().chain(&postgres.log_paths()) {
        println!("  {}", log.display());
    }
    println!("\nCtrl-C stops everything.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
