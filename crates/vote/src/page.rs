//! What the visitor sees: the vote page, error pages, and the mapping from
//! every failure to a status code and a sentence a person can act on.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::StatusCode;
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::response::{AppendHeaders, IntoResponse, Response};
use contract::Vote;

use crate::form::FormError;

/// What the vote page says that is fixed at start: the two choices and
/// the machine name.
#[derive(Debug, Clone)]
pub struct VotePageText {
    pub option_a: String,
    pub option_b: String,
    pub hostname: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "index.html")]
struct VotePage<'a> {
    option_a: &'a str,
    option_b: &'a str,
    /// CSS state of each button: `chosen`, `dimmed` or empty.
    a_state: &'static str,
    b_state: &'static str,
    hostname: &'a str,
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    heading: &'a str,
    message: String,
    hostname: &'a str,
}

/// The vote page, with `chosen` marked if the visitor has voted.
pub fn vote_page(config: &VotePageText, chosen: Option<Vote>, cookies: Vec<String>) -> Response {
    let (a_state, b_state) = match chosen {
        None => ("", ""),
        Some(Vote::A) => ("chosen", "dimmed"),
        Some(Vote::B) => ("dimmed", "chosen"),
    };
    let page = VotePage {
        option_a: &config.option_a,
        option_b: &config.option_b,
        a_state,
        b_state,
        hostname: &config.hostname,
    };
    (with_cookies(cookies), page).into_response()
}

/// Everything that can stop a vote from being queued.
#[derive(Debug, thiserror::Error)]
pub enum VoteError {
    #[error(transparent)]
    Form(#[from] FormError),
    #[error("the vote form is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the request body could not be read")]
    UnreadableBody,
    /// The client stopped sending the form half-way (or never sent it
    /// after `100 Continue`).
    #[error("the request body did not arrive within {0:?}")]
    SlowBody(std::time::Duration),
    #[error("voter cookie rejected: {0}")]
    BadCookie(&'static str),
    #[error("cross-site form submission refused: {0}")]
    CrossSite(servicekit::origin::CrossSite),
    #[error("the vote queue is unavailable: {0}")]
    QueueUnavailable(String),
    /// Redis answered the push with an error (e.g. a corrupt `votes:seq`):
    /// nothing was queued, and trying again will not help until an
    /// operator has looked.
    #[error("the vote queue refused the ballot: {0}")]
    QueueRefused(String),
    /// Redis is at its `maxmemory` and refused the push: nothing was
    /// queued, and votes are taken again once the worker has caught up.
    #[error("the vote queue is full: {0}")]
    QueueFull(String),
    /// Redis did not confirm the push (a timeout, a connection lost in
    /// flight): the ballot may or may not be queued.
    #[error("the vote queue did not confirm the ballot: {0}")]
    Unconfirmed(String),
    #[error("no random voter id available: {0}")]
    NoRandomness(String),
}

impl VoteError {
    fn status(&self) -> StatusCode {
        match self {
            VoteError::Form(FormError::WrongContentType) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            VoteError::Form(_) | VoteError::BadCookie(_) | VoteError::UnreadableBody => {
                StatusCode::BAD_REQUEST
            }
            VoteError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            VoteError::SlowBody(_) => StatusCode::REQUEST_TIMEOUT,
            VoteError::CrossSite(_) => StatusCode::FORBIDDEN,
            // 503 with Retry-After for an unknown outcome too: the service
            // could not do its job right now, and trying again is safe
            // (another ballot for the same choice changes nothing).
            VoteError::QueueUnavailable(_)
            | VoteError::QueueRefused(_)
            | VoteError::QueueFull(_)
            | VoteError::Unconfirmed(_)
            | VoteError::NoRandomness(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn heading(&self) -> &'static str {
        if let VoteError::Unconfirmed(_) = self {
            return "We could not confirm your vote";
        }
        match self.status() {
            StatusCode::SERVICE_UNAVAILABLE => "Voting is paused for a moment",
            StatusCode::FORBIDDEN => "Vote refused",
            _ => "That vote could not be counted",
        }
    }

    fn message(&self) -> String {
        match self {
            VoteError::Form(e) => format!("Your vote was not recorded: {e}."),
            VoteError::TooLarge(limit) => {
                format!("Your vote was not recorded: the form is larger than {limit} bytes.")
            }
            VoteError::UnreadableBody => {
                "Your vote was not recorded: the form could not be read.".to_owned()
            }
            VoteError::SlowBody(_) => {
                "Your vote was not recorded: the form did not arrive in time. \
                 Please try again."
                    .to_owned()
            }
            VoteError::BadCookie(why) => format!(
                "Your vote was not recorded: your voter cookie was {why}. \
                 It has been replaced; please vote again."
            ),
            VoteError::CrossSite(_) => {
                "Your vote was not recorded: votes must be sent from the vote page itself."
                    .to_owned()
            }
            VoteError::QueueUnavailable(_) => {
                "Your vote was not recorded because the vote queue cannot be reached right now. \
                 Please try again in a few seconds."
                    .to_owned()
            }
            VoteError::QueueFull(_) => {
                "Your vote was not recorded: the vote queue is full right now, while the votes \
                 already in it are counted. Please try again in a minute."
                    .to_owned()
            }
            VoteError::QueueRefused(_) => {
                "Your vote was not recorded: the vote queue is out of order on this server \
                 (the cause is in its log). Please try again later."
                    .to_owned()
            }
            VoteError::Unconfirmed(_) => {
                "We could not confirm your vote: the vote queue did not confirm it, so it may \
                 or may not have been recorded. Voting again is harmless: only your latest \
                 choice counts."
                    .to_owned()
            }
            VoteError::NoRandomness(_) => {
                "Your vote was not recorded because this server could not make you a voter id \
                 right now. Please try again in a few seconds."
                    .to_owned()
            }
        }
    }

    /// The error page for this failure, carrying the visitor's cookies.
    pub fn into_page(self, config: &VotePageText, cookies: Vec<String>) -> Response {
        let status = self.status();
        let page = ErrorPage {
            heading: self.heading(),
            message: self.message(),
            hostname: &config.hostname,
        };
        let mut response = (status, with_cookies(cookies), page).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
        }
        response
    }
}

fn with_cookies(cookies: Vec<String>) -> AppendHeaders<Vec<(axum::http::HeaderName, String)>> {
    AppendHeaders(cookies.into_iter().map(|c| (SET_COOKIE, c)).collect())
}
