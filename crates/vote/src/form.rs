//! The vote form, parsed once at the edge.
//!
//! The contract is `POST /` with an `application/x-www-form-urlencoded`
//! body holding exactly one field `vote` whose value is `a` or `b`. Anything
//! else is refused with a message a person can read; other fields are
//! ignored, as browsers may add some.

use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use contract::Vote;

/// Why a submitted form is not a vote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the form must be sent as application/x-www-form-urlencoded")]
    WrongContentType,
    #[error("the form body is not valid URL-encoded text")]
    Undecodable,
    #[error("the form has no \"vote\" field")]
    Missing,
    #[error("the form has more than one \"vote\" field")]
    Repeated,
    #[error("{0}")]
    BadVote(#[from] contract::BallotError),
}

/// Reads the vote from a form submission.
pub fn parse_vote(headers: &HeaderMap, body: &[u8]) -> Result<Vote, FormError> {
    if !is_form_urlencoded(headers) {
        return Err(FormError::WrongContentType);
    }
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|_| FormError::Undecodable)?;
    let mut votes = fields.iter().filter(|(name, _)| name == "vote");
    let (_, value) = votes.next().ok_or(FormError::Missing)?;
    if votes.next().is_some() {
        return Err(FormError::Repeated);
    }
    Ok(Vote::parse(value)?)
}

fn is_form_urlencoded(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn form() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        h
    }

    #[test]
    fn accepts_exactly_a_or_b() {
        assert_eq!(parse_vote(&form(), b"vote=a"), Ok(Vote::A));
        assert_eq!(parse_vote(&form(), b"vote=b&extra=1"), Ok(Vote::B));
        assert!(matches!(
            parse_vote(&form(), b"vote=c"),
            Err(FormError::BadVote(_))
        ));
    }

    #[test]
    fn refuses_missing_repeated_and_undecodable() {
        assert_eq!(parse_vote(&form(), b""), Err(FormError::Missing));
        assert_eq!(
            parse_vote(&form(), b"vote=a&vote=b"),
            Err(FormError::Repeated)
        );
        // Invalid UTF-8 decodes lossily, and is then not a valid vote.
        assert!(matches!(
            parse_vote(&form(), b"vote=%ff"),
            Err(FormError::BadVote(_))
        ));
    }

    #[test]
    fn refuses_other_content_types() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_vote(&h, b"vote=a"), Err(FormError::WrongContentType));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert_eq!(
            parse_vote(&h, br#"{"vote":"a"}"#),
            Err(FormError::WrongContentType)
        );
    }
}
