//! Just enough of RFC 6455 for the crowd, on loopback: the upgrade
//! request, finding whole frames in a read buffer, a close frame's code,
//! and the pong a ping asks for.
//!
//! It does not check `Sec-WebSocket-Accept`, and expects unfragmented text
//! frames (what the result service sends): a bench needs the tally, not a
//! conforming client.

use std::net::SocketAddr;

/// A text frame's opcode.
pub(crate) const TEXT: u8 = 0x1;
/// A close frame's opcode.
pub(crate) const CLOSE: u8 = 0x8;
/// A ping frame's opcode.
pub(crate) const PING: u8 = 0x9;

/// The close code a server sends when it shuts down ("going away").
pub(crate) const GOING_AWAY: u16 = 1001;

/// The upgrade request for `GET /ws` at `addr`. Every client sends the
/// same key: the crowd does not check the answer's accept value.
pub(crate) fn upgrade_request(addr: SocketAddr) -> Vec<u8> {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// The status code of a close frame's payload, if it carries one.
pub(crate) fn close_code(payload: &[u8]) -> Option<u16> {
    payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

/// The pong answering a ping with `payload`, masked (as a client must)
/// with the all-zero key, so the payload goes out unchanged.
pub(crate) fn pong(payload: &[u8]) -> Vec<u8> {
    let mut pong = vec![0x8A, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    pong.extend_from_slice(payload);
    pong
}

/// Where a frame's payload sits in a buffer, and how long the frame is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) opcode: u8,
    pub(crate) payload: (usize, usize),
    pub(crate) len: usize,
}

impl Frame {
    /// The first complete frame at the start of `buf`, if there is one.
    pub(crate) fn parse(buf: &[u8]) -> Option<Frame> {
        let (&b0, &b1) = (buf.first()?, buf.get(1)?);
        let (len, mut start): (u64, usize) = match b1 & 0x7F {
            126 => (
                u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
                4,
            ),
            127 => {
                let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
                (u64::from_be_bytes(bytes), 10)
            }
            n => (u64::from(n), 2),
        };
        if b1 & 0x80 != 0 {
            start += 4; // a mask key: servers do not send one
        }
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        (buf.len() >= end).then_some(Frame {
            opcode: b0 & 0x0F,
            payload: (start, end),
            len: end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_parsed_only_when_complete() {
        let text = b"\x81\x0d{\"a\":1,\"b\":2}";
        assert_eq!(
            Frame::parse(text),
            Some(Frame {
                opcode: 1,
                payload: (2, 15),
                len: 15
            })
        );
        assert_eq!(Frame::parse(&text[..10]), None);
        assert_eq!(Frame::parse(&[]), None);
        let mut long = vec![0x81, 126, 0x01, 0x00];
        long.extend(std::iter::repeat_n(b'x', 256));
        assert_eq!(Frame::parse(&long).map(|f| f.payload), Some((4, 260)));
        assert_eq!(Frame::parse(&[0x81, 127, 0xff, 0xff]), None);
        assert_eq!(
            Frame::parse(&[0x81, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            None
        );
    }
}
