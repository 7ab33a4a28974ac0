//! The vote form: `vote::form::parse_vote`.

use arbitrary::Arbitrary;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use contract::Vote;
use vote::form::{FormError, parse_vote};

/// A submission: a content type (or none) and a body.
#[derive(Debug, Arbitrary)]
pub struct Submission<'a> {
    pub content_type: ContentType<'a>,
    pub body: &'a [u8],
}

#[derive(Debug, Arbitrary)]
pub enum ContentType<'a> {
    None,
    Form,
    FormWithCharset,
    Json,
    Other(&'a [u8]),
}

const FORM: &str = "application/x-www-form-urlencoded";

impl Submission<'_> {
    fn headers(&self) -> HeaderMap {
        let value = match self.content_type {
            ContentType::None => None,
            ContentType::Form => Some(HeaderValue::from_static(FORM)),
            ContentType::FormWithCharset => Some(HeaderValue::from_static(
                "Application/X-WWW-Form-URLEncoded ; charset=UTF-8",
            )),
            ContentType::Json => Some(HeaderValue::from_static("application/json")),
            ContentType::Other(bytes) => HeaderValue::from_bytes(bytes).ok(),
        };
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(CONTENT_TYPE, value);
        }
        headers
    }
}

/// Whether the header names our form type, by an independent reading.
fn is_form(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return false;
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let mime = text.split(';').next().unwrap_or_default();
    mime.trim().eq_ignore_ascii_case(FORM)
}

pub fn check(submission: &Submission<'_>) {
    let headers = submission.headers();
    let parsed = parse_vote(&headers, submission.body);
    let votes: Vec<String> = form_urlencoded::parse(submission.body)
        .filter(|(name, _)| name == "vote")
        .map(|(_, value)| value.into_owned())
        .collect();
    match &parsed {
        Ok(vote) => {
            assert!(is_form(&headers), "a vote parsed from a non-form body");
            assert_eq!(
                votes,
                [vote.as_str()],
                "a vote parsed without exactly one vote field"
            );
        }
        Err(FormError::WrongContentType) => assert!(!is_form(&headers)),
        Err(FormError::Missing) => assert!(votes.is_empty()),
        Err(FormError::Repeated) => assert!(votes.len() > 1),
        Err(FormError::BadVote(_)) => {
            assert_eq!(votes.len(), 1);
            assert!(Vote::parse(&votes[0]).is_err());
        }
        Err(FormError::Undecodable) => {}
    }
    // Every form with exactly one valid vote field is that vote.
    if is_form(&headers)
        && let [value] = votes.as_slice()
        && let Ok(vote) = Vote::parse(value)
    {
        assert_eq!(parsed, Ok(vote), "a valid vote form was refused");
    }
}
