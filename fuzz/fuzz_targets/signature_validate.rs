//! `validate_form` on arbitrary URLs, bodies and headers must never panic nor accept a
//! signature the fuzzer could not have computed (it does not know the auth token).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::form::Form;
use shared::signature::validate_form;

const AUTH_TOKEN: &str = "12345";

fuzz_target!(|input: (&str, &[u8], Option<&str>)| {
    let (url, body, header) = input;
    let Ok(form) = Form::parse(body) else {
        return;
    };
    assert!(
        validate_form(AUTH_TOKEN, url, &form, header).is_err(),
        "accepted a forged signature"
    );
});
