//! What a WebSocket upgrade must carry that axum does not check.
//!
//! axum's `WebSocketUpgrade` checks the method, `Connection`, `Upgrade`
//! and `Sec-WebSocket-Version`, and that a `Sec-WebSocket-Key` is there,
//! but it answers any key — `short`, `!!!!`, a thousand characters, or
//! the first of two — with 101. RFC 6455 §4.2.1 asks for exactly one key
//! that is the base64 form of 16 bytes (24 characters), and a 400
//! otherwise. A client that gets the handshake wrong is not a WebSocket
//! client we can trust to get the frames right, so the live feed refuses
//! it before any socket exists ([`crate::live::live_feed`]).

use axum::http::HeaderMap;
use axum::http::header::SEC_WEBSOCKET_KEY;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// How many bytes a `Sec-WebSocket-Key` encodes.
const KEY_BYTES: usize = 16;
/// Its length in base64, padding included.
const KEY_CHARS: usize = 24;

/// Why an upgrade's key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadKey {
    #[error("no Sec-WebSocket-Key")]
    Missing,
    #[error("more than one Sec-WebSocket-Key")]
    Repeated,
    #[error("a Sec-WebSocket-Key that is not the base64 form of 16 bytes")]
    Malformed,
}

/// Checks that `headers` hold exactly one `Sec-WebSocket-Key`, and that it
/// is 24 characters of base64 decoding to 16 bytes.
pub fn check_key(headers: &HeaderMap) -> Result<(), BadKey> {
    let mut keys = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    let key = keys.next().ok_or(BadKey::Missing)?;
    if keys.next().is_some() {
        return Err(BadKey::Repeated);
    }
    let key = key.as_bytes();
    // Checked first, so a long key costs no decoding.
    if key.len() != KEY_CHARS {
        return Err(BadKey::Malformed);
    }
    let mut decoded = [0u8; KEY_BYTES + 2];
    match STANDARD.decode_slice(key, &mut decoded) {
        Ok(KEY_BYTES) => Ok(()),
        _ => Err(BadKey::Malformed),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn with_keys(keys: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for key in keys {
            headers.append(SEC_WEBSOCKET_KEY, key.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_one_key_of_16_bytes_in_base64_passes() {
        // RFC 6455's own example, and 16 random bytes.
        for good in ["dGhlIHNhbXBsZSBub25jZQ==", "AQIDBAUGBwgJCgsMDQ4PEA=="] {
            assert_eq!(check_key(&with_keys(&[good])), Ok(()), "{good}");
        }
        let thousand = "A".repeat(1000);
        for (keys, why) in [
            (vec![], BadKey::Missing),
            (vec!["short"], BadKey::Malformed),
            (vec!["!!!!"], BadKey::Malformed),
            (vec![thousand.as_str()], BadKey::Malformed),
            // 24 characters, not base64.
            (vec!["dGhlIHNhbXBsZSBub25j!*=="], BadKey::Malformed),
            // 24 characters of base64 holding 17 bytes.
            (vec!["dGhlIHNhbXBsZSBub25jZXM="], BadKey::Malformed),
            // 16 bytes, but with the unused bits set: not canonical.
            (vec!["dGhlIHNhbXBsZSBub25jZR=="], BadKey::Malformed),
            // 16 bytes without the padding.
            (vec!["dGhlIHNhbXBsZSBub25jZQ"], BadKey::Malformed),
            (
                vec!["dGhlIHNhbXBsZSBub25jZQ==", "AQIDBAUGBwgJCgsMDQ4PEA=="],
                BadKey::Repeated,
            ),
        ] {
            assert_eq!(check_key(&with_keys(&keys)), Err(why), "{keys:?}");
        }
    }
}
