//! `worker`: moves ballots from Redis into Postgres. Settings, logging,
//! the admin listener, the `healthcheck` subcommand and shutdown come from
//! the shared scaffold (`servicekit::launch`); what the worker does lives
//! in the library.

servicekit::main!(worker::Worker);
