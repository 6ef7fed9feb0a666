//! `voice-node simulate` follows TwiML like Twilio: the voice webhook, `<Connect><Stream>` with a
//! signed handshake, `<Dial action>` with each outcome, `<Redirect>`, `<Say>` + `<Hangup>`, and
//! the final status callback — against a fake edge that checks every signature.

mod simulate_support;

use std::sync::Arc;

use simulate_support::*;
use voice_node::simulate::call::place_call;
use voice_node::simulate::twiml_follow::{CallEnd, DialStatus};

fn stream_twiml(ws_url: &str) -> String {
    twiml(&format!(
        r#"<Connect action="/telephony/stream-fallback"><Stream url="{ws_url}" statusCallback="/telephony/stream-status"><Parameter name="token" value="tok.en"/><Parameter name="mode" value="screening"/><Parameter name="tenant" value="t1"/></Stream></Connect>"#
    ))
}

#[tokio::test]
async fn connect_stream_runs_a_whole_call_with_turns_marks_and_the_node_record() {
    let node = start_node(AgentScript::GreetAndReply {
        greeting_frames: 20,
        reply_frames: 15,
    })
    .await;
    let records = start_record_server().await;
    let ws_url = node.ws_url.clone();
    let edge = start_edge(Arc::new(move |path, _form| match path {
        "/telephony/inbound" => Some(stream_twiml(&ws_url)),
        _ => None,
    }))
    .await;

    let report = place_call(plan_with_record(&edge, &records, vec![loud_utterance(20)])).await;

    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    assert!(!report.failed());
    assert_eq!(report.ended, CallEnd::CallerHungUp);
    // From the node's record.
    assert_eq!(report.mode.as_deref(), Some("screening"));
    assert_eq!(report.outcome.as_deref(), Some("message_taken"));
    assert_eq!(report.outcome_source, "node");
    assert_eq!(report.transcript.len(), 2);
    assert_eq!(report.screening.as_ref().unwrap().label, "legit");
    // One caller turn, answered: one latency, about the fake agent's 300 ms of quiet.
    assert_eq!(report.turn_latency_ms.len(), 1, "{report:#?}");
    assert!(
        (250..1500).contains(&report.turn_latency_ms[0]),
        "{:?}",
        report.turn_latency_ms
    );

    let seen = node.seen.lock().unwrap();
    // Handshake signed over the ws:// URL exactly like Twilio.
    let expected = shared::signature::compute(AUTH_TOKEN, &node.ws_url, &[]);
    assert_eq!(seen.signatures, vec![Some(expected)]);
    assert_eq!(
        seen.events[..2],
        ["connected".to_owned(), "start".to_owned()]
    );
    assert_eq!(seen.events.last().map(String::as_str), Some("stop"));
    assert!(
        seen.sequence_ok,
        "sequenceNumber must count every message after connected"
    );
    assert_eq!(seen.custom_parameters["token"], "tok.en");
    assert_eq!(seen.custom_parameters["mode"], "screening");
    assert_eq!(seen.call_sid.as_deref(), Some(report.call_sid.as_str()));
    // Both marks came back, each after its audio had played (20 and 15 frames).
    let echoes: Vec<&str> = seen
        .mark_echo_after
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(echoes, ["greeting", "reply-1"]);
    let greeting_echo = seen.mark_echo_after[0].1.as_millis();
    assert!(
        (380..900).contains(&greeting_echo),
        "greeting echoed after {greeting_echo} ms"
    );
    // A real-time caller: roughly 50 frames per second of call.
    let stream = &report.streams[0];
    assert_eq!(stream.frames_sent as usize, seen.media_frames);
    assert_eq!(stream.marks_echoed, 2);
    assert_eq!(stream.frames_received, 35);
    assert_eq!(stream.late_frames, 0);
    drop(seen);

    // Stream status callbacks and the final status callback, all signed (the edge refused none).
    assert!(edge.refused.lock().unwrap().is_empty());
    let stream_events: Vec<String> = edge
        .hits_on("/telephony/stream-status")
        .iter()
        .map(|h| h.form.get("StreamEvent").unwrap_or("").to_owned())
        .collect();
    assert_eq!(stream_events, ["stream-started", "stream-stopped"]);
    let status = edge.hits_on("/telephony/status");
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].form.get("CallStatus"), Some("completed"));
    assert_eq!(
        status[0].form.get("CallSid"),
        Some(report.call_sid.as_str())
    );
    assert!(
        status[0]
            .form
            .get("CallDuration")
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    let inbound = edge.hits_on("/telephony/inbound");
    assert_eq!(inbound[0].form.get("CallStatus"), Some("ringing"));
    assert_eq!(inbound[0].form.get("Direction"), Some("inbound"));
    assert_eq!(inbound[0].form.get("From"), Some(FROM));
    assert_eq!(inbound[0].form.get("Called"), Some(TO));
}

#[tokio::test]
async fn dial_action_gets_each_dial_status_and_its_twiml_is_followed() {
    for (status, outcome) in [
        (DialStatus::Completed, "transferred"),
        (DialStatus::NoAnswer, "missed"),
        (DialStatus::Busy, "missed"),
        (DialStatus::Failed, "missed"),
    ] {
        let edge = start_edge(Arc::new(|path, form| match path {
            "/telephony/inbound" => Some(twiml(
                r#"<Dial action="/telephony/dial-result" timeout="20"><Number>+14155550199</Number></Dial>"#,
            )),
            "/telephony/dial-result" => Some(twiml(&format!(
                "<Say>dial said {}</Say><Hangup/>",
                form.get("DialCallStatus").unwrap_or("?")
            ))),
            _ => None,
        }))
        .await;
        let report = place_call(plan(&edge, Vec::new(), status)).await;
        assert!(report.errors.is_empty(), "{status:?}: {:?}", report.errors);
        assert_eq!(report.ended, CallEnd::TwimlHangup);
        assert_eq!(
            report.twiml_said,
            [format!("dial said {}", status.as_str())]
        );
        assert_eq!(report.outcome.as_deref(), Some(outcome), "{status:?}");
        assert_eq!(report.mode.as_deref(), Some("forward"));
        assert_eq!(report.dials[0].to, "+14155550199");
        let action = &edge.hits_on("/telephony/dial-result")[0].form;
        assert_eq!(action.get("DialCallStatus"), Some(status.as_str()));
        assert_eq!(action.get("CallStatus"), Some("in-progress"));
        assert!(
            action
                .get("DialCallSid")
                .is_some_and(|s| s.starts_with("CA"))
        );
    }
}

#[tokio::test]
async fn dial_no_answer_then_stream_reaches_the_ai() {
    let node = start_node(AgentScript::GreetAndReply {
        greeting_frames: 10,
        reply_frames: 10,
    })
    .await;
    let ws_url = node.ws_url.clone();
    let edge = start_edge(Arc::new(move |path, form| match path {
        "/telephony/inbound" => Some(twiml(
            r#"<Dial action="/telephony/dial-result"><Number>+14155550199</Number></Dial>"#,
        )),
        "/telephony/dial-result" if form.get("DialCallStatus") == Some("no-answer") => {
            Some(stream_twiml(&ws_url))
        }
        "/telephony/dial-result" => Some(twiml("<Hangup/>")),
        _ => None,
    }))
    .await;
    let report = place_call(plan(&edge, vec![loud_utterance(10)], DialStatus::NoAnswer)).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.ended, CallEnd::CallerHungUp);
    assert_eq!(report.streams.len(), 1);
    assert_eq!(report.twiml.len(), 2);
    assert_eq!(report.mode.as_deref(), Some("screening"));
}

#[tokio::test]
async fn redirect_is_followed_and_say_hangup_ends_the_call() {
    let edge = start_edge(Arc::new(|path, _| match path {
        "/telephony/inbound" => Some(twiml(
            r#"<Say>one moment</Say><Redirect>/telephony/next</Redirect><Say>never</Say>"#,
        )),
        "/telephony/next" => Some(twiml("<Say>Goodbye.</Say><Pause length=\"1\"/><Hangup/>")),
        _ => None,
    }))
    .await;
    let report = place_call(plan(&edge, Vec::new(), DialStatus::Completed)).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.twiml_said, ["one moment", "Goodbye."]);
    assert_eq!(report.twiml.len(), 2);
    assert_eq!(report.ended, CallEnd::TwimlHangup);
    assert_eq!(report.outcome.as_deref(), Some("completed"));
    assert_eq!(
        edge.hits_on("/telephony/next")[0].form.get("CallStatus"),
        Some("in-progress")
    );
}

#[tokio::test]
async fn a_refused_stream_runs_the_connect_action() {
    // The fake node checks the signature over its own URL (`…/media/fake-node`); a stream URL with
    // another path is signed over that path and refused with 403, like a node refusing a bad
    // signature.
    let node = start_node(AgentScript::MarksThenClear).await;
    let wrong_url = node.ws_url.replace("/media/fake-node", "/media/other");
    let edge = start_edge(Arc::new(move |path, _| match path {
        "/telephony/inbound" => Some(stream_twiml(&wrong_url)),
        "/telephony/stream-fallback" => Some(twiml("<Say>Sorry.</Say><Hangup/>")),
        _ => None,
    }))
    .await;
    let report = place_call(plan(&edge, Vec::new(), DialStatus::Completed)).await;
    assert!(
        report.errors.iter().any(|e| e.contains("HTTP 403")),
        "{:?}",
        report.errors
    );
    assert!(report.failed());
    assert_eq!(report.twiml_said, ["Sorry."]);
    let fallback = edge.hits_on("/telephony/stream-fallback");
    assert_eq!(fallback[0].form.get("CallStatus"), Some("in-progress"));
    assert_eq!(node.seen.lock().unwrap().events, Vec::<String>::new());
}

#[tokio::test]
async fn a_webhook_signed_with_another_token_is_reported_as_a_failed_call() {
    let edge = start_edge_with_token(
        "the-edge-has-another-token",
        Arc::new(|_, _| Some(twiml("<Hangup/>"))),
    )
    .await;
    let report = place_call(plan(&edge, Vec::new(), DialStatus::Completed)).await;
    assert!(report.failed());
    assert_eq!(report.ended, CallEnd::ApplicationError);
    assert_eq!(report.outcome.as_deref(), Some("failed"));
    assert!(report.errors[0].contains("HTTP 403"), "{:?}", report.errors);
    assert_eq!(
        edge.refused.lock().unwrap().len(),
        2,
        "inbound and the status callback"
    );
}

#[tokio::test]
async fn record_leaves_a_voicemail_and_posts_the_recording_callbacks() {
    let edge = start_edge(Arc::new(|path, _| match path {
        "/telephony/inbound" => Some(twiml(
            r#"<Say>Leave a message.</Say><Record action="/telephony/voicemail-done" recordingStatusCallback="/telephony/recording" maxLength="120"/>"#,
        )),
        "/telephony/voicemail-done" => Some(twiml("<Hangup/>")),
        _ => None,
    }))
    .await;
    let report = place_call(plan(&edge, Vec::new(), DialStatus::Completed)).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.outcome.as_deref(), Some("voicemail"));
    let recording = &edge.hits_on("/telephony/recording")[0].form;
    assert_eq!(recording.get("RecordingStatus"), Some("completed"));
    assert!(
        recording
            .get("RecordingSid")
            .is_some_and(|s| s.starts_with("RE"))
    );
    let done = &edge.hits_on("/telephony/voicemail-done")[0].form;
    assert_eq!(done.get("Digits"), Some("hangup"));
}

#[tokio::test]
async fn the_node_hanging_up_ends_the_call() {
    let node = start_node(AgentScript::CloseAfter { after_ms: 300 }).await;
    let ws_url = node.ws_url.clone();
    let edge = start_edge(Arc::new(move |path, _| match path {
        "/telephony/inbound" => Some(stream_twiml(&ws_url)),
        _ => None,
    }))
    .await;
    let report = place_call(plan(
        &edge,
        vec![loud_utterance(200)],
        DialStatus::Completed,
    ))
    .await;
    assert_eq!(report.ended, CallEnd::NodeHungUp);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(
        edge.hits_on("/telephony/stream-fallback").is_empty(),
        "a node hang-up is not a failure"
    );
}
