//! Access-token vectors of twilio.md §5 (`access_token_vectors` in `twilio_vectors.json`).
//!
//! The python tokens are reproduced byte-for-byte (header keys sorted, payload in python's key
//! order); the node token, whose key order differs, is decoded and its signature verified.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use shared::access_token::{AccessToken, AccessTokenError, VoiceGrant, decode_and_verify, encode};

fn vectors() -> Value {
    serde_json::from_str(include_str!("data/twilio_vectors.json")).expect("vector file is JSON")
}

struct Inputs {
    account_sid: String,
    api_key_sid: String,
    secret: String,
    app_sid: String,
    push_credential_sid: String,
    now: u64,
    nbf: u64,
    ttl: u32,
    identity: String,
    outgoing_params: Vec<(String, String)>,
}

fn inputs(v: &Value) -> Inputs {
    let i = &v["access_token_vectors"]["inputs"];
    let s = |k: &str| i[k].as_str().expect(k).to_owned();
    Inputs {
        account_sid: s("account_sid"),
        api_key_sid: s("api_key_sid"),
        secret: s("api_key_secret"),
        app_sid: s("app_sid"),
        push_credential_sid: s("push_credential_sid"),
        now: i["now"].as_u64().expect("now"),
        nbf: i["nbf"].as_u64().expect("nbf"),
        ttl: u32::try_from(i["ttl"].as_u64().expect("ttl")).expect("ttl fits"),
        identity: s("identity"),
        // serde_json's map is sorted; python kept insertion order, which is also sorted here.
        outgoing_params: i["outgoing_params"]
            .as_object()
            .expect("params")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("string param").to_owned()))
            .collect(),
    }
}

fn vector_token(v: &Value, name: &str) -> String {
    v["access_token_vectors"][name]["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

fn part(token: &str, index: usize) -> String {
    let raw = token.split('.').nth(index).expect("part");
    String::from_utf8(URL_SAFE_NO_PAD.decode(raw).expect("base64url")).expect("utf8")
}

#[test]
fn reproduces_python_full_grant_byte_for_byte() {
    let v = vectors();
    let i = inputs(&v);
    let token = AccessToken::new(&i.account_sid, &i.api_key_sid, &i.secret, &i.identity)
        .ttl(i.ttl)
        .expect("ttl within limit")
        .not_before(i.nbf)
        .voice_grant(
            VoiceGrant::new()
                .incoming_allow(true)
                .outgoing_application(&i.app_sid)
                .outgoing_params(i.outgoing_params.clone())
                .push_credential_sid(&i.push_credential_sid),
        );
    let jwt = encode(&token, i.now);
    let expected = &v["access_token_vectors"]["python_full_grant"];
    assert_eq!(
        part(&jwt, 0),
        expected["header_json"].as_str().expect("header_json")
    );
    assert_eq!(
        part(&jwt, 1),
        expected["payload_json"].as_str().expect("payload_json")
    );
    assert_eq!(jwt, vector_token(&v, "python_full_grant"));
}

#[test]
fn reproduces_python_outgoing_only_bob_byte_for_byte() {
    let v = vectors();
    let i = inputs(&v);
    let jwt = AccessToken::new(&i.account_sid, &i.api_key_sid, &i.secret, "bob")
        .ttl(i.ttl)
        .expect("ttl within limit")
        .not_before(i.nbf)
        .voice_grant(VoiceGrant::new().outgoing_application(&i.app_sid))
        .encode(i.now);
    assert_eq!(jwt, vector_token(&v, "python_outgoing_only_identity_bob"));
}

#[test]
fn verifies_node_token_with_other_key_order_and_iat() {
    let v = vectors();
    let i = inputs(&v);
    let node = vector_token(&v, "node_full_grant");
    assert_eq!(
        part(&node, 0),
        v["access_token_vectors"]["node_full_grant"]["header_json"]
            .as_str()
            .expect("header_json")
    );
    let claims = decode_and_verify(&node, &i.secret).expect("node token verifies");
    assert_eq!(claims.jti, format!("{}-{}", i.api_key_sid, i.now));
    assert_eq!(claims.iss, i.api_key_sid);
    assert_eq!(claims.sub, i.account_sid);
    assert_eq!(claims.exp, i.now + u64::from(i.ttl));
    assert_eq!(claims.nbf, Some(i.nbf));
    assert_eq!(claims.iat, Some(i.now));
    assert_eq!(claims.grants.identity.as_deref(), Some("alice"));
    let voice = claims.grants.voice.as_ref().expect("voice grant");
    assert_eq!(voice.incoming.as_ref().map(|g| g.allow), Some(true));
    let outgoing = voice.outgoing.as_ref().expect("outgoing");
    assert_eq!(outgoing.application_sid, i.app_sid);
    assert_eq!(
        outgoing.params.as_ref().expect("params").0,
        i.outgoing_params
    );
    assert_eq!(
        voice.push_credential_sid.as_deref(),
        Some(i.push_credential_sid.as_str())
    );
    assert_eq!(claims.check_time(i.now + 10), Ok(()));
}

#[test]
fn python_and_node_tokens_carry_the_same_claims_apart_from_iat() {
    let v = vectors();
    let i = inputs(&v);
    let python =
        decode_and_verify(&vector_token(&v, "python_full_grant"), &i.secret).expect("python");
    let mut node =
        decode_and_verify(&vector_token(&v, "node_full_grant"), &i.secret).expect("node");
    node.iat = None;
    assert_eq!(python, node);
}

#[test]
fn rejects_token_signed_with_wrong_secret() {
    let v = vectors();
    for name in [
        "python_full_grant",
        "python_outgoing_only_identity_bob",
        "node_full_grant",
    ] {
        assert_eq!(
            decode_and_verify(&vector_token(&v, name), "not-the-secret"),
            Err(AccessTokenError::BadSignature),
            "{name}"
        );
    }
}

#[test]
fn rejects_tampered_payload() {
    let v = vectors();
    let i = inputs(&v);
    let token = vector_token(&v, "python_full_grant");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let payload = part(&token, 1).replace("\"alice\"", "\"mallory\"");
    parts[1] = URL_SAFE_NO_PAD.encode(payload);
    let tampered = parts.join(".");
    assert_eq!(
        decode_and_verify(&tampered, &i.secret),
        Err(AccessTokenError::BadSignature)
    );
}

#[test]
fn rejects_tampered_header_algorithm() {
    let v = vectors();
    let i = inputs(&v);
    let token = vector_token(&v, "python_full_grant");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[0] = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS512","typ":"JWT"}"#);
    assert_eq!(
        decode_and_verify(&parts.join("."), &i.secret),
        Err(AccessTokenError::UnsupportedAlgorithm("HS512".into()))
    );
}

#[test]
fn round_trips_with_region_and_iat() {
    let token = AccessToken::new("ACx", "SKx", "s3cret", "carol")
        .region("ie1")
        .issued_at(true)
        .voice_grant(VoiceGrant::new().incoming_allow(true));
    let jwt = token.encode(1_000);
    assert_eq!(
        part(&jwt, 0),
        r#"{"alg":"HS256","cty":"twilio-fpa;v=1","twr":"ie1","typ":"JWT"}"#
    );
    let claims = decode_and_verify(&jwt, "s3cret").expect("verifies");
    assert_eq!(claims, token.claims(1_000));
    assert_eq!(claims.iat, Some(1_000));
    assert_eq!(claims.nbf, None);
    assert_eq!(claims.exp, 4_600);
}
