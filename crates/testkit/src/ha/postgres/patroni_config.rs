//! What each Patroni node is told: `patroni.yml`, the node's part (its
//! ports, folders, users) and the cluster's (`bootstrap.dcs`: the timing
//! from [`PostgresHaOptions`], synchronous mode, rewinding) in one file.
//! The reasons for each setting are in the parent module's docs and in
//! [`PostgresHaOptions`].

use anyhow::Context;
use localstores::process::find_postgres_binary;

use super::PostgresHaOptions;
use super::node::Node;

/// A node's Patroni configuration (YAML).
pub(super) fn patroni_config(
    node: &Node,
    options: &PostgresHaOptions,
    etcd_port: u16,
) -> anyhow::Result<String> {
    // Patroni runs every tool (pg_controldata, pg_rewind, …) from
    // `bin_dir`; a `postgres` on PATH may be a lone symlink into the real
    // directory (as /usr/local/bin/postgres is on some machines).
    let postgres = std::fs::canonicalize(find_postgres_binary("postgres")?)?;
    let bin_dir = postgres
        .parent()
        .context("the postgres binary has no directory")?;
    let fsync = if options.fsync { "on" } else { "off" };
    Ok(format!(
        "scope: voting
name: {name}
restapi:
  listen: 127.0.0.1:{rest}
  connect_address: 127.0.0.1:{rest}
etcd3:
  hosts: 127.0.0.1:{etcd_port}
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry_timeout}
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_log_hints: 'on'
        max_connections: 200
        fsync: '{fsync}'
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: '{data}'
  bin_dir: '{bin_dir}'
  pgpass: '{dir}/pgpass'
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
  parameters:
    unix_socket_directories: '{dir}'
  basebackup:
    - checkpoint: fast
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 scram-sha-256
    - host replication replicator 127.0.0.1/32 scram-sha-256
# No watchdog device here. The margin only silences a warning Patroni
# logs every loop when ttl is short, even with the watchdog off.
watchdog:
  mode: 'off'
  safety_margin: 0
",
        name = node.name,
        rest = node.rest_port,
        pg = node.pg_port,
        ttl = options.ttl,
        loop_wait = options.loop_wait,
        retry_timeout = options.retry_timeout,
        data = node.data_dir().display(),
        bin_dir = bin_dir.display(),
        dir = node.dir.display(),
    ))
}
