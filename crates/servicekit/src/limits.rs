//! Process limits a server needs raised.
//!
//! Every open connection is a file descriptor, and many systems start
//! processes with a soft limit of 1,024 while allowing far more. A result
//! service with thousands of open pages would refuse connections long
//! before it ran out of anything real, so services raise the soft limit to
//! the hard one at start.

/// Raises the open-files soft limit to the hard limit; returns the new
/// soft limit, or `None` if the system would not say or allow it.
pub fn raise_open_files_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}
