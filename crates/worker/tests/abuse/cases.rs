//! The worker's hostile queue entries: what each is and what must become
//! of it (the runner is `abuse.rs`).

use testkit::abuse::{Case, Entry, Layer};
use testkit::poison;

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

/// The poison payloads of `testkit::poison` (their one home), and two
/// odd entries that are ballots after all.
pub fn cases() -> Vec<PayloadCase> {
    let stored = |name, sends: &str, payload: Vec<u8>, voter| PayloadCase {
        name,
        sends: sends.to_owned(),
        payload,
        fate: Fate::Stored(voter),
    };
    let nested = format!(
        r#"{{"voter_id":"n1","vote":"a","x":{}1{}}}"#,
        "[".repeat(2000),
        "]".repeat(2000)
    );
    let mut cases: Vec<PayloadCase> = poison::payloads(poison::now_us())
        .into_iter()
        .map(|p| PayloadCase {
            name: p.name,
            sends: p.sends,
            payload: p.payload,
            fate: Fate::Dead(p.reason),
        })
        .collect();
    cases.extend([
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
    ]);
    cases
}
