//! The `Cookie` headers of a vote request: `vote::visitor::Visitor`.

use arbitrary::Arbitrary;
use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use contract::{Vote, VoterId};
use vote::visitor::{self, Identity, Visitor};

/// Up to a few `Cookie` header values, as a client may send them.
#[derive(Debug, Arbitrary)]
pub struct Cookies<'a> {
    pub headers: Vec<&'a [u8]>,
}

fn visitor_of(values: &[HeaderValue]) -> Visitor {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(COOKIE, value.clone());
    }
    Visitor::from_headers(&headers)
}

/// The `name=value` part of a `Set-Cookie` value: what the browser sends
/// back.
fn sent_back(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub fn check(cookies: &Cookies<'_>) {
    let values: Vec<HeaderValue> = cookies
        .headers
        .iter()
        .take(8)
        .filter_map(|bytes| HeaderValue::from_bytes(bytes).ok())
        .collect();
    let all: Vec<u8> = values.iter().flat_map(|v| v.as_bytes().to_vec()).collect();
    let visitor = visitor_of(&values);
    match &visitor.identity {
        Identity::Known(id) => {
            assert!(
                contains(&all, b"voter_id"),
                "an identity from no voter_id cookie"
            );
            assert!(
                contains(&all, id.as_str().as_bytes()),
                "an id the headers do not carry"
            );
        }
        Identity::Malformed(why) => {
            assert!(
                contains(&all, b"voter_id"),
                "a malformed id from no voter_id cookie"
            );
            assert!(!why.is_empty());
        }
        Identity::New => {}
    }
    if let Some(vote) = visitor.remembered {
        // The value may come with blanks around it, which cookies ignore.
        assert!(contains(&all, b"vote") && contains(&all, vote.as_str().as_bytes()));
    }
    if !contains(&all, b"voter_id") {
        assert_eq!(visitor.identity, Identity::New);
    }

    // The cookies we set come back as set, whatever the client adds after
    // them: a known id is set again as it was read, a new one is ours.
    let id = match &visitor.identity {
        Identity::Known(id) => id.clone(),
        _ => VoterId::parse("0123456789abcdef").expect("a valid id"),
    };
    for vote in Vote::ALL {
        let ours = format!(
            "{}; {}",
            sent_back(&visitor::voter_cookie(&id)),
            sent_back(&visitor::choice_cookie(vote))
        );
        let mut first = vec![HeaderValue::from_str(&ours).expect("our cookies are a valid header")];
        first.extend(values.iter().cloned());
        let back = visitor_of(&first);
        assert_eq!(
            back.identity,
            Identity::Known(id.clone()),
            "{ours} read back"
        );
        assert_eq!(back.remembered, Some(vote), "{ours} read back");
    }
}
