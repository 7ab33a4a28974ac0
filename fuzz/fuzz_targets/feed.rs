#![no_main]
libfuzzer_sys::fuzz_target!(|message: props::feed::Message<'_>| {
    props::feed::check(&message)
});
