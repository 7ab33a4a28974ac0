//! `seed watch`: the seed's own live-feed client for scripts. It follows a
//! result service's feed (`GET /ws`), prints every tally as `a=N b=M`, and
//! exits as soon as the expected tally arrives (or, without `--expect`,
//! after the first, which the service sends on connect).
//!
//! Exit codes say what happened, so a script can tell "not yet" from
//! "broken": 0 the tally was seen, 1 it was not seen within `--timeout`
//! (the last tally seen is on stderr), 2 the arguments were wrong (clap's
//! own), 3 the feed could not be reached or sent something that is not a
//! tally.

use std::time::Duration;

use contract::Tally;

use crate::verify::Feed;

/// What to watch for.
#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    /// The result page's URL (`http://result/`) or its feed's
    /// (`ws://result/ws`): the feed is `/ws` on the same host either way.
    #[arg(long, env = "SEED_WATCH_URL", default_value = "http://result/")]
    pub url: String,
    /// Wait for exactly this tally, as `A,B`.
    #[arg(long, value_parser = parse_tally, value_name = "A,B")]
    pub expect: Option<Tally>,
    /// Seconds to wait, connecting included.
    #[arg(long, default_value_t = 30.0, value_parser = parse_seconds)]
    pub timeout: f64,
}

/// How a watch ended, other than with the expected tally.
#[derive(Debug)]
pub enum WatchError {
    /// The tally did not show in time; the last one seen, if any.
    NotSeen {
        limit: Duration,
        last: Option<Tally>,
    },
    /// The feed could not be reached, or it broke.
    Feed(anyhow::Error),
}

impl WatchError {
    /// The process exit code for this outcome.
    pub fn exit_code(&self) -> u8 {
        match self {
            WatchError::NotSeen { .. } => 1,
            WatchError::Feed(_) => 3,
        }
    }
}

/// Follows the feed until `args.expect` (or any tally) arrives, calling
/// `seen` with each tally; returns the tally that ended the watch.
pub async fn watch(args: &WatchArgs, mut seen: impl FnMut(Tally)) -> Result<Tally, WatchError> {
    let limit = Duration::from_secs_f64(args.timeout);
    let mut last = None;
    let followed = tokio::time::timeout(limit, async {
        let mut feed = Feed::connect(&args.url).await?;
        loop {
            let (a, b) = feed.next_tally(limit).await?;
            let tally = Tally { a, b };
            seen(tally);
            last = Some(tally);
            if args.expect.is_none_or(|expected| expected == tally) {
                return Ok::<_, anyhow::Error>(tally);
            }
        }
    })
    .await;
    match followed {
        Ok(Ok(tally)) => Ok(tally),
        Ok(Err(e)) => Err(WatchError::Feed(e)),
        Err(_) => Err(WatchError::NotSeen { limit, last }),
    }
}

impl std::fmt::Display for WatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WatchError::NotSeen { limit, last } => {
                write!(f, "the tally did not show within {limit:?}; last seen: ")?;
                match last {
                    Some(t) => write!(f, "a={} b={}", t.a, t.b),
                    None => write!(f, "nothing"),
                }
            }
            WatchError::Feed(e) => write!(f, "{e:#}"),
        }
    }
}

/// `A,B` as a tally.
fn parse_tally(text: &str) -> Result<Tally, String> {
    let (a, b) = text
        .split_once(',')
        .ok_or_else(|| format!("expected A,B (e.g. 2,1), got {text:?}"))?;
    let count = |n: &str| {
        n.trim()
            .parse::<u64>()
            .map_err(|_| format!("expected A,B with whole numbers, got {text:?}"))
    };
    Ok(Tally {
        a: count(a)?,
        b: count(b)?,
    })
}

/// A positive, finite number of seconds.
fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(s),
        _ => Err(format!(
            "expected a positive number of seconds, got {text:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_tallies_and_timeouts_are_parsed_or_refused() {
        assert_eq!(parse_tally("2,1"), Ok(Tally { a: 2, b: 1 }));
        assert_eq!(parse_tally(" 0 , 7 "), Ok(Tally { a: 0, b: 7 }));
        for bad in ["2", "a,b", "-1,2", "1,2,3", ""] {
            assert!(parse_tally(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_seconds("1.5"), Ok(1.5));
        for bad in ["0", "-1", "inf", "NaN", "soon"] {
            assert!(parse_seconds(bad).is_err(), "{bad:?} accepted");
        }
    }
}
