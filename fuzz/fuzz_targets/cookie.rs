#![no_main]
libfuzzer_sys::fuzz_target!(|cookies: props::cookie::Cookies<'_>| {
    props::cookie::check(&cookies)
});
