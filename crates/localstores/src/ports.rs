//! Free loopback ports for servers a test or a local stack starts, taken
//! from below the kernel's ephemeral range.
//!
//! A port the kernel hands out for `bind(0)` comes from the ephemeral range,
//! the same range every outgoing connection's local port comes from. Between
//! asking and the server binding it, a connection of any process on the
//! machine (Patroni to etcd, HAProxy's checks, a test's client) may take
//! it, and the server then fails with "Address already in use". Ports
//! below that range are only ever taken by a listener that asks for one,
//! so picking them at random among thousands, and checking each is free,
//! leaves only the (rare) case of two pickers choosing the same port in the
//! same instant.

use std::hash::{BuildHasher, RandomState};
use std::net::TcpListener;

/// The lowest port handed out: above the well-known ports of the services
/// a developer may run (Postgres 5432, Redis 6379, web servers 8000-9999).
const LOWEST: u16 = 20_000;

/// `n` distinct ports on 127.0.0.1 that were free when asked. All are held
/// at once while asking, so none is given twice.
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let highest = ephemeral_start().saturating_sub(1).max(LOWEST + 1000);
    let span = u32::from(highest - LOWEST) + 1;
    let mut seed = RandomState::new().hash_one(std::process::id());
    let mut held = Vec::with_capacity(n);
    for _ in 0..span {
        if held.len() == n {
            break;
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let port = LOWEST + ((seed >> 33) % u64::from(span)) as u16;
        // A port already held here fails to bind again, so none is given
        // twice.
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    anyhow::ensure!(
        held.len() == n,
        "found only {} of {n} free ports in {LOWEST}..={highest}",
        held.len()
    );
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// One free port on 127.0.0.1 (see [`free_ports`]).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(free_ports(1)?[0])
}

/// Where the kernel's ephemeral range starts (Linux's default when it
/// cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let ports = free_ports(50).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 50, "{ports:?}");
        for port in ports {
            assert!((LOWEST..ephemeral_start().max(LOWEST + 1001)).contains(&port));
            TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }
}
