//! What a failed Redis command says, read in one place for every caller:
//! whether the command may have run ([`sent`]), and whether the node that
//! got it may no longer be the primary ([`suspicion`]).
//!
//! | error | did the command run? ([`Sent`]) | the node ([`Suspicion`]) |
//! | --- | --- | --- |
//! | no connection could be made (refused, no socket file) | [`Sent::Never`] | [`Suspicion::Reconnect`]: it died or restarted |
//! | an error reply: `BADSEQ`, `WRONGTYPE`, `NOSCRIPT`, `OOM` (at `maxmemory`: [`is_out_of_memory`]), … | [`Sent::Refused`]: Redis answered and did nothing | [`Suspicion::None`]: the command failed, the primary is fine |
//! | `READONLY`, `MASTERDOWN`, `LOADING` | [`Sent::Refused`] | [`Suspicion::Reconnect`]: a replica now (a demoted old primary), cut off from its primary, or still loading |
//! | `NOREPLICAS` | [`Sent::Refused`] | [`Suspicion::Verify`]: cut off from its replicas, or they are resyncing |
//! | a response timeout | [`Sent::Maybe`] | [`Suspicion::Verify`]: hung or gone without a word, or merely slow |
//! | the connection lost with the command in flight (reset, broken pipe, end of stream) | [`Sent::Maybe`] | [`Suspicion::Reconnect`] |
//!
//! "Refused" is safe to read as "nothing was written" for every command
//! the services send: a single command that errors writes nothing, and our
//! scripts check everything before their first write.

use redis::{ErrorKind, RedisError, ServerErrorKind};

/// Whether a failed command may have done its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// It never reached Redis: sending it again is safe.
    Never,
    /// Redis answered with an error: it did nothing.
    Refused,
    /// Unknown: it may have run (a timeout, a connection lost in flight).
    Maybe,
}

/// Whether the command that failed with `e` may have run; see the module
/// docs.
pub fn sent(e: &RedisError) -> Sent {
    if e.is_connection_refusal() {
        Sent::Never
    } else if matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension) {
        // Codes redis-rs does not know (our scripts' `BADSEQ`, `NOREPLICAS`)
        // are `Extension`s.
        Sent::Refused
    } else {
        Sent::Maybe
    }
}

/// What a failed command's error says about the node it was sent to; see
/// the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suspicion {
    /// The command failed; the node is fine.
    None,
    /// The node may no longer be the primary: ask, and switch if another is.
    Verify,
    /// The node is gone or no longer the primary: find it again.
    Reconnect,
}

/// How a failed command's error reads for the node; see the module docs.
pub fn suspicion(e: &RedisError) -> Suspicion {
    if e.is_timeout() {
        Suspicion::Verify
    } else if e.is_io_error() || e.is_connection_dropped() || is_demoted(e) {
        Suspicion::Reconnect
    } else if lacks_replicas(e) {
        Suspicion::Verify
    } else {
        Suspicion::None
    }
}

/// Whether `e` says the node that ran the command does not take writes now
/// — a replica, a node still loading, a primary without enough replicas —
/// so nothing was written and the same command may succeed on the primary
/// a moment later.
pub fn is_not_writable_primary(e: &RedisError) -> bool {
    is_demoted(e) || lacks_replicas(e)
}

/// A replica (a demoted old primary), one cut off from its primary, or a
/// node still loading its data.
fn is_demoted(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown | ServerErrorKind::BusyLoading
        )
    )
}

/// Whether `e` is Redis refusing a write because it is at `maxmemory`
/// with `maxmemory-policy noeviction`: it is up, and wrote nothing.
pub fn is_out_of_memory(e: &RedisError) -> bool {
    e.code() == Some("OOM")
}

/// A primary that cannot see enough replicas to take writes
/// (`min-replicas-to-write`).
fn lacks_replicas(e: &RedisError) -> bool {
    e.code() == Some("NOREPLICAS")
}

/// An error for a command that was never sent (no primary found, or none
/// reachable): a refused connection, as [`sent`] reads it.
pub fn never_sent(why: String) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        why,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str) -> RedisError {
        redis::parse_redis_value(format!("-{code}\r\n").as_bytes())
            .unwrap()
            .extract_error()
            .unwrap_err()
    }

    fn io(kind: std::io::ErrorKind) -> RedisError {
        RedisError::from(std::io::Error::from(kind))
    }

    #[test]
    fn errors_that_say_the_primary_moved_are_told_apart_from_failed_commands() {
        use std::io::ErrorKind as Io;
        assert_eq!(suspicion(&io(Io::ConnectionRefused)), Suspicion::Reconnect);
        assert_eq!(suspicion(&io(Io::BrokenPipe)), Suspicion::Reconnect);
        assert_eq!(suspicion(&io(Io::ConnectionReset)), Suspicion::Reconnect);
        assert_eq!(suspicion(&io(Io::UnexpectedEof)), Suspicion::Reconnect);
        assert_eq!(suspicion(&io(Io::TimedOut)), Suspicion::Verify);
        for code in [
            "READONLY You can't write",
            "MASTERDOWN Link down",
            "LOADING x",
        ] {
            assert_eq!(suspicion(&server(code)), Suspicion::Reconnect, "{code}");
            assert!(is_not_writable_primary(&server(code)), "{code}");
        }
        assert_eq!(
            suspicion(&server("NOREPLICAS Not enough")),
            Suspicion::Verify
        );
        assert!(is_not_writable_primary(&server("NOREPLICAS Not enough")));
        for code in [
            "BADSEQ votes:seq",
            "WRONGTYPE x",
            "NOSCRIPT x",
            "ERR x",
            "OOM x",
        ] {
            assert_eq!(suspicion(&server(code)), Suspicion::None, "{code}");
            assert!(!is_not_writable_primary(&server(code)), "{code}");
            assert_eq!(is_out_of_memory(&server(code)), code.starts_with("OOM"));
        }
        assert!(!is_not_writable_primary(&io(Io::BrokenPipe)));
        // What a script refused at `maxmemory` answers.
        let script = server(
            "OOM command not allowed when used memory > 'maxmemory'. script: 3c6e, on @user_script:1.",
        );
        assert!(is_out_of_memory(&script));
        assert_eq!(sent(&script), Sent::Refused);
    }

    #[test]
    fn whether_a_command_ran_is_read_from_its_error() {
        use std::io::ErrorKind as Io;
        assert_eq!(sent(&io(Io::ConnectionRefused)), Sent::Never);
        assert_eq!(sent(&never_sent("no primary".into())), Sent::Never);
        for code in [
            "BADSEQ x",
            "WRONGTYPE x",
            "READONLY x",
            "NOREPLICAS x",
            "ERR x",
        ] {
            assert_eq!(sent(&server(code)), Sent::Refused, "{code}");
        }
        assert_eq!(sent(&io(Io::TimedOut)), Sent::Maybe);
        assert_eq!(sent(&io(Io::BrokenPipe)), Sent::Maybe);
        assert_eq!(sent(&io(Io::UnexpectedEof)), Sent::Maybe);
    }
}
