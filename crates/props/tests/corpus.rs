//! The fuzz targets' properties on the checked-in corpus and on seeded
//! mutations of it. `cargo xtask fuzz` searches far more inputs, guided by
//! coverage; this keeps what it found (and what it once broke) checked on
//! every `cargo test`, with no fuzzing toolchain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use props::arbitrary::{Arbitrary, Unstructured};

/// Mutated inputs tried per target on top of the corpus.
const MUTATIONS: usize = 20_000;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every file in `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let mut inputs = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() && path.extension().is_none_or(|ext| ext != "md") {
                inputs.push(std::fs::read(&path).unwrap());
            }
        }
    }
    inputs.sort();
    inputs
}

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `input` with one to four random edits: a byte changed, inserted or
/// removed, or a slice of another input spliced in.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(4) {
            0 if at < out.len() => out[at] = rng.next() as u8,
            1 => out.insert(at, rng.next() as u8),
            2 if at < out.len() => {
                out.remove(at);
            }
            _ => {
                let from = rng.below(other.len() + 1);
                let len = rng.below(other.len() - from + 1).min(16);
                out.splice(at..at, other[from..from + len].iter().copied());
            }
        }
    }
    out
}

/// Runs `check` on every raw input of the corpus of `target` and on
/// mutations of it. `check` says whether the input reached the property (a
/// typed target skips bytes that build no typed input); every input must,
/// so a run cannot pass having checked nothing.
fn run(target: &str, check: impl Fn(&[u8]) -> bool) {
    let seeds = corpus(target);
    assert!(
        !seeds.is_empty(),
        "no corpus for {target}: fuzz/corpus/{target}/ is checked in"
    );
    let mut rng = Rng(0x5eed_0000_0000_0001 ^ target.len() as u64);
    let corpus = seeds.iter().filter(|input| check(input)).count();
    let mut mutations = 0;
    for _ in 0..MUTATIONS {
        let input = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        mutations += usize::from(check(&mutate(&mut rng, input, other)));
    }
    assert_eq!(
        (corpus, mutations),
        (seeds.len(), MUTATIONS),
        "{target}: (corpus files, mutations) that reached the property, of those tried"
    );
}

/// The typed input `fuzz_target!` builds from `bytes`, if any.
fn typed<'a, T: Arbitrary<'a>>(bytes: &'a [u8]) -> Option<T> {
    T::arbitrary_take_rest(Unstructured::new(bytes)).ok()
}

#[test]
fn queue_payloads_parse_only_to_ballots_that_say_what_the_json_says() {
    run("ballot", |bytes| {
        props::ballot::check(bytes);
        true
    });
}

#[test]
fn a_form_parses_only_with_exactly_one_valid_vote_field() {
    run("form", |bytes| {
        typed::<props::form::Submission<'_>>(bytes)
            .map(|submission| props::form::check(&submission))
            .is_some()
    });
}

#[test]
fn cookies_yield_only_ids_they_carry_and_ours_read_back_as_set() {
    run("cookie", |bytes| {
        typed::<props::cookie::Cookies<'_>>(bytes)
            .map(|cookies| props::cookie::check(&cookies))
            .is_some()
    });
}

#[test]
fn the_live_feed_message_reads_back_and_nothing_but_an_object_is_a_tally() {
    run("feed", |bytes| {
        typed::<props::feed::Message<'_>>(bytes)
            .map(|message| props::feed::check(&message))
            .is_some()
    });
}
