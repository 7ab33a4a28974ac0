//! Dead letters: what the worker keeps of a queue entry it cannot store.
//!
//! Anything any client of Redis pushes onto `votes` that is not a ballot
//! becomes a [`DeadLetter`] in the list
//! [`DEAD_LETTER_KEY`](crate::queue::DEAD_LETTER_KEY), with the reason, so
//! an operator can see what arrived and why it was refused. What arrives
//! is chosen by whoever pushes, so both the letters and their list are
//! bounded, whatever the bytes:
//!
//! - **Each letter** is at most [`DeadLetter::MAX_BYTES`] of JSON. Its
//!   fields are cut to byte budgets measured *after* JSON escaping
//!   ([`json_prefix`]): escaping grows a control byte to six bytes and a
//!   byte that is not UTF-8 to three (U+FFFD), so cutting the raw entry
//!   at 4 KiB let 4,000 bytes of `\x01` become a 24 KiB letter.
//! - **The list** keeps the newest `MAX_DEAD_LETTERS` (default
//!   [`DEFAULT_KEPT`]): the acknowledgement that files letters trims the
//!   oldest in the same script, and the worker counts them in
//!   `dead_letters_dropped_total`. At the default that is at most about
//!   49 MiB of letters in Redis.

use contract::ballot::MAX_BALLOT_BYTES;

/// How many dead letters `votes:dead` keeps unless `MAX_DEAD_LETTERS`
/// says otherwise.
pub const DEFAULT_KEPT: u32 = 10_000;

/// One entry of the dead-letter list: a payload the worker could not
/// store as a ballot, kept with the reason so an operator can inspect or
/// replay it. Stored as compact JSON, e.g.
/// `{"reason":"ballot is not valid JSON of the expected shape: unknown variant `c`, …","payload":"{…}","worker":"host-7","at_ms":1764201600000}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// Why the payload is not a ballot ([`contract::BallotError`]'s text),
    /// cut to [`DeadLetter::REASON_BUDGET`].
    pub reason: String,
    /// The start of the payload as queued, whole if it fits
    /// [`DeadLetter::PAYLOAD_BUDGET`]; for a payload over the ballot limit,
    /// the reason gives its size. Bytes that are not UTF-8 are replaced by
    /// U+FFFD, so a binary payload is kept only approximately.
    pub payload: String,
    /// The id of the worker that dead-lettered it.
    pub worker: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl DeadLetter {
    /// Most bytes the payload takes in the letter's JSON, escapes
    /// included: any payload within the ballot limit that needs no
    /// escaping is kept whole.
    pub const PAYLOAD_BUDGET: usize = MAX_BALLOT_BYTES;
    /// Most bytes the reason takes in the letter's JSON (parser messages
    /// quote the input).
    pub const REASON_BUDGET: usize = 512;
    /// Most bytes the worker id takes in the letter's JSON.
    pub const WORKER_BUDGET: usize = 256;
    /// The most bytes one letter takes as JSON, whatever was queued.
    pub const MAX_BYTES: usize = 5 * 1024;

    /// The letter for `payload`, refused for `reason` by `worker` at
    /// `at_ms`; each field cut to its budget.
    pub fn new(reason: &str, payload: &[u8], worker: &str, at_ms: u64) -> Self {
        Self::of_excerpt(
            reason,
            &payload[..payload.len().min(Self::PAYLOAD_BUDGET)],
            payload.len() > Self::PAYLOAD_BUDGET,
            worker,
            at_ms,
        )
    }

    /// The letter for a payload of which only `head` is at hand (`cut`:
    /// the payload went on after it).
    pub fn of_excerpt(reason: &str, head: &[u8], cut: bool, worker: &str, at_ms: u64) -> Self {
        let payload = lossy(&head[..head.len().min(Self::PAYLOAD_BUDGET)], cut);
        DeadLetter {
            reason: json_prefix(reason, Self::REASON_BUDGET).to_owned(),
            payload: json_prefix(&payload, Self::PAYLOAD_BUDGET).to_owned(),
            worker: json_prefix(worker, Self::WORKER_BUDGET).to_owned(),
            at_ms,
        }
    }

    pub fn to_json(&self) -> String {
        // Serializing strings and an integer cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The letter's JSON without its field values: `{"reason":"","payload":"",
/// "worker":"","at_ms":}` and the longest `u64`.
const FRAME_BYTES: usize = 47 + 20;
const _: () = assert!(
    FRAME_BYTES
        + DeadLetter::REASON_BUDGET
        + DeadLetter::PAYLOAD_BUDGET
        + DeadLetter::WORKER_BUDGET
        <= DeadLetter::MAX_BYTES
);

/// `bytes` as text, each invalid sequence replaced by U+FFFD, except an
/// incomplete one at the end of a `cut` excerpt (the rest of that
/// character was cut off, not broken).
fn lossy(bytes: &[u8], cut: bool) -> String {
    let mut text = String::with_capacity(bytes.len());
    let mut chunks = bytes.utf8_chunks().peekable();
    while let Some(chunk) = chunks.next() {
        text.push_str(chunk.valid());
        let broken = !chunk.invalid().is_empty();
        let cut_off = cut && chunks.peek().is_none();
        if broken && !cut_off {
            text.push(char::REPLACEMENT_CHARACTER);
        }
    }
    text
}

/// The longest start of `text` whose JSON string form (without the
/// quotes) takes at most `budget` bytes.
pub fn json_prefix(text: &str, budget: usize) -> &str {
    let mut used = 0;
    for (at, c) in text.char_indices() {
        used += json_len(c);
        if used > budget {
            return &text[..at];
        }
    }
    text
}

/// Bytes `c` takes inside a JSON string as `serde_json` writes it: the
/// short escapes, `\u00XX` for other control characters, else its UTF-8.
fn json_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if c < ' ' => 6,
        c => c.len_utf8(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_escape_lengths_are_those_serde_json_writes() {
        let samples = (0..0x800u32)
            .chain([0xfffd, 0x2028, 0x1f600])
            .filter_map(char::from_u32);
        for c in samples {
            let written = serde_json::to_string(&c.to_string()).unwrap().len() - 2;
            assert_eq!(json_len(c), written, "{c:?}");
        }
    }

    #[test]
    fn a_letter_stays_within_its_bound_whatever_the_bytes() {
        let long_id = "w".repeat(1000);
        for payload in [
            vec![0x01; 4000],
            vec![0xff; 1 << 20],
            vec![b'"'; 10_000],
            "é".repeat(5000).into_bytes(),
        ] {
            let reason = String::from_utf8_lossy(&payload).into_owned();
            let letter = DeadLetter::new(&reason, &payload, &long_id, u64::MAX);
            let json = letter.to_json();
            assert!(json.len() <= DeadLetter::MAX_BYTES, "{}", json.len());
            // Nothing is cut that fits: the budget is nearly used up.
            let escaped = serde_json::to_string(&letter.payload).unwrap().len() - 2;
            assert!(escaped > DeadLetter::PAYLOAD_BUDGET - 6, "{escaped}");
            assert!(String::from_utf8_lossy(&payload).starts_with(&letter.payload));
        }
    }

    #[test]
    fn a_small_payload_is_kept_whole_and_a_cut_character_is_dropped() {
        let letter = DeadLetter::new("why", b"{\"vote\":\"c\"}\xff", "w", 1);
        assert_eq!(letter.payload, "{\"vote\":\"c\"}\u{fffd}");
        // 4,095 bytes of `x`, then the first byte of `é`, cut off.
        let head = [vec![b'x'; 4095], vec![0xc3]].concat();
        let letter = DeadLetter::of_excerpt("why", &head, true, "w", 1);
        assert_eq!(letter.payload, "x".repeat(4095));
    }
}
