//! `hits`: the hit counter. Settings, logging, the listeners, the
//! `healthcheck` subcommand and shutdown come from the shared scaffold
//! (`servicekit::launch`); what the app does lives in the library.

servicekit::main!(hits::AppState);
