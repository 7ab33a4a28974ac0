//! The worker's hostile queue entries: what each is and what must become
//! of it (the runner is `abuse.rs`).

use std::time::{SystemTime, UNIX_EPOCH};

use testkit::abuse::{Case, Entry, Layer};

/// One hostile queue entry and what must become of it.
#[derive(Debug, Clone)]
pub struct PayloadCase {
    pub name: &'static str,
    pub sends: String,
    pub payload: Vec<u8>,
    pub fate: Fate,
}

#[derive(Debug, Clone, Copy)]
pub enum Fate {
    /// Dead-lettered with a reason holding this fragment; nothing stored.
    Dead(&'static str),
    /// A ballot after all (readers ignore fields they do not know, however
    /// odd): stored for this voter, no dead letter.
    Stored(&'static str),
}

impl Case for PayloadCase {
    fn entry(&self) -> Entry {
        Entry {
            name: self.name,
            layer: Layer::QueuePayloads,
            sends: self.sends.clone(),
            expect: match self.fate {
                Fate::Dead(reason) => format!("dead-lettered: \"…{reason}…\"; nothing stored"),
                Fate::Stored(_) => "stored as a ballot: the unknown field is skipped".to_owned(),
            },
            waits_for: None,
        }
    }
}

pub fn now_us() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_micros()).unwrap()
}

/// `{"voter_id":"<voter>","vote":"a","seq":<now>}` with `field` replaced or
/// added as raw JSON.
fn with(field: &'static str, raw: &str) -> Vec<u8> {
    let mut fields = vec![
        ("voter_id", "\"x1\"".to_owned()),
        ("vote", "\"a\"".to_owned()),
        ("seq", now_us().to_string()),
    ];
    match fields.iter_mut().find(|(name, _)| *name == field) {
        Some(slot) => slot.1 = raw.to_owned(),
        None => fields.push((field, raw.to_owned())),
    }
    let body: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("\"{name}\":{value}"))
        .collect();
    format!("{{{}}}", body.join(",")).into_bytes()
}

pub fn cases() -> Vec<PayloadCase> {
    let c = |name, sends: &str, payload: Vec<u8>, reason| PayloadCase {
        name,
        sends: sends.to_owned(),
        payload,
        fate: Fate::Dead(reason),
    };
    let stored = |name, sends: &str, payload: Vec<u8>, voter| PayloadCase {
        name,
        sends: sends.to_owned(),
        payload,
        fate: Fate::Stored(voter),
    };
    let json = "not valid JSON";
    let object = "a JSON object";
    let nested = format!(
        r#"{{"voter_id":"n1","vote":"a","x":{}1{}}}"#,
        "[".repeat(2000),
        "]".repeat(2000)
    );
    let utf16: Vec<u8> =
        r#"{"voter_id":"u1","vote":"a"}"#.encode_utf16().flat_map(u16::to_le_bytes).collect();
    vec![
        c("empty_entry", "an empty string", b"".to_vec(), json),
        c("whitespace_only", "three spaces", b"   ".to_vec(), json),
        c("plain_text", "`hello`", b"hello".to_vec(), json),
        c("a_nul_byte", "`\\0`", b"\0".to_vec(), json),
        c(
            "bytes_that_are_not_utf8",
            "`\\xff\\xfe\\xfd`",
            b"\xff\xfe\xfd".to_vec(),
            json,
        ),
        c(
            "ballot_after_a_utf8_bom",
            "a ballot behind a byte-order mark",
            [&b"\xef\xbb\xbf"[..], br#"{"voter_id":"b1","vote":"a"}"#].concat(),
            json,
        ),
        c("ballot_in_utf16", "a ballot encoded as UTF-16", utf16, json),
        c(
            "four_thousand_control_bytes",
            "4,000 bytes `\\x01` (each escaped to 6 bytes in JSON)",
            vec![0x01; 4000],
            json,
        ),
        c(
            "one_mib_of_ff_bytes",
            "1 MiB of `\\xff` (each 3 bytes once replaced by U+FFFD)",
            vec![0xff; 1 << 20],
            "over the 4096-byte limit",
        ),
        c(
            "object_cut_short",
            "`{\"voter_id\":\"t1\",\"vote\":\"a\"` (no `}`)",
            br#"{"voter_id":"t1","vote":"a""#.to_vec(),
            json,
        ),
        c(
            "ballot_with_trailing_text",
            "a ballot followed by ` x`",
            br#"{"voter_id":"t2","vote":"a"} x"#.to_vec(),
            "trailing characters",
        ),
        c(
            "two_ballots_in_one_entry",
            "two ballot objects back to back",
            br#"{"voter_id":"t3","vote":"a"}{"voter_id":"t3","vote":"b"}"#.to_vec(),
            "trailing characters",
        ),
        c(
            "array_holding_a_ballot",
            "`[{\"voter_id\":…,\"vote\":\"a\"}]`",
            br#"[{"voter_id":"t4","vote":"a"}]"#.to_vec(),
            object,
        ),
        c("empty_array", "`[]`", b"[]".to_vec(), object),
        c("a_float", "`1.5`", b"1.5".to_vec(), object),
        c(
            "ballot_encoded_twice",
            "a ballot as a JSON string (double-encoded)",
            br#""{\"voter_id\":\"t5\",\"vote\":\"a\"}""#.to_vec(),
            object,
        ),
        c(
            "empty_object",
            "`{}`",
            b"{}".to_vec(),
            "missing field `voter_id`",
        ),
        c(
            "voter_id_a_number",
            "`\"voter_id\":123`",
            with("voter_id", "123"),
            "invalid type: integer",
        ),
        c(
            "voter_id_null",
            "`\"voter_id\":null`",
            with("voter_id", "null"),
            "invalid type: null",
        ),
        c(
            "voter_id_an_array",
            "`\"voter_id\":[\"x\"]`",
            with("voter_id", r#"["x"]"#),
            "invalid type: sequence",
        ),
        c(
            "voter_id_an_object",
            "`\"voter_id\":{\"id\":\"x\"}`",
            with("voter_id", r#"{"id":"x"}"#),
            "invalid type: map",
        ),
        c(
            "voter_id_of_256_bytes",
            "a 256-character `voter_id`",
            with("voter_id", &format!("\"{}\"", "v".repeat(256))),
            "longer than 255 bytes",
        ),
        c(
            "voter_id_with_an_escaped_newline",
            "`\"voter_id\":\"a\\nb\"`",
            with("voter_id", r#""a\nb""#),
            "visible ASCII",
        ),
        c(
            "voter_id_with_an_escaped_nul",
            "`\"voter_id\":\"a\\u0000b\"`",
            with("voter_id", r#""a\u0000b""#),
            "visible ASCII",
        ),
        c(
            "voter_id_with_an_escaped_accent",
            "`\"voter_id\":\"caf\\u00e9\"`",
            with("voter_id", r#""caf\u00e9""#),
            "visible ASCII",
        ),
        c(
            "voter_id_with_raw_utf8",
            "`\"voter_id\":\"café\"`",
            with("voter_id", "\"café\""),
            "visible ASCII",
        ),
        c(
            "voter_id_with_a_lone_surrogate",
            "`\"voter_id\":\"\\ud800\"`",
            with("voter_id", r#""\ud800""#),
            "escape",
        ),
        c(
            "voter_id_given_twice",
            "two `voter_id` fields",
            br#"{"voter_id":"d1","voter_id":"d2","vote":"a"}"#.to_vec(),
            "duplicate field",
        ),
        c(
            "vote_in_upper_case",
            "`\"vote\":\"A\"`",
            with("vote", r#""A""#),
            "unknown variant",
        ),
        c(
            "vote_empty",
            "`\"vote\":\"\"`",
            with("vote", r#""""#),
            "unknown variant",
        ),
        c(
            "vote_with_a_trailing_space",
            "`\"vote\":\"a \"`",
            with("vote", r#""a ""#),
            "unknown variant",
        ),
        c(
            "vote_a_number",
            "`\"vote\":1`",
            with("vote", "1"),
            "invalid type: integer",
        ),
        c(
            "vote_null",
            "`\"vote\":null`",
            with("vote", "null"),
            "invalid type: null",
        ),
        c(
            "vote_true",
            "`\"vote\":true`",
            with("vote", "true"),
            "invalid type: boolean",
        ),
        c(
            "vote_an_array",
            "`\"vote\":[\"a\"]`",
            with("vote", r#"["a"]"#),
            "invalid type: sequence",
        ),
        c(
            "seq_true",
            "`\"seq\":true`",
            with("seq", "true"),
            "expected i64",
        ),
        c(
            "seq_in_exponent_form",
            "`\"seq\":1e15`",
            with("seq", "1e15"),
            "expected i64",
        ),
        c(
            "seq_below_i64",
            "`\"seq\":-9223372036854775809`",
            with("seq", "-9223372036854775809"),
            "expected i64",
        ),
        c(
            "seq_an_object",
            "`\"seq\":{\"n\":1}`",
            with("seq", r#"{"n":1}"#),
            "expected i64",
        ),
        c(
            "seq_one_past_the_window",
            "`seq` the window (five minutes) and a minute ahead of the worker's clock",
            with(
                "seq",
                &(now_us() + contract::SeqWindow::ahead_us() + 60_000_000).to_string(),
            ),
            "outside the accepted window",
        ),
        stored(
            "extra_field_nested_2000_deep",
            "a ballot with an unknown field of 2,000 nested arrays",
            nested.into_bytes(),
            "n1",
        ),
        stored(
            "extra_field_with_an_infinite_number",
            "a ballot with an unknown field `1e999999`",
            br#"{"voter_id":"i1","vote":"a","x":1e999999}"#.to_vec(),
            "i1",
        ),
        c(
            "entry_of_4097_bytes",
            "a ballot padded to one byte over the 4 KiB limit",
            {
                let mut p = with("pad", "\"\"");
                let pad = 4097 - p.len();
                p = with("pad", &format!("\"{}\"", "p".repeat(pad)));
                p
            },
            "over the 4096-byte limit",
        ),
        c(
            "entry_of_1_mib",
            "a ballot padded to 1 MiB (the dead letter keeps only the start)",
            with("pad", &format!("\"{}\"", "p".repeat(1 << 20))),
            "over the 4096-byte limit",
        ),
        c(
            "entry_of_20_mib",
            "a ballot padded to 20 MiB (it must never leave Redis whole)",
            with("pad", &format!("\"{}\"", "p".repeat(20 << 20))),
            "over the 4096-byte limit",
        ),
    ]
}
