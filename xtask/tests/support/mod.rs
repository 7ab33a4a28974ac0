//! What the tests that run the services' binaries share.

use std::path::PathBuf;

/// The directory holding the debug `vote`, `worker` and `result` binaries
/// built next to this test (`target/debug/deps/<test>-<hash>` →
/// `target/debug`); fails with what to build when one is missing.
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
