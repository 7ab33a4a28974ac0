//! An entry over the ballot limit never leaves Redis whole. Anything that
//! can write to Redis can push a 20 MiB "ballot"; a worker that fetched it
//! whole peaked at 267 MB, and under a 128 MiB memory limit every worker
//! that took the entry over was killed in turn.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use contract::queue::QUEUE_KEY;
use support::{DEADLINE, Env, ballot};
use worker::queue::{heartbeat_key, processing_key};

/// 20 MiB: the report's entry.
const BIG: usize = 20 << 20;

/// `field` (in KiB) of `/proc/<pid>/status`, e.g. `VmSize` or `VmHWM`.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The real binary under an address-space cap (`RLIMIT_AS`, set once it
/// idles): 32 MiB more than it has mapped then, less than two copies of
/// one entry. The cap counts address space, not resident memory, so it is
/// taken from the idle process itself (jemalloc and the runtime's threads
/// reserve a few hundred MiB up front); an allocation beyond it fails and
/// the worker aborts, as an OOM kill would end it.
#[tokio::test]
async fn a_worker_capped_in_memory_survives_entries_of_20_mib_and_keeps_storing() {
    let env = Env::new().await;
    env.migrate().await;
    let mut child = env.command("capped", 1000).spawn().unwrap();
    let pid = child.id().unwrap();
    // Registered (its heartbeat is set) and idle: waiting on the queue.
    testkit::eventually("the worker to register", DEADLINE, || async {
        let set: bool = redis::cmd("EXISTS")
            .arg(heartbeat_key("capped"))
            .query_async(&mut env.redis().await)
            .await
            .unwrap();
        set.then_some(())
    })
    .await;
    env.push(&[ballot("warm", "a", None)]).await;
    env.wait_until_drained(&["capped"], 1).await;
    let idle_kib = proc_kib(pid, "VmSize");
    let cap = (idle_kib + 32 * 1024) * 1024;
    rlimit::prlimit(pid as i32, rlimit::Resource::AS, Some((cap, cap)), None).unwrap();

    // Two in one push: the first wakes the worker's blocking wait, the
    // second is taken by the claim behind it.
    let big = vec![b'x'; BIG];
    let _: () = redis::cmd("RPUSH")
        .arg(QUEUE_KEY)
        .arg(&big)
        .arg(&big)
        .arg(ballot("after", "b", None))
        .query_async(&mut env.redis().await)
        .await
        .unwrap();
    drop(big);
    let env = &env;
    testkit::eventually("the ballot after the big entries", DEADLINE, || {
        let exited = child.try_wait().unwrap();
        async move {
            if let Some(status) = exited {
                panic!("the worker died under its memory cap: {status}");
            }
            let stored = env.rows().await.get("after").map(String::as_str) == Some("b");
            let left = env.len(QUEUE_KEY).await + env.len(&processing_key("capped")).await;
            (stored && left == 0).then_some(())
        }
    })
    .await;
    eprintln!(
        "idle VmSize {idle_kib} KiB, capped at {} KiB; peak RSS {} KiB",
        cap / 1024,
        proc_kib(pid, "VmHWM")
    );
    let dead = env.dead_letters().await;
    assert_eq!(dead.len(), 2, "both big entries are dead letters");
    for letter in &dead {
        assert!(
            letter.reason.contains(&format!("{BIG} bytes")),
            "{}",
            letter.reason
        );
    }
    assert!(child.try_wait().unwrap().is_none(), "the worker still runs");
}

/// Both claims hand over a stand-in of at most the limit: for an entry
/// still in the queue, and for one already in the processing list (where
/// the blocking wait moves it). The stand-in takes the entry's place, so
/// acknowledging the batch removes it like any entry.
#[tokio::test]
async fn a_claim_never_returns_an_entry_over_the_limit() {
    use contract::ballot::MAX_BALLOT_BYTES;
    use worker::queue::{Consumer, OVERSIZED_MARK};
    let env = Env::new().await;
    let queue = Consumer::new(
        &servicekit::connect::Redis::at(&env.redis_url).unwrap(),
        "w1",
    )
    .unwrap();
    let mut conn = env.redis().await;
    let big = |fill: u8| vec![fill; MAX_BALLOT_BYTES + 1];
    // One already in the processing list, as the blocking wait leaves it.
    let _: () = redis::cmd("RPUSH")
        .arg(processing_key("w1"))
        .arg(big(b'p'))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(QUEUE_KEY)
        .arg(big(b'q'))
        .arg(ballot("v", "a", None))
        .arg(big(b'r'))
        .query_async(&mut conn)
        .await
        .unwrap();
    let first = queue.claim(2).await.unwrap();
    let more = queue.claim_more(10).await.unwrap();
    let claimed: Vec<&Vec<u8>> = first.payloads.iter().chain(&more.payloads).collect();
    assert_eq!(claimed.len(), 4);
    let size = MAX_BALLOT_BYTES + 1;
    for (payload, fill) in [(claimed[0], b'p'), (claimed[1], b'q'), (claimed[3], b'r')] {
        let mark = format!("{OVERSIZED_MARK}{size}:");
        assert!(payload.len() <= MAX_BALLOT_BYTES, "{}", payload.len());
        assert!(payload.starts_with(mark.as_bytes()));
        assert!(payload[mark.len()..].iter().all(|&b| b == fill));
    }
    assert_eq!(claimed[2], &ballot("v", "a", None).into_bytes());
    // The processing list holds exactly what was handed over.
    let held: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(processing_key("w1"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(held.iter().collect::<Vec<_>>(), claimed);
    assert!(
        queue
            .acknowledge(&first.payloads, &[])
            .await
            .unwrap()
            .removed
    );
    assert!(
        queue
            .acknowledge(&more.payloads, &[])
            .await
            .unwrap()
            .removed
    );
    assert_eq!(env.len(&processing_key("w1")).await, 0);
}

/// The wait asks for no answer, so Redis's refusal of its `BLMOVE` (here
/// `OOM`, at its memory limit; after a failover, a replica's `READONLY`)
/// is not seen directly. It must still be an error, not a wait that
/// returns at once with nothing, over and over.
#[tokio::test]
async fn a_wait_redis_refuses_is_an_error_not_an_empty_wait() {
    use worker::waiter::Waiter;
    // A server of its own: its memory limit is server-wide.
    let server = testkit::RedisServer::start(Default::default())
        .await
        .unwrap();
    let redis = servicekit::connect::Redis::at(&server.url(0)).unwrap();
    let mut waiter = Waiter::new(&redis, "w1", std::time::Duration::from_secs(2));
    let mut conn = redis::Client::open(server.url(0))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let refused = waiter.wait_for_ballot().await;
    assert!(refused.is_err(), "{refused:?}");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    // The next wait blocks as usual and sees the ballot that arrives.
    let _: () = redis::cmd("RPUSH")
        .arg(QUEUE_KEY)
        .arg(ballot("v", "a", None))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(waiter.wait_for_ballot().await.unwrap());
}
