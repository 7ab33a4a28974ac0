//! Starting a service binary with a bad setting: it must refuse to start,
//! exiting non-zero with a message that names the setting, rather than run
//! with a value that cannot work.

use std::time::Duration;

/// How long a refusal may take; a binary that accepted the setting runs on
/// and fails the check here.
const REFUSED_WITHIN: Duration = Duration::from_secs(60);

/// Starts `binary` with only `env` (and `PATH`) in its environment, listeners
/// on loopback port 0 so an accepted setting binds nothing real, and
/// asserts it exits non-zero at start with `name` in what it printed.
pub async fn assert_refused_at_start(binary: &str, env: &[(&str, &str)], name: &str) {
    let run = tokio::process::Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs([
            ("PORT", "0"),
            ("BIND_ADDRESS", "127.0.0.1"),
            ("ADMIN_PORT", "0"),
            ("ADMIN_BIND_ADDRESS", "127.0.0.1"),
        ])
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(REFUSED_WITHIN, run)
        .await
        .unwrap_or_else(|_| panic!("{env:?}: accepted; still running after {REFUSED_WITHIN:?}"))
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{env:?}: exited 0: {said}");
    assert!(
        said.contains(name),
        "{env:?}: the message does not name {name}: {said}"
    );
}
