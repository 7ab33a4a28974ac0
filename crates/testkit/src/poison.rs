//! Queue entries no vote service of ours would write, each with the
//! fragment of the reason it must be refused with: one home for them. The
//! ballot parser's unit test (`contract::ballot`) checks each against the
//! parser; the worker's abuse catalogue pushes each onto a running
//! worker's queue, and its step test a few in one batch.

/// One hostile queue entry.
#[derive(Debug, Clone)]
pub struct Poison {
    /// A `snake_case` name, unique in the list.
    pub name: &'static str,
    /// What it is, for the catalogue in `docs/abuse.md`.
    pub sends: String,
    pub payload: Vec<u8>,
    /// A fragment of the reason it is refused (and dead-lettered) with.
    pub reason: &'static str,
}

/// Every poison payload, with `seq`s relative to `now_us` (microseconds
/// since the epoch: the clock the `seq` window is read against).
pub fn payloads(now_us: i64) -> Vec<Poison> {
    let c = |name, sends: &str, payload: Vec<u8>, reason| Poison {
        name,
        sends: sends.to_owned(),
        payload,
        reason,
    };
    let with = |field: &'static str, raw: &str| with_field(now_us, field, raw);
    let json = "not valid JSON";
    let object = "a JSON object";
    let window = "outside the accepted window";
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
            "voter_id_missing",
            "`{\"vote\":\"a\"}`",
            br#"{"vote":"a"}"#.to_vec(),
            "missing field `voter_id`",
        ),
        c(
            "vote_missing",
            "`{\"voter_id\":…}` alone",
            br#"{"voter_id":"m1"}"#.to_vec(),
            "missing field `vote`",
        ),
        c(
            "vote_c",
            "`\"vote\":\"c\"`",
            with("vote", r#""c""#),
            "unknown variant",
        ),
        c(
            "vote_an_object",
            "`\"vote\":{\"a\":null}`",
            with("vote", r#"{"a":null}"#),
            "\"a\" or \"b\"",
        ),
        c(
            "vote_given_twice",
            "two `vote` fields",
            br#"{"voter_id":"d3","vote":"a","vote":"b"}"#.to_vec(),
            "duplicate field",
        ),
        c(
            "voter_id_empty",
            "`\"voter_id\":\"\"`",
            with("voter_id", r#""""#),
            "empty",
        ),
        c(
            "voter_id_with_a_space",
            "`\"voter_id\":\"a b\"`",
            with("voter_id", r#""a b""#),
            "visible ASCII",
        ),
        c(
            "a_field_that_is_not_utf8",
            "a ballot with an unknown field holding the byte `\\xff`",
            b"{\"voter_id\":\"x1\",\"vote\":\"a\",\"e\":\"\xff\"}".to_vec(),
            "not UTF-8",
        ),
        c(
            "array_of_a_voter_and_a_vote",
            "`[\"voter\",\"a\"]`",
            br#"["voter","a"]"#.to_vec(),
            object,
        ),
        c(
            "array_of_a_voter_a_vote_and_a_seq",
            "`[\"voter\",\"a\",5]`",
            br#"["voter","a",5]"#.to_vec(),
            object,
        ),
        c("a_string", "`\"voter\"`", br#""voter""#.to_vec(), object),
        c("an_integer", "`42`", b"42".to_vec(), object),
        c("null", "`null`", b"null".to_vec(), object),
        c("true", "`true`", b"true".to_vec(), object),
        c(
            "seq_null",
            "`\"seq\":null`",
            with("seq", "null"),
            "expected i64",
        ),
        c(
            "seq_a_string",
            "`\"seq\":\"5\"`",
            with("seq", r#""5""#),
            "expected i64",
        ),
        c(
            "seq_a_fraction",
            "`\"seq\":1.5`",
            with("seq", "1.5"),
            "expected i64",
        ),
        c(
            "seq_2_to_the_63",
            "`\"seq\":9223372036854775808` (one past i64)",
            with("seq", "9223372036854775808"),
            "expected i64",
        ),
        c("seq_zero", "`\"seq\":0`", with("seq", "0"), window),
        c("seq_negative", "`\"seq\":-1`", with("seq", "-1"), window),
        c(
            "seq_2_to_the_60",
            "`\"seq\":` 2^60",
            with("seq", &(1_i64 << 60).to_string()),
            window,
        ),
        c(
            "seq_i64_max",
            "`\"seq\":` 2^63 − 1",
            with("seq", &i64::MAX.to_string()),
            window,
        ),
        c(
            "seq_two_days_ahead",
            "`seq` two days ahead of the worker's clock",
            with("seq", &(now_us + 2 * 86_400_000_000).to_string()),
            window,
        ),
        c(
            "seq_one_past_the_window",
            "`seq` a minute past the window (five minutes) ahead of the worker's clock",
            // `contract::SeqWindow::AHEAD` and a minute.
            with("seq", &(now_us + 360_000_000).to_string()),
            window,
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
    ]
}

/// `{"voter_id":"x1","vote":"a","seq":<now>}` with `field` replaced or
/// added as raw JSON.
pub fn with_field(now_us: i64, field: &'static str, raw: &str) -> Vec<u8> {
    let mut fields = vec![
        ("voter_id", "\"x1\"".to_owned()),
        ("vote", "\"a\"".to_owned()),
        ("seq", now_us.to_string()),
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

/// Now, in microseconds since the epoch.
pub fn now_us() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let all = payloads(now_us());
        let names: std::collections::BTreeSet<_> = all.iter().map(|p| p.name).collect();
        assert_eq!(names.len(), all.len());
    }
}
