//! Every Media Streams fixture under `tests/data/media_streams/` in one loop.
//!
//! Each file has a `direction` (`inbound`: Twilio → us, `outbound`: us → Twilio) and `cases`,
//! each with the wire `text` (or a `message` object, serialized here) and either `expect` (a
//! summary of the typed value) or `error` (the start of the error's `Debug` text). Valid cases
//! must also survive `to_json` → parse unchanged, and unless `exact_round_trip` is `false`,
//! `to_json` must produce the same JSON value as the fixture (field order aside).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use shared::media_stream::{InboundMessage, OutboundMessage, parse_inbound, parse_outbound};

fn fixture_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/media_streams");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn summarize_inbound(msg: &InboundMessage<'_>) -> Value {
    match msg {
        InboundMessage::Connected(m) => {
            json!({"event": "connected", "protocol": m.protocol, "version": m.version})
        }
        InboundMessage::Start(m) => json!({
            "event": "start",
            "sequence_number": m.sequence_number,
            "stream_sid": m.stream_sid,
            "account_sid": m.account_sid,
            "call_sid": m.call_sid,
            "tracks": m.tracks.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "custom_parameters": m.custom_parameters,
            "encoding": m.media_format.encoding,
            "sample_rate": m.media_format.sample_rate,
            "channels": m.media_format.channels,
        }),
        InboundMessage::Media(m) => {
            let mut summary = json!({
                "event": "media",
                "sequence_number": m.sequence_number,
                "stream_sid": m.stream_sid,
                "track": m.track.as_str(),
                "chunk": m.chunk,
                "timestamp_ms": m.timestamp_ms,
            });
            // Decode the way the node does: into a fixed frame-sized buffer.
            let mut buf = [0u8; 320];
            match m.payload.decode_into(&mut buf) {
                Ok(n) => {
                    summary["payload_len"] = json!(n);
                    summary["payload_head_hex"] = json!(hex(&buf[..n.min(9)]));
                }
                Err(e) => summary["payload_decode_error"] = json!(format!("{e:?}")),
            }
            summary
        }
        InboundMessage::Mark(m) => json!({
            "event": "mark",
            "sequence_number": m.sequence_number,
            "stream_sid": m.stream_sid,
            "name": m.name,
        }),
        InboundMessage::Dtmf(m) => json!({
            "event": "dtmf",
            "sequence_number": m.sequence_number,
            "stream_sid": m.stream_sid,
            "track": m.track.as_str(),
            "digit": m.digit.to_string(),
        }),
        InboundMessage::Stop(m) => json!({
            "event": "stop",
            "sequence_number": m.sequence_number,
            "stream_sid": m.stream_sid,
            "account_sid": m.account_sid,
            "call_sid": m.call_sid,
        }),
    }
}

fn summarize_outbound(msg: &OutboundMessage<'_>) -> Value {
    match msg {
        OutboundMessage::Media {
            stream_sid,
            payload,
        } => {
            json!({"event": "media", "stream_sid": stream_sid, "payload_base64": payload.as_base64()})
        }
        OutboundMessage::Mark { stream_sid, name } => {
            json!({"event": "mark", "stream_sid": stream_sid, "name": name})
        }
        OutboundMessage::Clear { stream_sid } => {
            json!({"event": "clear", "stream_sid": stream_sid})
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses, summarizes and re-serializes one case; returns the summary and the `to_json` text.
fn run_case(direction: &str, text: &str) -> Result<(Value, String, Value), String> {
    match direction {
        "inbound" => {
            let msg = parse_inbound(text).map_err(|e| format!("{e:?}"))?;
            let out = msg.to_json();
            let again = parse_inbound(&out).map_err(|e| format!("re-parse of {out}: {e:?}"))?;
            assert_eq!(again, msg, "to_json → parse changed the message: {out}");
            let seq = json!(msg.sequence_number());
            Ok((summarize_inbound(&msg), out, seq))
        }
        "outbound" => {
            let msg = parse_outbound(text).map_err(|e| format!("{e:?}"))?;
            let out = msg.to_json();
            let again = parse_outbound(&out).map_err(|e| format!("re-parse of {out}: {e:?}"))?;
            assert_eq!(again, msg, "to_json → parse changed the message: {out}");
            Ok((summarize_outbound(&msg), out, Value::Null))
        }
        other => panic!("unknown direction {other:?}"),
    }
}

#[test]
fn every_media_stream_fixture_parses_as_recorded() {
    let files = fixture_files();
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for required in [
        "doc_inbound.json",
        "doc_outbound.json",
        "capture_bun_example.json",
        "capture_tutorial_2019.json",
        "inbound_errors.json",
    ] {
        assert!(
            names.iter().any(|n| n == required),
            "missing fixture {required}"
        );
    }

    let (mut valid, mut invalid) = (0, 0);
    for path in &files {
        let file: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        let file_name = path.file_name().unwrap().to_string_lossy();
        let direction = file["direction"].as_str().expect("direction");
        let cases = file["cases"].as_array().expect("cases");
        assert!(!cases.is_empty(), "{file_name} has no cases");
        let is_capture = file_name.starts_with("capture_");
        let mut last_seq: Option<u64> = None;
        let mut session_sid: Option<String> = None;

        for case in cases {
            let name = format!("{file_name}: {}", case["name"].as_str().expect("name"));
            let text = match (&case["text"], &case["message"]) {
                (Value::String(t), Value::Null) => t.clone(),
                (Value::Null, m @ Value::Object(_)) => m.to_string(),
                _ => panic!("{name}: needs exactly one of text/message"),
            };
            let result = run_case(direction, &text);
            match (&case["expect"], &case["error"]) {
                (expect @ Value::Object(_), Value::Null) => {
                    let (summary, out, seq) =
                        result.unwrap_or_else(|e| panic!("{name}: unexpected error {e}"));
                    assert_eq!(&summary, expect, "{name}");
                    if case["exact_round_trip"].as_bool().unwrap_or(true) {
                        let original: Value = serde_json::from_str(&text).unwrap();
                        let produced: Value = serde_json::from_str(&out).unwrap();
                        assert_eq!(
                            produced, original,
                            "{name}: to_json differs from the wire text"
                        );
                    }
                    if is_capture {
                        // A captured session is one stream with strictly increasing counters.
                        if let Some(seq) = seq.as_u64() {
                            assert!(
                                last_seq.is_none_or(|last| seq > last),
                                "{name}: sequence went back"
                            );
                            last_seq = Some(seq);
                        }
                        if let Some(sid) = summary["stream_sid"].as_str() {
                            let first = session_sid.get_or_insert_with(|| sid.to_owned());
                            assert_eq!(first, sid, "{name}: stream changed mid-session");
                        }
                    }
                    valid += 1;
                }
                (Value::Null, Value::String(expected)) => {
                    let err = match result {
                        Ok((summary, ..)) => {
                            panic!("{name}: parsed as {summary}, wanted {expected}")
                        }
                        Err(e) => e,
                    };
                    assert!(
                        err.starts_with(expected.as_str()),
                        "{name}: got {err}, wanted {expected}"
                    );
                    invalid += 1;
                }
                _ => panic!("{name}: needs exactly one of expect/error"),
            }
        }
    }
    // Guards against a fixture directory that silently lost its cases.
    assert!(valid >= 25, "only {valid} valid cases ran");
    assert!(invalid >= 25, "only {invalid} error cases ran");
}

#[test]
fn outbound_constructors_round_trip_through_the_wire() {
    let audio: Vec<u8> = (0..=255u8).cycle().take(480).collect();
    for msg in [
        OutboundMessage::media("MZ1", &audio),
        OutboundMessage::mark("MZ1", "utterance-7"),
        OutboundMessage::clear("MZ1"),
    ] {
        let text = msg.to_json();
        assert_eq!(parse_outbound(&text).unwrap(), msg, "{text}");
    }
    let text = OutboundMessage::media("MZ1", &audio).to_json();
    let OutboundMessage::Media { payload, .. } = parse_outbound(&text).unwrap() else {
        panic!("not media")
    };
    assert_eq!(payload.decode_to_vec().unwrap(), audio);
}

#[test]
fn outbound_messages_carry_no_counters() {
    // Twilio's outbound messages have no sequenceNumber/chunk/timestamp (twilio.md §4.3).
    for text in [
        OutboundMessage::media("MZ1", &[0xFF; 160]).to_json(),
        OutboundMessage::mark("MZ1", "m").to_json(),
        OutboundMessage::clear("MZ1").to_json(),
    ] {
        for counter in ["sequenceNumber", "chunk", "timestamp"] {
            assert!(!text.contains(counter), "{text} has {counter}");
        }
    }
}
