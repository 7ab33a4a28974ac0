//! `cargo xtask up`: the native stack comes up with everything listening
//! on loopback, takes a vote on the vote page, shows it on the result page,
//! and stops cleanly on Ctrl-C — delivered, as a terminal does, to xtask's
//! whole process group — without a warning, leaving no process behind.
//!
//! It runs the service binaries next to this test's own build (the
//! workspace's `target/debug`), which `cargo test --workspace` builds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

fn free_port() -> u16 {
    localstores::free_port().unwrap()
}

/// Every listening TCP socket in this network namespace.
fn all_listening() -> Vec<SocketAddr> {
    let mut addrs = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 3 && cols[3] == "0A" {
                addrs.push(parse_proc_addr(cols[1]));
            }
        }
    }
    addrs
}

/// The listening TCP sockets of `pid`, from `/proc/net/tcp{,6}` (none when
/// its fds cannot be read: another user's, without CAP_SYS_PTRACE).
fn listening(pid: u32) -> Vec<SocketAddr> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: Vec<String> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut addrs = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // cols: sl, local, remote, state (0A = LISTEN), …, inode (9)
            if cols.len() > 9 && cols[3] == "0A" && inodes.iter().any(|i| i == cols[9]) {
                addrs.push(parse_proc_addr(cols[1]));
            }
        }
    }
    addrs
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6), as the
/// kernel prints them: each 32-bit word in host (little-endian) order.
fn parse_proc_addr(text: &str) -> SocketAddr {
    let (ip, port) = text.split_once(':').unwrap();
    let port = u16::from_str_radix(port, 16).unwrap();
    let words: Vec<[u8; 4]> = (0..ip.len() / 8)
        .map(|i| {
            u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16)
                .unwrap()
                .to_le_bytes()
        })
        .collect();
    let ip = match words.as_slice() {
        [w] => IpAddr::V4(Ipv4Addr::from(*w)),
        _ => IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(words.concat()).unwrap(),
        )),
    };
    SocketAddr::new(ip, port)
}

/// Whether `pid` exists and is not a zombie waiting to be reaped.
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(|state| state != "Z")
        })
        .unwrap_or(false)
}

fn is_loopback(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[test]
fn proc_addresses_are_decoded() {
    assert_eq!(
        parse_proc_addr("0100007F:1F90"),
        "127.0.0.1:8080".parse().unwrap()
    );
    assert_eq!(
        parse_proc_addr("00000000000000000000000001000000:0050"),
        "[::1]:80".parse().unwrap()
    );
    assert!(!is_loopback(&parse_proc_addr("00000000:1F90")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_stack_listens_on_loopback_takes_a_vote_and_stops_cleanly_on_ctrl_c() {
    let (vote_port, result_port) = (free_port(), free_port());
    // Its own process group, like a job in a terminal; it gets SIGTERM if
    // this test dies without stopping it.
    let mut xtask = tokio::process::Command::new("setpriv")
        .arg("--pdeathsig=TERM")
        .arg(env!("CARGO_BIN_EXE_xtask"))
        .args(["up", "--redis-port", "0", "--postgres-port", "0"])
        .args(["--vote-port", &vote_port.to_string()])
        .args(["--result-port", &result_port.to_string()])
        .arg("--bin-dir")
        .arg(support::debug_bin_dir())
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Wait for the banner; keep every line for the end.
    let (output, mut lines_rx) = support::lines_until(&mut xtask, "The voting app is up").await;
    // Logs are streamed with a prefix per service.
    assert!(
        output.iter().any(|l| l.starts_with("  vote | ")),
        "{output:#?}"
    );

    let vote_url = format!("http://127.0.0.1:{vote_port}/");
    let result_url = format!("http://127.0.0.1:{result_port}/");
    let mut feed = seed::verify::Feed::connect(&result_url).await.unwrap();
    let (a0, _) = feed.next_tally(Duration::from_secs(5)).await.unwrap();

    let res = reqwest::Client::new()
        .post(&vote_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("vote=a")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    feed.wait_until(Duration::from_secs(10), |a, _| a == a0 + 1)
        .await
        .expect("the vote shows on the result page");
    let page = reqwest::get(&result_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("1 vote"), "{page}");

    // Everything it started listens on loopback, and says where.
    let pid = xtask.id().unwrap();
    let children = support::descendants(pid);
    let sockets: Vec<(u32, SocketAddr)> = children
        .iter()
        .flat_map(|&child| listening(child).into_iter().map(move |a| (child, a)))
        .collect();
    let mut problems = Vec::new();
    let exposed: Vec<String> = sockets
        .iter()
        .filter(|(_, addr)| !is_loopback(addr))
        .map(|(child, addr)| {
            let name = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            format!("{} (pid {child}) listens on {addr}", name.trim())
        })
        .collect();
    if !exposed.is_empty() {
        problems.push(format!("not on loopback: {exposed:?}"));
    }
    let banner = output
        .iter()
        .position(|l| l.contains("The voting app is up"))
        .unwrap();
    let mut summary = output[banner..].to_vec();
    while let Some(line) = lines_rx.recv().await {
        let done = line.contains("Press Ctrl-C");
        summary.push(line);
        if done {
            break;
        }
    }
    for name in [
        "vote",
        "result",
        "vote admin",
        "result admin",
        "worker admin",
        "redis",
        "postgres",
    ] {
        match summary.iter().find(|l| l.trim_start().starts_with(name)) {
            // Listening there, and on no other address with that port. Read
            // from the namespace's table rather than the process's fds:
            // Postgres runs as `postgres`, and a container's root (without
            // CAP_SYS_PTRACE) cannot read another user's /proc/<pid>/fd.
            Some(line) if line.contains("127.0.0.1:") => {
                let port: u16 = line
                    .split("127.0.0.1:")
                    .nth(1)
                    .map(|rest| {
                        rest.chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                    })
                    .and_then(|digits| digits.parse().ok())
                    .unwrap_or_else(|| panic!("no port in the summary's {name}: {line}"));
                let on_port: Vec<SocketAddr> = all_listening()
                    .into_iter()
                    .filter(|a| a.port() == port)
                    .collect();
                if on_port.is_empty() {
                    problems.push(format!("nothing listens on the summary's {name}: {line}"));
                }
                if on_port.iter().any(|a| !is_loopback(a)) {
                    problems.push(format!("{name} listens beyond loopback: {on_port:?}"));
                }
            }
            Some(line) => {
                problems.push(format!("the summary's {name} is not on 127.0.0.1: {line}"))
            }
            None => problems.push(format!("the summary lacks {name}")),
        }
    }
    for (_, addr) in &sockets {
        if !summary
            .iter()
            .any(|l| l.contains(&format!(":{}", addr.port())))
        {
            problems.push(format!("the summary does not list {addr}: {summary:#?}"));
        }
    }

    // Ctrl-C in a terminal: SIGINT to the whole foreground process group.
    let killed = tokio::process::Command::new("kill")
        .args(["-INT", "--", &format!("-{pid}")])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(60), xtask.wait())
        .await
        .expect("xtask stopped within 60 s")
        .unwrap();
    let mut rest = Vec::new();
    while let Some(line) = lines_rx.recv().await {
        rest.push(line);
    }
    let stopping = rest
        .iter()
        .position(|l| l.contains("xtask: stopping"))
        .unwrap_or_else(|| panic!("no 'xtask: stopping' line: {rest:#?}"));
    let noisy: Vec<&String> = rest[stopping..]
        .iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    if !noisy.is_empty() {
        problems.push(format!(
            "the clean stop logged warnings or errors: {noisy:#?}"
        ));
    }
    if !status.success() || !rest.iter().any(|l| l.contains("stopped cleanly")) {
        problems.push(format!("not a clean stop ({status}): {rest:#?}"));
    }
    // Nothing outlives it (polled: their exits are not ours to await).
    let started = std::time::Instant::now();
    let mut alive = children.clone();
    while !alive.is_empty() && started.elapsed() < Duration::from_secs(10) {
        alive.retain(|&child| is_running(child));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !alive.is_empty() {
        problems.push(format!(
            "processes left running after xtask stopped: {alive:?}"
        ));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
