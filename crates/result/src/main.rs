//! `result`: the live result page. Settings, logging, the listeners, the
//! `healthcheck` subcommand and shutdown come from the shared scaffold
//! (`servicekit::launch`); what the service does lives in the library.

servicekit::main!(result::AppState);
