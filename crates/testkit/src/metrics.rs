//! Reading a service's `/metrics` page (Prometheus text format, on its
//! admin listener) in tests: which series exist and with which labels, so
//! a test can check that no client input creates new ones; and
//! [`Recorded`], a recorder of a test's own, so a test can check the values
//! it caused.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use crate::raw::{RawConn, request};

/// The `method` label values a service may use: the standard methods, and
/// `OTHER` for anything else a client makes up.
pub const METHOD_LABELS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "OTHER",
];
/// The `route` label of a request no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// One series: its labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every series of metric `name` in `text` (exact name: `x_total` does
/// not match `x_total_bucket`). Label values are unescaped.
pub fn series(text: &str, name: &str) -> Vec<Series> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(rest) => {
                    let end = closing_brace(rest)?;
                    (parse_labels(&rest[..end]), &rest[end + 1..])
                }
                None if rest.starts_with(' ') => (BTreeMap::new(), rest),
                None => return None,
            };
            let value = value.split_whitespace().next()?.parse().ok()?;
            Some(Series { labels, value })
        })
        .collect()
}

/// Sends `count` requests with made-up methods and `count` with made-up
/// paths to the service at `addr` (on one keep-alive connection), then
/// checks the `/metrics` of its admin listener at `admin`: every `http_requests_total` and
/// `http_request_duration_seconds` series is labelled from a closed set —
/// a method of [`METHOD_LABELS`], a route of `routes` or
/// [`UNMATCHED_ROUTE`] — and there are at most `max_series` of the former.
/// The recorder is shared by every service in a test process, so the check
/// holds whatever other tests run alongside; it fails on the first label
/// value a client chose.
pub async fn assert_request_labels_are_bounded(
    addr: SocketAddr,
    admin: SocketAddr,
    routes: &[&str],
    count: usize,
    max_series: usize,
) {
    let mut conn = RawConn::connect(addr).await.expect("connecting");
    for i in 0..count {
        let method = format!("M{i:05}X");
        conn.send(&request(&method, "/", &[], b""))
            .await
            .expect("sending");
        let path = format!("/made-up/{i}?q={i}");
        conn.send(&request("GET", &path, &[], b""))
            .await
            .expect("sending");
        // Read as we go, so neither side's buffers fill up.
        for _ in 0..2 {
            let answer = conn
                .response(crate::raw::READ_DEADLINE)
                .await
                .expect("an answer to each request");
            assert!(answer.status >= 400, "{}", answer.status_line);
        }
    }
    let text = crate::raw::send(admin, &request("GET", "/metrics", &[], b""))
        .await
        .expect("reading /metrics")
        .text();
    let allowed_routes: BTreeSet<&str> = routes.iter().copied().chain([UNMATCHED_ROUTE]).collect();
    let requests = series(&text, "http_requests_total");
    assert!(!requests.is_empty(), "no http_requests_total in:\n{text}");
    let durations = series(&text, "http_request_duration_seconds_count");
    for s in requests.iter().chain(&durations) {
        if let Some(method) = s.labels.get("method") {
            assert!(
                METHOD_LABELS.contains(&method.as_str()),
                "a client-chosen method became a label: {:?} ({} series of http_requests_total)",
                s.labels,
                requests.len()
            );
        }
        let route = s.labels.get("route").map(String::as_str).unwrap_or("");
        assert!(
            allowed_routes.contains(route),
            "a client-chosen path became a label: {:?}",
            s.labels
        );
    }
    assert!(
        requests.len() <= max_series,
        "{} series of http_requests_total (at most {max_series} expected)",
        requests.len()
    );
}

/// The sum of the series of metric `name` in `text` that carry every label
/// of `labels` (other labels may differ); 0 if there is none.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    series(text, name)
        .iter()
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// The metrics recorded on this thread while it lives, in a recorder of
/// the test's own: the process-wide recorder (what `/metrics` renders) is
/// shared by every test of the binary running alongside, so the values in
/// it are not the test's. A `#[tokio::test]` runs the test and every task
/// it spawns on its thread (the default current-thread runtime), so what the
/// service it serves records lands here, and nothing another test does.
///
/// Install it before the service is built: metric handles a service
/// registered earlier keep recording into the recorder they came from.
pub struct Recorded {
    handle: metrics_exporter_prometheus::PrometheusHandle,
    _guard: metrics::LocalRecorderGuard<'static>,
}

impl Recorded {
    /// Records this thread's metrics until dropped.
    pub fn on_this_thread() -> Self {
        // Leaked: a guard must not outlive its recorder, and a test's few
        // kilobytes are returned when its process ends.
        let recorder: &'static _ = Box::leak(Box::new(
            metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder(),
        ));
        Recorded {
            handle: recorder.handle(),
            _guard: metrics::set_default_local_recorder(recorder),
        }
    }

    /// Everything recorded so far, in the Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// The sum of the series of `name` carrying `labels` (see [`value`]).
    /// Histograms are summaries here: `<name>_count` counts their samples.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        value(&self.render(), name, labels)
    }
}

/// The index of the `}` that ends a label set (quotes respected).
fn closing_brace(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(name.trim_start_matches(',').trim().to_owned(), value);
        rest = &after[end..];
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_read_with_their_labels() {
        let text = "# TYPE a_total counter\n\
                    a_total{route=\"/\",method=\"GET\",status=\"200\"} 3\n\
                    a_total{route=\"/x\\\"y}\",method=\"OTHER\",status=\"405\"} 1\n\
                    a_total_bucket{le=\"1\"} 2\n\
                    b 7\n";
        let found = series(text, "a_total");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].labels["method"], "GET");
        assert_eq!(found[0].value, 3.0);
        assert_eq!(found[1].labels["route"], "/x\"y}");
        assert_eq!(found[1].labels["status"], "405");
        assert_eq!(series(text, "b")[0].value, 7.0);
        assert!(series(text, "a").is_empty());
        assert_eq!(value(text, "a_total", &[]), 4.0);
        assert_eq!(value(text, "a_total", &[("method", "GET")]), 3.0);
        assert_eq!(value(text, "a_total", &[("method", "PUT")]), 0.0);
    }

    #[test]
    fn a_recorder_of_its_own_sees_only_this_threads_metrics() {
        let recorded = Recorded::on_this_thread();
        metrics::counter!("mine_total", "k" => "v").increment(2);
        std::thread::spawn(|| metrics::counter!("mine_total", "k" => "v").increment(5))
            .join()
            .expect("the other thread");
        assert_eq!(recorded.value("mine_total", &[("k", "v")]), 2.0);
    }
}
