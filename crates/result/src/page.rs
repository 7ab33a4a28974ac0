//! What the visitor sees: the result page, rendered on the server with the
//! current tally (so it is right without JavaScript), and the embedded
//! stylesheet, script and icon. Nothing is loaded from another host, and
//! nothing is inline (no `style=` or `<script>` in the markup), so the
//! page works under a Content-Security-Policy of `default-src 'self'`.
//!
//! The script (`static/result.js`) mirrors [`common::Tally`]'s percentage
//! and label rules so that live updates read exactly like the server's
//! rendering (`67.0%`, `No votes yet`, `1 vote`, `N votes`).

use std::sync::OnceLock;

use askama::Template;
use askama_web::WebTemplate;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use common::Tally;

/// The option names, fixed at start.
#[derive(Debug, Clone)]
pub struct PageConfig {
    pub option_a: String,
    pub option_b: String,
}

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

/// What the page says while no tally has been read yet (Postgres not
/// reachable since start): no made-up numbers; the script fills them in as
/// soon as the live feed has a tally.
pub const WAITING_LABEL: &str = "Waiting for the vote count…";

/// The result page showing `tally`, or that it is not known yet.
pub fn result_page(config: &PageConfig, tally: Option<Tally>) -> Response {
    let page = match tally {
        Some(tally) => {
            let (a_width, b_width) = tally.percentages();
            let (a_percent, b_percent) = tally.percent_labels();
            ResultPage {
                option_a: &config.option_a,
                option_b: &config.option_b,
                a_width,
                b_width,
                a_percent,
                b_percent,
                votes: tally.votes_label(),
            }
        }
        None => ResultPage {
            option_a: &config.option_a,
            option_b: &config.option_b,
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
    common::http::static_asset("text/css; charset=utf-8", stylesheet_text())
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
    common::http::static_asset(
        "text/javascript; charset=utf-8",
        include_str!("../static/result.js"),
    )
}

pub async fn favicon() -> impl IntoResponse {
    common::http::static_asset("image/svg+xml", include_str!("../static/favicon.svg"))
}
