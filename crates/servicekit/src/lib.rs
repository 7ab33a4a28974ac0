//! The plumbing every service of the voting app shares, so that each
//! service's own crate holds only what it does.
//!
//! - [`settings`] — the settings groups services flatten into their
//!   `clap` settings (HTTP listener, admin listener, allowed origins,
//!   Redis, Postgres), each value parsed once, at start;
//! - [`redact`] — hiding passwords in store URLs;
//! - [`host`] — the machine's name (not a setting: it is read, not set);
//! - [`connect`] — lazy connections that survive a store being down, made
//!   from the parsed settings: Redis (one server or through Sentinel, and
//!   what its failures mean) and a Postgres pool;
//! - [`addresses`] — caps per remote address (connections, live pages);
//! - [`http`] — the HTTP server that slow clients cannot hold, the layers
//!   every router gets (request ids, tracing, metrics, security headers,
//!   timeouts, panics answered 500) and static assets;
//! - [`origin`] — which requests come from the site's own pages;
//! - [`admin`] — the admin listener beside every service's public one:
//!   health, readiness and metrics endpoints, and the metrics recorder
//!   and its upkeep;
//! - [`metric`] — declaring a metric once: name, kind, help text;
//! - [`telemetry`] — logging through `tracing`;
//! - [`outage`] — logging a store's outage by its changes of state;
//! - [`shutdown`] — one cancellation token for the process;
//! - [`limits`] — raising the open-files limit;
//! - [`healthcheck`] — the `healthcheck` subcommand, which asks the admin
//!   listener;
//! - [`launch`] — one way to start a service: the [`launch::Service`]
//!   trait every service implements, and the `main` every service binary
//!   is ([`main!`]).
//!
//! Must not depend on: the contract (ballots, queue keys, options and
//! tables are the services' business, not the plumbing's) or any service.
//! Each store is behind a feature (`redis`, `postgres`), so a service
//! compiles only the clients it uses: `cargo tree -p result` shows no
//! Redis client, `cargo tree -p vote` no sqlx.

pub mod addresses;
pub mod admin;
pub mod connect;
pub mod healthcheck;
pub mod host;
pub mod http;
pub mod launch;
pub mod limits;
pub mod metric;
pub mod origin;
pub mod outage;
pub mod redact;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
