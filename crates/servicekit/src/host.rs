//! Facts about the machine a service runs on, which are not settings.

/// The machine's name: the vote page shows it ("Processed by container
/// ID …") and the worker's default id starts with it. In a container this
/// is the container id.
pub fn name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
