//! Every signature vector in `twilio_vectors.json` (SDK tests and derived), in one data-driven loop.
//!
//! For each vector two things are asserted: `compute` over the exact `signed_url` reproduces the
//! signature (our HMAC input is byte-identical to the SDKs'), and the validator accepts the
//! request as a server sees it (`request_url`, form params or raw body). Negative vectors
//! (`must_fail`) must be refused with `Mismatch`.

use serde_json::Value;
use shared::form::Form;
use shared::signature::{self, SignatureError};

fn vectors() -> Value {
    serde_json::from_str(include_str!("data/twilio_vectors.json")).expect("vector file is JSON")
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {key} is not a string: {v}"))
}

fn params(v: &Value) -> Vec<(String, String)> {
    v["params"]
        .as_array()
        .expect("params is an array")
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().expect("param key").to_owned(),
                pair[1].as_str().expect("param value").to_owned(),
            )
        })
        .collect()
}

#[test]
fn all_sdk_test_vectors_validate_as_documented() {
    let all = vectors();
    let list = all["signature_vectors_from_sdk_tests"]
        .as_array()
        .expect("sdk vector list");
    assert_eq!(list.len(), 19, "vector file changed: review new vectors");
    for v in list {
        let id = str_field(v, "id");
        let token = str_field(v, "token");
        let request_url = str_field(v, "request_url");
        let signature = str_field(v, "signature");
        let params = params(v);
        let form = Form::from_pairs(params.clone());

        if v["must_fail"].as_bool() == Some(true) {
            assert_eq!(
                signature::validate_form(token, request_url, &form, Some(signature)),
                Err(SignatureError::Mismatch),
                "{id}: negative vector must not validate"
            );
            continue;
        }

        let signed_url = str_field(v, "signed_url");
        assert_eq!(
            signature::compute(token, signed_url, &params),
            signature,
            "{id}: compute over signed_url"
        );

        let result = if let Some(body) = v["body"].as_str() {
            assert!(params.is_empty(), "{id}: body vectors carry no params");
            signature::validate_body_sha256(token, request_url, body.as_bytes(), Some(signature))
        } else if let Some(raw) = v["raw_form_body"].as_str() {
            let parsed = Form::parse(raw.as_bytes()).expect("raw form body parses");
            assert_eq!(parsed, form, "{id}: raw body decodes to the listed params");
            signature::validate_form(token, request_url, &parsed, Some(signature))
        } else {
            signature::validate_form(token, request_url, &form, Some(signature))
        };
        assert_eq!(result, Ok(()), "{id}: validator must accept request_url");
    }
}

#[test]
fn all_derived_vectors_match_python_validator_outcome() {
    let all = vectors();
    let list = all["signature_vectors_derived"]
        .as_array()
        .expect("derived vector list");
    assert!(!list.is_empty());
    for v in list {
        let name = str_field(v, "name");
        let token = str_field(v, "token");
        let url = str_field(v, "url");
        let signature = str_field(v, "signature");
        let python_validates = v["twilio_python_validates"]
            .as_bool()
            .expect("twilio_python_validates is a bool");
        let params = params(v);

        let result = if params.is_empty() {
            signature::validate_url(token, url, Some(signature))
        } else {
            let form = Form::from_pairs(params.clone());
            // Also through the wire: serialise and parse back, as the edge would receive it.
            let wire = Form::parse(form.to_urlencoded().as_bytes()).expect("round trip");
            assert_eq!(wire, form, "{name}: form survives the wire");
            signature::validate_form(token, url, &wire, Some(signature))
        };
        assert_eq!(result.is_ok(), python_validates, "{name}: {result:?}");
        if python_validates {
            assert_eq!(signature::compute(token, url, &params), signature, "{name}");
        }
    }
}

#[test]
fn vector_signatures_are_rejected_with_another_auth_token() {
    let all = vectors();
    for v in all["signature_vectors_from_sdk_tests"]
        .as_array()
        .expect("list")
    {
        let form = Form::from_pairs(params(v));
        let url = str_field(v, "request_url");
        let sig = str_field(v, "signature");
        let result = match v["body"].as_str() {
            Some(body) => signature::validate_body_sha256("54321", url, body.as_bytes(), Some(sig)),
            None => signature::validate_form("54321", url, &form, Some(sig)),
        };
        assert_eq!(
            result,
            Err(SignatureError::Mismatch),
            "{}",
            str_field(v, "id")
        );
    }
}

#[test]
fn websocket_handshake_vector_rejects_https_scheme() {
    // D2 is signed over wss://; the same path seen as https:// must not validate (§1.5).
    assert_eq!(
        signature::validate_url(
            "12345",
            "wss://mycompany.com/media",
            Some("okykUWKkAOgQseVjzERZh4soLeU=")
        ),
        Ok(())
    );
    assert_eq!(
        signature::validate_url(
            "12345",
            "https://mycompany.com/media",
            Some("okykUWKkAOgQseVjzERZh4soLeU=")
        ),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn get_vector_rejects_reordered_query() {
    let reordered = "https://mycompany.com/voice?CallSid=CA1234567890ABCDE&CallStatus=ringing&From=%2B14158675309&To=%2B18005551212";
    assert_eq!(
        signature::validate_url("12345", reordered, Some("mLKEqHj/nm76exk1jVnKyW7vBKc=")),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn json_body_vector_rejects_modified_body() {
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    assert_eq!(
        signature::validate_body_sha256(
            "12345",
            url,
            br#"{"property": "value", "boolean": false}"#,
            Some("a9nBmqA0ju/hNViExpshrM61xv4=")
        ),
        Err(SignatureError::BodyHashMismatch)
    );
}

#[test]
fn repeated_key_values_are_order_independent_and_deduplicated() {
    // V2 and V12: the SDKs de-duplicate and sort the values of a repeated key.
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let a = Form::from_pairs([
        ("MessagingBinding.Address", "+1325xxxxxxx"),
        ("MessagingBinding.Address", "+1415xxxxxxx"),
    ]);
    assert_eq!(
        signature::validate_form("12345", url, &a, Some("83O6e2vORAoJHUNzJjDWN1jz+BA=")),
        Ok(())
    );
    let deduped = Form::from_pairs([
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "1234"),
        ("Digits", "5678"),
    ]);
    assert_eq!(
        signature::validate_form("12345", url, &deduped, Some("IK+Dwps556ElfBT0I3Rgjkr1wJU=")),
        Ok(())
    );
}
