//! The result service's public HTTP surface: the page, its assets, the
//! live feed, and `/healthz` and `/readyz` for load balancers (metrics and
//! the reasons for readiness are on the admin listener).

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use servicekit::launch::Service;

use crate::state::AppState;
use crate::{live, page};

/// How long a page view waits for the first tally after start before it
/// renders an empty one.
const FIRST_TALLY_WAIT: Duration = Duration::from_secs(1);

/// The router of the public listener.
pub fn router(state: AppState) -> Router {
    let probe = state.probe();
    let request_timeout = state.serve.request_timeout;
    let app = Router::new()
        .route("/", get(show_page))
        .route("/ws", get(live::live_feed))
        .route("/static/result.css", get(page::stylesheet))
        .route("/static/result.js", get(page::script))
        .route("/static/favicon.svg", get(page::favicon))
        .with_state(state)
        .merge(servicekit::admin::public_routes(probe));
    servicekit::http::with_standard_layers(app, request_timeout)
}

async fn show_page(State(state): State<AppState>) -> Response {
    let mut feed = state.feed.subscribe();
    // Just after start the first read may still be under way. If there is
    // still none (Postgres unreachable), the page says it is waiting.
    let tally = match tokio::time::timeout(FIRST_TALLY_WAIT, feed.wait_for(Option::is_some)).await {
        Ok(Ok(snapshot)) => snapshot.as_ref().map(|s| s.tally),
        _ => None,
    };
    page::result_page(&state.choices, tally)
}
