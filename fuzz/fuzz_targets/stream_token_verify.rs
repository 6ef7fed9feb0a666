//! `verify` on arbitrary tokens must never panic nor accept a token it did not issue.
//! The input is split into a token and a clock so expiry paths are exercised too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::stream_token::{signed_body, verify};

const KEY: &[u8] = b"fuzzing key, 32 bytes long......";

fuzz_target!(|input: (u64, &str, &[u8])| {
    let (now, token, body) = input;
    // A forged token passing verification would be a real bug: the fuzzer cannot know KEY.
    assert!(
        verify(token, KEY, now, None).is_err(),
        "accepted a forged token"
    );
    let _ = verify(token, KEY, now, Some("iad-1"));
    let _ = signed_body::verify_body(KEY, token, token, body, now, 300);
    let _ = signed_body::verify_hmac_sha256_hex(KEY, body, token);
});
