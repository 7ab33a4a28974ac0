//! What a seed run did, for people (the summary) and machines (`--report-json`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use contract::Vote;

use crate::stalls::Stall;

/// How one request ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// 2xx, after this long.
    Ok(Duration),
    /// Answered with another status (`HTTP 503 …`), after this long.
    Refused(String, Duration),
    /// No answer, with its cause (`timeout`, …).
    Failed(String),
}

/// Totals and latency distribution of a run.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: String,
    pub concurrency: u32,
    pub ok_a: u64,
    pub ok_b: u64,
    /// Failed requests by cause.
    pub failures: BTreeMap<String, u64>,
    /// Latency of successful requests, in microseconds.
    pub latency_us: Histogram<u64>,
    /// The slowest answer that was not a success.
    pub slowest_refusal: Duration,
    /// When no vote succeeded for a while (see [`crate::stalls`]).
    pub stalls: Vec<Stall>,
    pub elapsed: Duration,
    /// With `--verify`: time from the last response to the result feed
    /// showing every new vote.
    pub verified_after: Option<Duration>,
}

impl Report {
    pub fn new(target: String, concurrency: u32) -> Self {
        Report {
            target,
            concurrency,
            ok_a: 0,
            ok_b: 0,
            failures: BTreeMap::new(),
            // 1 µs .. 1 h at 3 significant figures; these bounds are valid
            // constants, so construction cannot fail.
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!())),
            slowest_refusal: Duration::ZERO,
            stalls: Vec::new(),
            elapsed: Duration::ZERO,
            verified_after: None,
        }
    }

    pub fn record(&mut self, vote: Vote, outcome: Outcome) {
        match outcome {
            Outcome::Ok(latency) => {
                match vote {
                    Vote::A => self.ok_a += 1,
                    Vote::B => self.ok_b += 1,
                }
                let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency_us.saturating_record(us.max(1));
            }
            Outcome::Refused(cause, after) => {
                self.slowest_refusal = self.slowest_refusal.max(after);
                *self.failures.entry(cause).or_default() += 1;
            }
            Outcome::Failed(cause) => *self.failures.entry(cause).or_default() += 1,
        }
    }

    pub fn merge(&mut self, other: Report) {
        self.ok_a += other.ok_a;
        self.ok_b += other.ok_b;
        for (cause, n) in other.failures {
            *self.failures.entry(cause).or_default() += n;
        }
        self.slowest_refusal = self.slowest_refusal.max(other.slowest_refusal);
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
    }

    pub fn succeeded(&self, vote: Vote) -> u64 {
        match vote {
            Vote::A => self.ok_a,
            Vote::B => self.ok_b,
        }
    }

    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    pub fn sent(&self) -> u64 {
        self.ok_a + self.ok_b + self.failed()
    }

    pub fn requests_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.sent() as f64 / secs
        } else {
            0.0
        }
    }

    fn percentile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "target": self.target,
            "concurrency": self.concurrency,
            "sent": self.sent(),
            "succeeded": { "a": self.ok_a, "b": self.ok_b },
            "failed": self.failed(),
            "failures": self.failures,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "requests_per_second": self.requests_per_second(),
            "latency_ms": {
                "p50": self.percentile_ms(0.50),
                "p90": self.percentile_ms(0.90),
                "p99": self.percentile_ms(0.99),
                "max": self.latency_us.max() as f64 / 1000.0,
                "max_refused": self.slowest_refusal.as_secs_f64() * 1000.0,
            },
            "stalls": self.stalls.iter().map(|s| serde_json::json!({
                "from_s": s.from.as_secs_f64(),
                "seconds": s.length.as_secs_f64(),
            })).collect::<Vec<_>>(),
            "verified_after_ms": self.verified_after.map(|d| d.as_secs_f64() * 1000.0),
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed: posted {} votes to {} with concurrency {}",
            self.sent(),
            self.target,
            self.concurrency
        )?;
        writeln!(
            f,
            "  succeeded: {} (a: {}, b: {})   failed: {}",
            self.ok_a + self.ok_b,
            self.ok_a,
            self.ok_b,
            self.failed()
        )?;
        for (cause, n) in &self.failures {
            writeln!(f, "    {n} × {cause}")?;
        }
        writeln!(
            f,
            "  time: {:.2} s   rate: {:.0} req/s",
            self.elapsed.as_secs_f64(),
            self.requests_per_second()
        )?;
        if !self.latency_us.is_empty() {
            writeln!(
                f,
                "  latency: p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
                self.percentile_ms(0.50),
                self.percentile_ms(0.90),
                self.percentile_ms(0.99),
                self.latency_us.max() as f64 / 1000.0
            )?;
        }
        if !self.stalls.is_empty() {
            let stalls: Vec<String> = self
                .stalls
                .iter()
                .map(|s| {
                    format!(
                        "{:.1} s from {:.1} s",
                        s.length.as_secs_f64(),
                        s.from.as_secs_f64()
                    )
                })
                .collect();
            writeln!(f, "  stood still: {}", stalls.join(", "))?;
        }
        if let Some(after) = self.verified_after {
            writeln!(
                f,
                "  verified: the result feed showed every new vote {:.0} ms after the last response",
                after.as_secs_f64() * 1000.0
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_successes_per_option_and_failures_per_cause() {
        let mut r = Report::new("http://x/".into(), 2);
        r.record(Vote::A, Outcome::Ok(Duration::from_millis(2)));
        r.record(Vote::B, Outcome::Ok(Duration::from_millis(4)));
        r.record(
            Vote::B,
            Outcome::Failed("HTTP 503 Service Unavailable".into()),
        );
        let mut other = Report::new(String::new(), 0);
        other.record(Vote::A, Outcome::Failed("timeout".into()));
        other.record(
            Vote::B,
            Outcome::Refused(
                "HTTP 503 Service Unavailable".into(),
                Duration::from_millis(9),
            ),
        );
        other.record(Vote::A, Outcome::Ok(Duration::from_millis(6)));
        r.merge(other);
        assert_eq!((r.ok_a, r.ok_b, r.failed(), r.sent()), (2, 1, 3, 6));
        assert_eq!(r.failures["timeout"], 1);
        assert_eq!(r.failures["HTTP 503 Service Unavailable"], 2);
        assert_eq!(r.to_json()["latency_ms"]["max_refused"], 9.0);
        let text = r.to_string();
        assert!(text.contains("failed: 3"), "{text}");
        assert!(text.contains("1 × timeout"), "{text}");
        assert!(text.contains("p99"), "{text}");
        assert_eq!(r.to_json()["succeeded"]["a"], 2);
    }
}
