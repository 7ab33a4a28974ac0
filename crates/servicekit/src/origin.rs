//! Who may cast a vote or open the live feed: the service's own pages, and
//! clients that are not browsers at all.
//!
//! A browser attaches cookies to requests any site makes to ours, so a form
//! on another site could cast a vote for the visitor (cross-site request
//! forgery), and a script on another site could open our WebSocket. But a
//! browser also says where a request comes from, and a page cannot forge
//! that: `Sec-Fetch-Site` in current browsers, `Origin` on every POST and
//! every WebSocket handshake, `Referer` in older ones. [`check_same_origin`]
//! reads them in that order. Clients that send none of them (curl, the
//! seed, monitoring) are not browsers, carry no one else's cookies, and
//! pass: the check protects visitors, it does not authenticate clients.
//!
//! "Our own site" is the `Host` the request was sent to. Behind a proxy
//! that rewrites `Host`, the public origins are listed in
//! `ALLOWED_ORIGINS` ([`AllowedOrigins`]).

use std::fmt;
use std::str::FromStr;

use axum::http::header::{HOST, ORIGIN, REFERER};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, Uri};

/// A web origin: scheme, host and port (the scheme's default when the text
/// names none), compared case-insensitively as browsers do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: &'static str,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of an absolute `http`/`https` URL (`Referer`), or of a
    /// bare origin (`Origin`, `ALLOWED_ORIGINS`). `None` for anything else:
    /// `null`, other schemes, relative or malformed URLs.
    pub fn of_url(text: &str) -> Option<Origin> {
        let uri = Uri::from_str(text.trim()).ok()?;
        let scheme = match uri.scheme_str()? {
            s if s.eq_ignore_ascii_case("http") => "http",
            s if s.eq_ignore_ascii_case("https") => "https",
            _ => return None,
        };
        let authority = uri.authority()?;
        if authority.as_str().contains('@') || authority.host().is_empty() {
            return None;
        }
        Some(Origin {
            scheme,
            host: authority.host().to_ascii_lowercase(),
            port: authority
                .port_u16()
                .unwrap_or(if scheme == "https" { 443 } else { 80 }),
        })
    }

    /// A bare origin, as in an `Origin` header: `scheme://host[:port]` and
    /// nothing after it (a lone `/` is tolerated).
    pub fn parse(text: &str) -> Option<Origin> {
        let text = text.trim();
        let after_scheme = text.split_once("://")?.1;
        let rest = after_scheme.trim_end_matches('/');
        if rest.contains(['/', '?', '#']) {
            return None;
        }
        Origin::of_url(text)
    }

    /// Whether this origin is the one a request for `host` (a `Host`
    /// header) was sent to. `Host` names no scheme; without a port it means
    /// the default port of the scheme the page was loaded over.
    fn is_host(&self, host: &Authority) -> bool {
        host.host().eq_ignore_ascii_case(&self.host)
            && host.port_u16().unwrap_or(match self.scheme {
                "https" => 443,
                _ => 80,
            }) == self.port
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = if self.scheme == "https" { 443 } else { 80 };
        if self.port == default {
            write!(f, "{}://{}", self.scheme, self.host)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// `ALLOWED_ORIGINS`: origins accepted besides the request's own host, for
/// a proxy that rewrites `Host` (e.g. `https://vote.example.com`).
/// Comma-separated; empty (the default) allows only the request's own
/// host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<Origin>);

impl FromStr for AllowedOrigins {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                Origin::parse(entry).ok_or_else(|| {
                    format!("{entry:?} is not an origin like https://vote.example.com[:port]")
                })
            })
            .collect::<Result<_, _>>()
            .map(AllowedOrigins)
    }
}

impl fmt::Display for AllowedOrigins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, origin) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{origin}")?;
        }
        Ok(())
    }
}

/// Why a request was taken for one another site made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CrossSite {
    #[error("the browser marked it cross-site (Sec-Fetch-Site)")]
    FetchMetadata,
    #[error("its Origin is null (a sandboxed frame, a file, a redirect from elsewhere)")]
    NullOrigin,
    #[error("its Origin is another site")]
    ForeignOrigin,
    #[error("its Referer is another site")]
    ForeignReferer,
}

/// Whether a request comes from this site's own pages (or from no browser
/// at all), judged from its headers:
///
/// 1. `Sec-Fetch-Site: same-origin` or `none` (the user's own navigation)
///    passes, `cross-site` is refused; `same-site` (a sibling subdomain) and
///    anything else fall through to the next rule.
/// 2. Else `Origin`: `null` is refused; otherwise it must be the request's
///    own host (`Host`) or one of `allowed`.
/// 3. Else `Referer`, the same way (browsers that send no `Origin`).
/// 4. Else (none of them: not a browser) the request passes.
///
/// An `Origin` or `Referer` that cannot be read is refused like a foreign
/// one: a browser never sends such a thing.
pub fn check_same_origin(headers: &HeaderMap, allowed: &AllowedOrigins) -> Result<(), CrossSite> {
    match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
        Some(b"same-origin" | b"none") => return Ok(()),
        Some(b"cross-site") => return Err(CrossSite::FetchMetadata),
        _ => {}
    }
    let own_host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Authority::from_str(v).ok());
    let is_ours = |origin: &Origin| {
        own_host.as_ref().is_some_and(|host| origin.is_host(host)) || allowed.0.contains(origin)
    };
    let single = |name| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => Some(value.to_str().ok()),
            (None, _) => None,
            // Two of them: no browser sends that.
            (Some(_), Some(_)) => Some(None),
        }
    };
    if let Some(origin) = single(ORIGIN) {
        return match origin {
            Some(text) if text.trim() == "null" => Err(CrossSite::NullOrigin),
            Some(text) => match Origin::parse(text) {
                Some(origin) if is_ours(&origin) => Ok(()),
                _ => Err(CrossSite::ForeignOrigin),
            },
            None => Err(CrossSite::ForeignOrigin),
        };
    }
    if let Some(referer) = single(REFERER) {
        return match referer.and_then(Origin::of_url) {
            Some(origin) if is_ours(&origin) => Ok(()),
            _ => Err(CrossSite::ForeignReferer),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().expect("a valid header value"));
        }
        map
    }

    fn check(pairs: &[(&'static str, &str)], allowed: &str) -> Result<(), CrossSite> {
        check_same_origin(&headers(pairs), &allowed.parse().expect("valid origins"))
    }

    #[test]
    fn the_sites_own_pages_and_clients_that_are_no_browser_pass() {
        let host = ("host", "vote.example:5000");
        for pairs in [
            vec![host],
            vec![host, ("origin", "http://vote.example:5000")],
            vec![host, ("origin", "HTTP://Vote.Example:5000")],
            vec![host, ("referer", "http://vote.example:5000/?x=1")],
            vec![host, ("sec-fetch-site", "same-origin")],
            vec![host, ("sec-fetch-site", "none")],
            // Fetch metadata wins over a stale Referer.
            vec![
                host,
                ("sec-fetch-site", "same-origin"),
                ("referer", "http://old.example/"),
            ],
            vec![("host", "vote.example"), ("origin", "https://vote.example")],
            vec![("host", "vote.example"), ("origin", "http://vote.example")],
            vec![("host", "[::1]:8080"), ("origin", "http://[::1]:8080")],
        ] {
            assert_eq!(check(&pairs, ""), Ok(()), "{pairs:?}");
        }
    }

    #[test]
    fn other_sites_and_opaque_origins_are_refused() {
        let host = ("host", "vote.example:5000");
        for (pairs, why) in [
            (
                vec![host, ("origin", "http://evil.example")],
                CrossSite::ForeignOrigin,
            ),
            (
                vec![host, ("origin", "http://vote.example:5001")],
                CrossSite::ForeignOrigin,
            ),
            (
                vec![host, ("origin", "http://vote.example.evil.example:5000")],
                CrossSite::ForeignOrigin,
            ),
            (vec![host, ("origin", "null")], CrossSite::NullOrigin),
            (
                vec![host, ("origin", "vote.example:5000")],
                CrossSite::ForeignOrigin,
            ),
            (
                vec![host, ("origin", "http://vote.example:5000/path")],
                CrossSite::ForeignOrigin,
            ),
            (
                vec![host, ("origin", "http://x@vote.example:5000")],
                CrossSite::ForeignOrigin,
            ),
            (
                vec![
                    host,
                    ("origin", "http://vote.example:5000"),
                    ("origin", "http://evil.example"),
                ],
                CrossSite::ForeignOrigin,
            ),
            (
                vec![host, ("referer", "http://evil.example/page")],
                CrossSite::ForeignReferer,
            ),
            (
                vec![host, ("referer", "/relative")],
                CrossSite::ForeignReferer,
            ),
            (
                vec![host, ("sec-fetch-site", "cross-site")],
                CrossSite::FetchMetadata,
            ),
            // A sibling subdomain is judged by its Origin.
            (
                vec![
                    host,
                    ("sec-fetch-site", "same-site"),
                    ("origin", "http://blog.vote.example:5000"),
                ],
                CrossSite::ForeignOrigin,
            ),
            // No Host to compare with: only the allowed list could match.
            (
                vec![("origin", "http://vote.example:5000")],
                CrossSite::ForeignOrigin,
            ),
        ] {
            assert_eq!(check(&pairs, ""), Err(why), "{pairs:?}");
        }
    }

    #[test]
    fn allowed_origins_admit_a_proxys_public_address() {
        let behind_proxy = [("host", "vote:80"), ("origin", "https://vote.example.com")];
        assert_eq!(
            check(&behind_proxy, ""),
            Err(CrossSite::ForeignOrigin),
            "not without the setting"
        );
        let allowed = "https://vote.example.com, http://localhost:5000";
        assert_eq!(check(&behind_proxy, allowed), Ok(()));
        assert_eq!(
            check(
                &[
                    ("host", "vote:80"),
                    ("referer", "https://vote.example.com/")
                ],
                allowed
            ),
            Ok(())
        );
        // The scheme counts for listed origins.
        assert_eq!(
            check(
                &[("host", "vote:80"), ("origin", "http://vote.example.com")],
                allowed
            ),
            Err(CrossSite::ForeignOrigin)
        );
    }

    #[test]
    fn allowed_origins_are_parsed_and_printed_in_their_canonical_form() {
        let allowed: AllowedOrigins = " https://Vote.Example.com:443/ ,http://localhost:5000,"
            .parse()
            .unwrap();
        assert_eq!(
            allowed.to_string(),
            "https://vote.example.com,http://localhost:5000"
        );
        assert_eq!("".parse::<AllowedOrigins>(), Ok(AllowedOrigins::default()));
        for bad in ["vote.example.com", "ftp://x", "https://x/path", "null", "*"] {
            let error = bad.parse::<AllowedOrigins>().unwrap_err();
            assert!(error.contains("is not an origin"), "{bad}: {error}");
        }
    }
}
