//! Throwaway `redis-server` and `postgres` processes on this machine.
//!
//! Two kinds of users start them: the tests (through `testkit`, which
//! gives each test its own database on shared servers, and lets fault
//! tests own a server to stop or crash), and the commands that run the
//! voting app natively without Docker (`cargo xtask up`, `bench`,
//! `chaos`).
//!
//! - [`RedisServer`] ([`redis`]) and [`PostgresServer`] ([`postgres`]):
//!   each server lives in its own temporary directory and listens on a
//!   Unix socket there (and on a loopback TCP port only when asked), so
//!   servers of parallel processes never collide on ports. A server is
//!   ready when it logs so: its log is read, not polled. Dropping a handle
//!   stops its server; it can be stopped, killed and started again on the
//!   same socket and data.
//! - [`process`]: how every server is launched (it dies with the process
//!   that started it, even a killed one), scratch directories that are
//!   swept once their process is gone, and finding installed binaries.
//!
//! A missing `redis-server` or Postgres install is an error that names the
//! `apt-get install` line that fixes it.
//!
//! Must not depend on: the voting app's crates, a database driver or a
//! Redis client. It runs servers; talking to them is its users' business.

pub mod ports;
pub mod postgres;
pub mod process;
pub mod redis;

pub use ports::{free_port, free_ports};
pub use postgres::{PostgresOptions, PostgresServer};
pub use redis::{RedisOptions, RedisServer};
