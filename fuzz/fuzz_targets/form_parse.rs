//! `Form::parse` on arbitrary bytes must never panic, and whatever parses must survive
//! `to_urlencoded` → parse unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::form::Form;

fuzz_target!(|body: &[u8]| {
    if let Ok(form) = Form::parse(body) {
        let again = Form::parse(form.to_urlencoded().as_bytes()).expect("re-encoded form parses");
        assert_eq!(again.pairs(), form.pairs());
    }
});
