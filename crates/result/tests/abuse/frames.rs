//! The result service's hostile WebSocket frames: each case completes a
//! good handshake, sends its frames, and checks whether the server ends
//! the socket or still serves it.

use std::net::SocketAddr;
use std::time::Duration;

use testkit::abuse::{Case, Entry, Layer, with_host};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::upgrade_with;

/// How the live feed must end up after a client's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// The server ends the socket (with or without a close frame).
    Closed,
    /// The server still serves it: a ping with a payload gets its pong.
    StillServed,
    /// `bytes` are sent over and over by a client that never reads: the
    /// server stops taking them (it stops reading) or drops the client
    /// before it has taken them all, and its heap stays within a bound
    /// meanwhile (see `flood.rs`).
    Cut,
}

/// A client that completes the handshake and then sends `bytes`.
#[derive(Debug, Clone)]
pub struct FrameCase {
    name: &'static str,
    layer: Layer,
    sends: &'static str,
    bytes: Vec<u8>,
    after: After,
}

impl FrameCase {
    /// Whether the client floods the server (see [`After::Cut`]).
    pub fn floods(&self) -> bool {
        self.after == After::Cut
    }
}

impl Case for FrameCase {
    fn entry(&self) -> Entry {
        Entry {
            name: self.name,
            layer: self.layer,
            sends: self.sends.to_owned(),
            expect: match self.after {
                After::Closed => "the socket is closed; its slot is freed".to_owned(),
                After::StillServed => "ignored: the socket still answers pings".to_owned(),
                After::Cut => "the server stops reading the client, then drops it; its \
                               heap grows by less than 1 MiB meanwhile"
                    .to_owned(),
            },
            waits_for: None,
        }
    }
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One client frame: FIN and RSV bits, opcode, masked payload (clients
/// must mask), with the length in the shortest form unless `length` says
/// otherwise.
fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame_with(fin, rsv, opcode, payload, true, None)
}

fn frame_with(
    fin: bool,
    rsv: u8,
    opcode: u8,
    payload: &[u8],
    masked: bool,
    length: Option<u64>,
) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match length.unwrap_or(payload.len() as u64) {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xa;

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

pub fn frame_cases() -> Vec<FrameCase> {
    use After::*;
    use Layer::WsFrames;
    let c = |name, sends, bytes: Vec<u8>, after| FrameCase {
        name,
        layer: WsFrames,
        sends,
        bytes,
        after,
    };
    let pings: Vec<u8> = (0..1000).flat_map(|_| frame(true, 0, PING, b"p")).collect();
    let big_pings: Vec<u8> = (0..512)
        .flat_map(|_| frame(true, 0, PING, &[b'p'; 125]))
        .collect();
    let empties: Vec<u8> = (0..1000)
        .flat_map(|_| frame(true, 0, BINARY, b""))
        .collect();
    vec![
        c(
            "binary_message",
            "a binary message",
            frame(true, 0, BINARY, b"\x00\x01"),
            StillServed,
        ),
        c(
            "unsolicited_pong",
            "a pong nobody asked for",
            frame(true, 0, PONG, b"x"),
            StillServed,
        ),
        c(
            "a_thousand_pings",
            "1,000 pings in one write",
            pings,
            StillServed,
        ),
        c(
            "pings_flooded_by_a_client_that_never_reads",
            "125-byte pings without end, never reading a pong, a 4 KiB receive buffer",
            big_pings,
            Cut,
        ),
        c(
            "a_thousand_empty_messages",
            "1,000 empty binary messages",
            empties,
            StillServed,
        ),
        c(
            "text_of_4_kib",
            "a 4,096-byte text message (the limit)",
            frame(true, 0, TEXT, &[b'x'; 4096]),
            StillServed,
        ),
        c(
            "unmasked_frame",
            "a text frame without a mask",
            frame_with(true, 0, TEXT, b"hi", false, None),
            Closed,
        ),
        c(
            "text_over_4_kib",
            "a 4,097-byte text frame",
            frame(true, 0, TEXT, &[b'x'; 4097]),
            Closed,
        ),
        c(
            "fragments_adding_up_past_4_kib",
            "a message in two 3,000-byte fragments",
            [
                frame(false, 0, TEXT, &[b'x'; 3000]),
                frame(true, 0, CONTINUATION, &[b'x'; 3000]),
            ]
            .concat(),
            Closed,
        ),
        c(
            "length_of_2_to_the_63",
            "a frame header announcing 2^63 − 1 bytes",
            frame_with(true, 0, BINARY, b"", true, Some(i64::MAX as u64)),
            Closed,
        ),
        c(
            "length_in_a_needlessly_long_form",
            "a 2-byte payload with a 64-bit length field (tolerated)",
            long_form_frame(),
            StillServed,
        ),
        c(
            "text_of_invalid_utf8",
            "a text message `\\xff\\xfe`",
            frame(true, 0, TEXT, b"\xff\xfe"),
            Closed,
        ),
        c(
            "continuation_without_a_start",
            "a continuation frame first",
            frame(true, 0, CONTINUATION, b"x"),
            Closed,
        ),
        c(
            "new_message_inside_a_fragmented_one",
            "a text fragment, then a new text frame",
            [frame(false, 0, TEXT, b"a"), frame(true, 0, TEXT, b"b")].concat(),
            Closed,
        ),
        c(
            "reserved_bit_set",
            "a text frame with RSV1 set (no extension agreed)",
            frame(true, 0b100, TEXT, b"x"),
            Closed,
        ),
        c(
            "reserved_data_opcode",
            "opcode 0x3",
            frame(true, 0, 0x3, b"x"),
            Closed,
        ),
        c(
            "reserved_control_opcode",
            "opcode 0xB",
            frame(true, 0, 0xb, b"x"),
            Closed,
        ),
        c(
            "ping_of_126_bytes",
            "a ping with a 126-byte payload (controls stop at 125)",
            frame(true, 0, PING, &[b'p'; 126]),
            Closed,
        ),
        c(
            "fragmented_ping",
            "a ping without FIN",
            frame(false, 0, PING, b"p"),
            Closed,
        ),
        c(
            "close_with_code_999",
            "a close frame with code 999",
            frame(true, 0, CLOSE, &close_payload(999, b"")),
            Closed,
        ),
        c(
            "close_with_a_one_byte_payload",
            "a close frame of one byte",
            frame(true, 0, CLOSE, b"\x03"),
            Closed,
        ),
        c(
            "close_with_an_invalid_utf8_reason",
            "a close frame whose reason is `\\xff`",
            frame(true, 0, CLOSE, &close_payload(1000, b"\xff")),
            Closed,
        ),
        c(
            "frames_after_the_close",
            "a close frame, then text frames",
            [
                frame(true, 0, CLOSE, &close_payload(1000, b"")),
                frame(true, 0, TEXT, b"late"),
                frame(true, 0, TEXT, b"later"),
            ]
            .concat(),
            Closed,
        ),
        c(
            "http_request_instead_of_a_frame",
            "`GET / HTTP/1.1` on the open socket",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Closed,
        ),
        c(
            "half_a_frame_header_then_silence",
            "one byte of a frame header, then nothing (no pongs)",
            vec![0x81],
            Closed,
        ),
    ]
}

/// A 2-byte binary frame whose length takes the 64-bit form (127, then
/// 2), where the 7-bit form was required.
fn long_form_frame() -> Vec<u8> {
    let mut rest = vec![0x80 | BINARY, 0x80 | 127];
    rest.extend_from_slice(&2u64.to_be_bytes());
    rest.extend_from_slice(&MASK);
    rest.extend(b"hi".iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    rest
}

/// One server frame: opcode and payload (servers never mask).
async fn read_frame(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
) -> std::io::Result<(u8, Vec<u8>)> {
    async fn need(stream: &mut TcpStream, pending: &mut Vec<u8>, n: usize) -> std::io::Result<()> {
        while pending.len() < n {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                got => pending.extend_from_slice(&chunk[..got]),
            }
        }
        Ok(())
    }
    need(stream, pending, 2).await?;
    let opcode = pending[0] & 0x0f;
    let (len, header) = match pending[1] & 0x7f {
        126 => {
            need(stream, pending, 4).await?;
            (u16::from_be_bytes([pending[2], pending[3]]) as usize, 4)
        }
        127 => {
            need(stream, pending, 10).await?;
            let mut n = [0u8; 8];
            n.copy_from_slice(&pending[2..10]);
            (u64::from_be_bytes(n) as usize, 10)
        }
        n => (n as usize, 2),
    };
    need(stream, pending, header + len).await?;
    let payload = pending[header..header + len].to_vec();
    pending.drain(..header + len);
    Ok((opcode, payload))
}

/// Plays a frame case: the handshake, the frames, then the check.
pub async fn play_frames(addr: SocketAddr, case: FrameCase) -> Result<(), String> {
    if case.after == After::Cut {
        return super::flood::play_flood(addr, &case.bytes).await;
    }
    let mut conn = testkit::raw::RawConn::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    conn.send(&with_host(&upgrade_with(&[]), addr))
        .await
        .map_err(|e| e.to_string())?;
    let answer = conn
        .response(Duration::from_secs(5))
        .await
        .map_err(|e| format!("no answer to the handshake: {e}"))?;
    if answer.status != 101 {
        return Err(format!("the handshake got {answer:?}"));
    }
    let (mut stream, mut pending) = conn.into_parts();
    stream
        .write_all(&case.bytes)
        .await
        .map_err(|e| format!("sending the frames: {e}"))?;
    // What the server does next, within a deadline far longer than two
    // ping intervals.
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        if case.after == After::StillServed {
            let probe = frame(true, 0, PING, b"still there?");
            stream
                .write_all(&probe)
                .await
                .map_err(|e| format!("probe: {e}"))?;
        }
        loop {
            match read_frame(&mut stream, &mut pending).await {
                Err(_) => return Ok(After::Closed),
                Ok((CLOSE, _)) => return Ok(After::Closed),
                Ok((PONG, payload)) if payload == b"still there?" => return Ok(After::StillServed),
                Ok((PING, payload)) => {
                    // Answer the server's pings, as a live browser would.
                    let _ = stream.write_all(&frame(true, 0, PONG, &payload)).await;
                }
                Ok(_) => {} // tallies, pongs to our own pings
            }
        }
    })
    .await;
    match outcome {
        Ok(Ok(seen)) if seen == case.after => Ok(()),
        Ok(Ok(seen)) => Err(format!("expected {:?}, got {seen:?}", case.after)),
        Ok(Err(why)) => Err(why),
        Err(_) => Err(format!("expected {:?}, got neither within 5 s", case.after)),
    }
}
