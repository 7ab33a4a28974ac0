//! What the visitor sees: the result page, rendered on the server with the
//! current tally (so it is right without JavaScript), and the embedded
//! stylesheet, script and icon. Nothing is loaded from another host, and
//! nothing is inline (no `style=` or `<script>` in the markup), so the
//! page works under a Content-Security-Policy of `default-src 'self'`.
//!
//! The percentage and label rules ([`percentages`], [`percent_labels`],
//! [`votes_label`]) match the original result page; the script
//! (`static/result.js`) mirrors them so that live updates read exactly like
//! the server's rendering (`67.0%`, `No votes yet`, `1 vote`, `N votes`).

use std::sync::OnceLock;

use askama::Template;
use askama_web::WebTemplate;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use contract::BallotChoices;
use contract::Tally;

#[derive(Template, WebTemplate)]
#[template(path = "index.html")]
struct ResultPage<'a> {
    option_a: &'a str,
    option_b: &'a str,
    /// Bar widths in whole percent.
    a_width: u8,
    b_width: u8,
    a_percent: String,
    b_percent: String,
    votes: String,
}

/// Whole-number percentages `(a, b)`: `a = round(100·a/(a+b))`,
/// `b = 100 − a`; 50/50 when nobody has voted.
pub fn percentages(tally: Tally) -> (u8, u8) {
    let total = u128::from(tally.a) + u128::from(tally.b);
    if total == 0 {
        return (50, 50);
    }
    // Integer round-half-up of 100·a/total, exact for any count.
    let a = ((200 * u128::from(tally.a) + total) / (2 * total)) as u8;
    (a, 100 - a)
}

/// Percentages as the page shows them, with one decimal: `("67.0%", "33.0%")`.
pub fn percent_labels(tally: Tally) -> (String, String) {
    let (a, b) = percentages(tally);
    (format!("{a}.0%"), format!("{b}.0%"))
}

/// `No votes yet`, `1 vote` or `N votes`.
pub fn votes_label(tally: Tally) -> String {
    match tally.total() {
        0 => "No votes yet".to_owned(),
        1 => "1 vote".to_owned(),
        n => format!("{n} votes"),
    }
}

/// What the page says while no tally has been read yet (Postgres not
/// reachable since start): no made-up numbers; the script fills them in as
/// soon as the live feed has a tally.
pub const WAITING_LABEL: &str = "Waiting for the vote count…";

/// The result page showing `tally`, or that it is not known yet.
pub fn result_page(choices: &BallotChoices, tally: Option<Tally>) -> Response {
    let page = match tally {
        Some(tally) => {
            let (a_width, b_width) = percentages(tally);
            let (a_percent, b_percent) = percent_labels(tally);
            ResultPage {
                option_a: &choices.option_a,
                option_b: &choices.option_b,
                a_width,
                b_width,
                a_percent,
                b_percent,
                votes: votes_label(tally),
            }
        }
        None => ResultPage {
            option_a: &choices.option_a,
            option_b: &choices.option_b,
            a_width: 50,
            b_width: 50,
            a_percent: "–".to_owned(),
            b_percent: "–".to_owned(),
            votes: WAITING_LABEL.to_owned(),
        },
    };
    // Live numbers: a cached copy would show an old tally until the
    // script connects.
    ([(CACHE_CONTROL, "no-store")], page).into_response()
}

pub async fn stylesheet() -> impl IntoResponse {
    servicekit::http::static_asset("text/css; charset=utf-8", stylesheet_text())
}

/// `static/result.css` plus a class per bar width, `.w0` to `.w100`: the
/// page's Content-Security-Policy forbids inline styles, so the server
/// sizes the bars with these classes (the script then sets widths through
/// the DOM, which the policy allows).
fn stylesheet_text() -> &'static str {
    static CSS: OnceLock<String> = OnceLock::new();
    CSS.get_or_init(|| {
        let mut css = include_str!("../static/result.css").to_owned();
        css.push_str("/* Bar widths, one class per whole percent. */\n");
        for width in 0..=100 {
            css.push_str(&format!(".w{width} {{ width: {width}%; }}\n"));
        }
        css
    })
}

pub async fn script() -> impl IntoResponse {
    servicekit::http::static_asset(
        "text/javascript; charset=utf-8",
        include_str!("../static/result.js"),
    )
}

pub async fn favicon() -> impl IntoResponse {
    servicekit::http::static_asset("image/svg+xml", include_str!("../static/favicon.svg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(a: u64, b: u64) -> Tally {
        Tally { a, b }
    }

    #[test]
    fn no_votes_is_an_even_split() {
        assert_eq!(percentages(t(0, 0)), (50, 50));
        assert_eq!(votes_label(t(0, 0)), "No votes yet");
    }

    #[test]
    fn one_side_only() {
        assert_eq!(percent_labels(t(3, 0)), ("100.0%".into(), "0.0%".into()));
        assert_eq!(percent_labels(t(0, 1)), ("0.0%".into(), "100.0%".into()));
    }

    #[test]
    fn thirds_round_to_nearest() {
        assert_eq!(percentages(t(1, 2)), (33, 67));
        assert_eq!(percentages(t(2, 1)), (67, 33));
        assert_eq!(percent_labels(t(2, 1)), ("67.0%".into(), "33.0%".into()));
        // 0.5 rounds up, like Math.round in the original page.
        assert_eq!(percentages(t(1, 199)), (1, 99));
        assert_eq!(percentages(t(1, 1)), (50, 50));
    }

    #[test]
    fn the_largest_counts_neither_overflow_nor_skew() {
        assert_eq!(percentages(t(u64::MAX, u64::MAX)), (50, 50));
        assert_eq!(percentages(t(u64::MAX, 0)), (100, 0));
    }

    #[test]
    fn singular_and_plural() {
        assert_eq!(votes_label(t(1, 0)), "1 vote");
        assert_eq!(votes_label(t(1, 1)), "2 votes");
        assert_eq!(votes_label(t(2000, 1000)), "3000 votes");
    }
}
