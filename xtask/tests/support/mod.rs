//! What the xtask tests share: the repository's files, the binaries, the
//! native stack's processes and banner.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The directory holding the debug `vote`, `worker` and `result` binaries
/// built next to this test (`target/debug/deps/<test>-<hash>` →
/// `target/debug`); fails with what to build when one is missing.
// Not every test runs the binaries.
#[allow(dead_code)]
pub fn debug_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    for bin in ["vote", "worker", "result"] {
        assert!(
            dir.join(bin).is_file(),
            "{} is missing: run `cargo test --workspace` (or `cargo build -p vote -p worker -p result`) first",
            dir.join(bin).display()
        );
    }
    dir
}

/// Every process whose parent chain leads to `root` (excluded).
// Only the tests of `up` look for their processes.
#[allow(dead_code)]
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parent.insert(pid, ppid);
        }
    }
    let mut found = Vec::new();
    for (&pid, _) in parent.iter() {
        let mut up = pid;
        while let Some(&p) = parent.get(&up) {
            if p == root {
                found.push(pid);
                break;
            }
            up = p;
        }
    }
    found
}

/// Reads `child`'s stdout lines in the background until one contains
/// `marker`, within 90 s: the lines so far, and the rest as they come.
/// Panics with every line read if the child exits first.
// Only the tests of `up` read a stack's banner.
#[allow(dead_code)]
pub async fn lines_until(
    child: &mut tokio::process::Child,
    marker: &str,
) -> (Vec<String>, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stdout.next_line().await {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut output = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(90), async {
        while let Some(line) = lines_rx.recv().await {
            let done = line.contains(marker);
            output.push(line);
            if done {
                return;
            }
        }
        panic!(
            "xtask exited before the stack was up:\n{}",
            output.join("\n")
        );
    })
    .await
    .expect("the stack came up within 90 s");
    (output, lines_rx)
}

/// The repository's root.
// Not every test reads the repository's files.
#[allow(dead_code)]
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the repository")
        .to_owned()
}

/// The file at `path` in the repository.
#[allow(dead_code)]
pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}
