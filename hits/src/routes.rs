//! The hit counter's public HTTP surface: `/` counts; `/healthz` and
//! `/readyz` are for load balancers (metrics and the reasons for readiness
//! are on the admin listener).

use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use servicekit::launch::Service;

use crate::state::{AppState, HitError, TEXT};

/// The router of the public listener.
pub fn router(state: AppState) -> Router {
    let probe = state.probe();
    let request_timeout = state.serve.request_timeout;
    let app = Router::new()
        .route("/", get(hello))
        .with_state(state)
        .merge(servicekit::admin::public_routes(probe));
    servicekit::http::with_standard_layers(app, request_timeout)
}

/// `GET /`: count the visit and say how many there have been.
async fn hello(State(state): State<AppState>) -> Result<Response, HitError> {
    let count = state.count_visit().await?;
    // Every answer is a new count: no cache may replay one.
    Ok((
        [(CONTENT_TYPE, TEXT), (CACHE_CONTROL, "no-store")],
        greeting(count),
    )
        .into_response())
}

/// The page's sentence for the `count`th visit, exactly as the original
/// writes it.
pub fn greeting(count: i64) -> String {
    format!("Hello from Redis! I have been seen {count} times.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_is_the_original_sentence_without_a_newline() {
        assert_eq!(greeting(1), "Hello from Redis! I have been seen 1 times.");
        assert_eq!(
            greeting(1234),
            "Hello from Redis! I have been seen 1234 times."
        );
    }
}
