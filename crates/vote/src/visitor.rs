//! Who is voting: the visitor's identity and remembered choice, carried in
//! cookies.
//!
//! `voter_id` identifies one browser (contract with the original app). It
//! is set on every response of the vote page, refreshing its lifetime; a
//! missing or malformed one is replaced with a fresh random id, never
//! trusted. `vote` remembers the visitor's current choice so a reload shows
//! it — something the original forgets.

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use contract::{Vote, VoterId};
use cookie::{Cookie, SameSite};

/// Name of the identity cookie (contract with the original app).
pub const VOTER_COOKIE: &str = "voter_id";
/// Name of the cookie remembering the visitor's choice.
pub const CHOICE_COOKIE: &str = "vote";
/// Cookies live for a year; every visit renews them.
const MAX_AGE: cookie::time::Duration = cookie::time::Duration::days(365);

/// What the request's cookies say about the visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A well-formed `voter_id` cookie.
    Known(VoterId),
    /// No `voter_id` cookie: a first visit.
    New,
    /// A `voter_id` cookie that is too long or not printable; `why` says
    /// which. It is replaced, and a vote carrying it is refused.
    Malformed(&'static str),
}

/// The visitor as read from the request.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub identity: Identity,
    /// The choice remembered from an earlier vote, if any.
    pub remembered: Option<Vote>,
}

impl Visitor {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut identity = Identity::New;
        let mut remembered = None;
        for header in headers.get_all(COOKIE) {
            // Other cookies on this host may hold any bytes; they must not
            // spoil ours. Bytes that are not UTF-8 become U+FFFD, which no
            // `VoterId` accepts, so a bad id is still caught below.
            let header = String::from_utf8_lossy(header.as_bytes());
            for cookie in Cookie::split_parse(header.as_ref()).flatten() {
                match cookie.name() {
                    VOTER_COOKIE if identity == Identity::New => {
                        identity = match VoterId::parse(cookie.value()) {
                            Ok(id) => Identity::Known(id),
                            Err(contract::BallotError::BadVoterId(why)) => Identity::Malformed(why),
                            Err(_) => Identity::Malformed("invalid"),
                        };
                    }
                    CHOICE_COOKIE if remembered.is_none() => {
                        remembered = Vote::parse(cookie.value()).ok();
                    }
                    _ => {}
                }
            }
        }
        Visitor {
            identity,
            remembered,
        }
    }
}

/// The `Set-Cookie` value carrying `id`.
pub fn voter_cookie(id: &VoterId) -> String {
    with_long_lived_attributes(VOTER_COOKIE, id.as_str())
}

/// The `Set-Cookie` value remembering `vote`.
pub fn choice_cookie(vote: Vote) -> String {
    with_long_lived_attributes(CHOICE_COOKIE, vote.as_str())
}

/// `name=value` followed by the attributes every long-lived cookie
/// carries. The `cookie` crate writes those attributes once, at first use:
/// formatting them for every response (its `Max-Age` goes through a time
/// type) cost about 3% of vote's CPU under `cargo xtask bench`. The values
/// written here (a voter id's hex digits, `a` or `b`) need no encoding,
/// which `Cookie`'s `Display` does not do either.
fn with_long_lived_attributes(name: &'static str, value: &str) -> String {
    static ATTRIBUTES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let sample = build(VOTER_COOKIE, String::new(), MAX_AGE);
        sample[VOTER_COOKIE.len() + 1..].to_owned()
    });
    let mut cookie = String::with_capacity(name.len() + 1 + value.len() + ATTRIBUTES.len());
    cookie.push_str(name);
    cookie.push('=');
    cookie.push_str(value);
    cookie.push_str(&ATTRIBUTES);
    cookie
}

/// The `Set-Cookie` value that forgets a remembered choice (sent with a
/// replaced identity: the old choice belonged to the old id).
pub fn forget_choice_cookie() -> String {
    build(CHOICE_COOKIE, String::new(), cookie::time::Duration::ZERO)
}

fn build(name: &'static str, value: String, max_age: cookie::time::Duration) -> String {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(max_age)
        .build()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn visitor(cookie: &[u8]) -> Visitor {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_bytes(cookie).unwrap());
        Visitor::from_headers(&headers)
    }

    #[test]
    fn reads_id_and_remembered_choice() {
        let v = visitor(b"x=1; voter_id=5a1f2c3d4e5f6a7; vote=b");
        assert_eq!(
            v.identity,
            Identity::Known(VoterId::parse("5a1f2c3d4e5f6a7").unwrap())
        );
        assert_eq!(v.remembered, Some(Vote::B));
    }

    #[test]
    fn no_cookie_is_a_new_visitor() {
        let v = Visitor::from_headers(&HeaderMap::new());
        assert_eq!(v.identity, Identity::New);
        assert_eq!(v.remembered, None);
    }

    #[test]
    fn oversized_or_unprintable_ids_are_malformed() {
        let long = format!("voter_id={}", "a".repeat(256));
        assert!(matches!(
            visitor(long.as_bytes()).identity,
            Identity::Malformed(_)
        ));
        assert!(matches!(
            visitor(b"voter_id=caf\xc3\xa9").identity,
            Identity::Malformed(_)
        ));
        assert!(matches!(
            visitor(b"voter_id=").identity,
            Identity::Malformed(_)
        ));
    }

    #[test]
    fn other_cookies_with_any_bytes_leave_the_id_alone() {
        for header in [
            &b"voter_id=0123456789abcdef; other=caf\xc3\xa9"[..],
            b"other=\xff\xfe; voter_id=0123456789abcdef",
        ] {
            assert_eq!(
                visitor(header).identity,
                Identity::Known(VoterId::parse("0123456789abcdef").unwrap())
            );
        }
        assert!(matches!(
            visitor(b"voter_id=ab\xffcd").identity,
            Identity::Malformed(_)
        ));
    }

    #[test]
    fn a_bogus_remembered_choice_is_ignored() {
        assert_eq!(visitor(b"voter_id=abc; vote=c").remembered, None);
    }

    #[test]
    fn cookies_read_as_the_cookie_crate_writes_them() {
        let id = VoterId::parse("0123456789abcdef").unwrap();
        assert_eq!(
            voter_cookie(&id),
            build(VOTER_COOKIE, id.as_str().to_owned(), MAX_AGE)
        );
        for vote in Vote::ALL {
            assert_eq!(
                choice_cookie(vote),
                build(CHOICE_COOKIE, vote.as_str().to_owned(), MAX_AGE)
            );
        }
    }

    #[test]
    fn cookies_are_http_only_lax_and_long_lived() {
        let c = voter_cookie(&VoterId::parse("0123456789abcdef").unwrap());
        assert!(c.starts_with("voter_id=0123456789abcdef"), "{c}");
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=31536000"] {
            assert!(c.contains(attr), "{c} lacks {attr}");
        }
    }
}
