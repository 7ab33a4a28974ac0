//! The vote service's public HTTP surface: the page (`GET /`), the vote
//! (`POST /`), the page's assets, and `/healthz` and `/readyz` for load
//! balancers (metrics and the reasons for readiness are on the admin
//! listener).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use axum::response::Response;
use axum::routing::get;
use contract::{Ballot, Vote, VoterId};
use servicekit::launch::Service;
use servicekit::origin::check_same_origin;

use crate::form;
use crate::page::{self, VoteError};
use crate::state::AppState;
use crate::visitor::{self, Identity, Visitor};

/// Largest accepted form body. `vote=a` is 6 bytes.
pub const MAX_FORM_BYTES: usize = 1024;

/// The router of the public listener.
pub fn router(state: AppState) -> Router {
    let probe = state.probe();
    let request_timeout = state.serve.request_timeout;
    let app = Router::new()
        .route("/", get(show_page).post(cast_vote))
        .route("/static/style.css", get(stylesheet))
        .route("/static/favicon.svg", get(favicon))
        // Shared, not cloned per request: a clone of the state (its Redis
        // handle above all) cost more to make and drop than an `Arc`.
        .with_state(Arc::new(state))
        .merge(servicekit::admin::public_routes(probe));
    servicekit::http::with_standard_layers(app, request_timeout)
}

/// The identity to answer with, and the cookies that carry it.
fn identify(visitor: &Visitor) -> Result<(VoterId, Vec<String>), VoteError> {
    match &visitor.identity {
        Identity::Known(id) => Ok((id.clone(), vec![visitor::voter_cookie(id)])),
        Identity::New | Identity::Malformed(_) => {
            let id = VoterId::random().map_err(|e| VoteError::NoRandomness(e.to_string()))?;
            let mut cookies = vec![visitor::voter_cookie(&id)];
            if visitor.remembered.is_some() {
                cookies.push(visitor::forget_choice_cookie());
            }
            Ok((id, cookies))
        }
    }
}

async fn show_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let visitor = Visitor::from_headers(&headers);
    match identify(&visitor) {
        Ok((_, cookies)) => {
            let chosen = match visitor.identity {
                Identity::Known(_) => visitor.remembered,
                _ => None,
            };
            page::vote_page(&state.page, chosen, cookies)
        }
        Err(e) => e.into_page(&state.page, Vec::new()),
    }
}

async fn cast_vote(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let visitor = Visitor::from_headers(request.headers());
    let (voter_id, mut cookies) = match identify(&visitor) {
        Ok(identity) => identity,
        Err(e) => return e.into_page(&state.page, Vec::new()),
    };
    match accept_vote(&state, &visitor, voter_id, request).await {
        Ok(vote) => {
            cookies.push(visitor::choice_cookie(vote));
            page::vote_page(&state.page, Some(vote), cookies)
        }
        Err(e) => {
            tracing::debug!(error = %e, "vote refused");
            e.into_page(&state.page, cookies)
        }
    }
}

/// Checks the submission and queues the ballot. Everything that can be
/// judged from the head is judged before the body is read: a refused
/// request never gets `100 Continue`, and a client announcing a body over
/// [`MAX_FORM_BYTES`] is answered at once instead of being waited for.
async fn accept_vote(
    state: &AppState,
    visitor: &Visitor,
    voter_id: VoterId,
    request: Request,
) -> Result<Vote, VoteError> {
    let headers = request.headers();
    // A form on another site must not vote with this visitor's cookie (CSRF).
    check_same_origin(headers, &state.allowed_origins).map_err(VoteError::CrossSite)?;
    if let Identity::Malformed(why) = visitor.identity {
        return Err(VoteError::BadCookie(why));
    }
    if declared_length(headers).is_some_and(|length| length > MAX_FORM_BYTES as u64) {
        return Err(VoteError::TooLarge(MAX_FORM_BYTES));
    }
    // A client that stops half-way is told so (408) before the request
    // timeout would answer for it with a 503.
    let body_timeout = state.serve.body_timeout;
    let (head, body) = request.into_parts();
    let body = tokio::time::timeout(body_timeout, axum::body::to_bytes(body, MAX_FORM_BYTES))
        .await
        .map_err(|_| VoteError::SlowBody(body_timeout))?
        .map_err(|e| {
            if is_over_the_limit(&e) {
                VoteError::TooLarge(MAX_FORM_BYTES)
            } else {
                VoteError::UnreadableBody
            }
        })?;
    let vote = form::parse_vote(&head.headers, &body)?;
    state.queue(Ballot::new(voter_id, vote)).await?;
    Ok(vote)
}

/// Whether reading a body failed because it is longer than the limit (a
/// body without a `Content-Length`, or longer than it announced), rather
/// than because the client went away.
fn is_over_the_limit(e: &axum::Error) -> bool {
    std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .any(|e| e.is::<http_body_util::LengthLimitError>())
}

/// The body length the client announced, if it did (hyper has already
/// refused a request whose `Content-Length` is not one number).
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

async fn stylesheet() -> Response {
    servicekit::http::static_asset(
        "text/css; charset=utf-8",
        include_str!("../static/style.css"),
    )
}

async fn favicon() -> Response {
    servicekit::http::static_asset("image/svg+xml", include_str!("../static/favicon.svg"))
}
