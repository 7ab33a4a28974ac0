//! `hits`: the hit counter, the small distributed system that comes before
//! the voting app.
//!
//! It is the first lesson of the source document: two containers, a web app
//! and Redis, that find each other by name on a Docker network. Every
//! `GET /` runs `INCR hits` in Redis and answers
//! `Hello from Redis! I have been seen N times.` with the new count. Because
//! the count lives in Redis (and, in the compose file, in Redis's volume),
//! it outlives the web container; whether it outlives the Redis container
//! depends on that volume, which is the point of the exercise.
//!
//! Compatible with the original Flask app where it matters: the same key
//! (`hits`, a plain Redis integer), the same sentence byte for byte (no
//! trailing newline, and "1 times" as the original says), the same
//! settings (`REDIS_HOST`, `REDIS_PORT`, `BIND_PORT`). Beyond it:
//!
//! - One `INCR` per visit, whose reply *is* the count: concurrent visitors
//!   each see a different number and none is lost (the original did `INCR`
//!   then `GET`, so two visitors could see the same number).
//! - While Redis is down or unreachable, a visit gets a one-line 503
//!   instead of a stack trace, within [`HIT_TIMEOUT`]; the app keeps
//!   running and counts again as soon as Redis is back. A visit Redis did
//!   not confirm (a timeout) is said to be possibly counted, never "not
//!   counted".
//! - A visit is counted at most once: a failed `INCR` is retried only when
//!   it cannot have reached Redis (no connection could be made), never
//!   after a timeout or a connection lost mid-command, because a lost reply
//!   cannot tell whether Redis counted it. The connection to Redis is
//!   remade as soon as Redis drops it, so the first visit after a restart
//!   is counted.
//! - An admin listener (`ADMIN_PORT`, 8083) with `/healthz`, `/readyz` and
//!   `/metrics` (see [`servicekit::admin`]); `/healthz` and `/readyz` on the
//!   page's port too; a `healthcheck` subcommand; a graceful stop on
//!   SIGTERM. The shared scaffold (`servicekit::launch`) starts it like
//!   every service of the voting app.
//! - A Redis outage is logged when it starts and when it ends (see
//!   [`servicekit::outage`]), not once per visit that fails meanwhile.
//!
//! Must not depend on: the voting app's `contract` (the hit counter is a
//! separate system that shares no data with it), Postgres or sqlx, or the
//! test harness outside `[dev-dependencies]`. It uses `servicekit` for the
//! plumbing every service shares.

pub mod metrics;
mod routes;
mod service;
mod settings;
mod state;

pub use routes::{greeting, router};
pub use service::serve;
pub use settings::{DEFAULT_ADMIN_PORT, Settings, redis_url};
pub use state::{AppState, HIT_TIMEOUT, HITS_KEY, HitError};
