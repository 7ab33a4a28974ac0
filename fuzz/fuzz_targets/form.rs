#![no_main]
libfuzzer_sys::fuzz_target!(|submission: props::form::Submission<'_>| {
    props::form::check(&submission)
});
