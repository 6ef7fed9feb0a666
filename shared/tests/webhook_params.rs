//! Typed webhook parameters from realistic bodies (shapes from twilio.md §2 and §4.7).

use shared::form::Form;
use shared::webhook::{
    AnsweredBy, CallStatus, CallStatusCallback, ClientOutgoingCall, DialActionRequest,
    DialCallStatus, Direction, FromForm, GatherPartialResult, GatherResult, IncomingSms,
    RecordAction, RecordingStatus, RecordingStatusCallback, StirVerstat, StreamEvent,
    StreamStatusCallback, VoiceRequest, WebhookError,
};

const CALL_SID: &str = "CA5d9f1a0c2b3e4f5a6b7c8d9e0f1a2b3c";
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";

/// §2.1 example, with SIDs filled in and a parameter Twilio might add tomorrow.
const INBOUND_CALL: &str = "AccountSid=AC0123456789abcdef0123456789abcdef&ApiVersion=2010-04-01\
&CallSid=CA5d9f1a0c2b3e4f5a6b7c8d9e0f1a2b3c&CallStatus=ringing&CallToken=%7B%22parentCallInfoToken%22%3A%22x%22%7D\
&Called=%2B12058963971&CalledCity=CAMP+HILL&CalledCountry=US&CalledState=AL&CalledZip=36850\
&Caller=%2B14155551212&CallerCity=SAN+FRANCISCO&CallerCountry=US&CallerState=CA&CallerZip=94103\
&Direction=inbound&From=%2B14155551212&FromCity=SAN+FRANCISCO&FromCountry=US&FromState=CA&FromZip=94103\
&StirVerstat=TN-Validation-Passed-A&To=%2B12058963971&ToCity=CAMP+HILL&ToCountry=US&ToState=AL&ToZip=36850\
&SipHeader_X-Custom=abc&BrandNewParam=hello";

fn base(extra: &str) -> String {
    format!(
        "AccountSid={ACCOUNT_SID}&ApiVersion=2010-04-01&CallSid={CALL_SID}&CallStatus=in-progress\
&Called=%2B12058963971&Caller=%2B14155551212&Direction=inbound&From=%2B14155551212&To=%2B12058963971{extra}"
    )
}

#[test]
fn parses_inbound_call_and_keeps_unknown_fields_in_order() {
    let req = VoiceRequest::from_urlencoded(INBOUND_CALL.as_bytes()).expect("parses");
    let call = &req.call;
    assert_eq!(call.call_sid, CALL_SID);
    assert_eq!(call.account_sid, ACCOUNT_SID);
    assert_eq!(call.from, "+14155551212");
    assert_eq!(call.to, "+12058963971");
    assert_eq!(call.caller.as_deref(), Some("+14155551212"));
    assert_eq!(call.called.as_deref(), Some("+12058963971"));
    assert_eq!(call.call_status, CallStatus::Ringing);
    assert_eq!(call.direction, Some(Direction::Inbound));
    assert_eq!(call.api_version.as_deref(), Some("2010-04-01"));
    assert_eq!(call.stir_verstat, Some(StirVerstat::PassedA));
    assert!(
        call.stir_verstat
            .as_ref()
            .is_some_and(StirVerstat::is_passed_a)
    );
    assert_eq!(
        call.call_token.as_deref(),
        Some(r#"{"parentCallInfoToken":"x"}"#)
    );
    assert_eq!(call.to_location.city.as_deref(), Some("CAMP HILL"));
    assert_eq!(call.from_location.zip.as_deref(), Some("94103"));
    assert_eq!(call.called_location.state.as_deref(), Some("AL"));
    assert_eq!(call.caller_location.country.as_deref(), Some("US"));
    assert_eq!(call.forwarded_from, None);
    assert_eq!(call.caller_name, None);
    assert_eq!(
        req.extra,
        vec![
            ("SipHeader_X-Custom".to_owned(), "abc".to_owned()),
            ("BrandNewParam".to_owned(), "hello".to_owned()),
        ]
    );
}

#[test]
fn missing_call_sid_is_named() {
    let form = Form::from_pairs([
        ("AccountSid", ACCOUNT_SID),
        ("From", "+1"),
        ("To", "+2"),
        ("CallStatus", "ringing"),
    ]);
    assert_eq!(
        VoiceRequest::from_form(&form),
        Err(WebhookError::MissingField("CallSid"))
    );
    let form = Form::from_pairs([
        ("CallSid", CALL_SID),
        ("AccountSid", ACCOUNT_SID),
        ("From", "+1"),
        ("To", "+2"),
    ]);
    assert_eq!(
        VoiceRequest::from_form(&form),
        Err(WebhookError::MissingField("CallStatus"))
    );
}

#[test]
fn bad_form_body_is_a_form_error() {
    assert!(matches!(
        VoiceRequest::from_urlencoded(b"CallSid=%ZZ"),
        Err(WebhookError::Form(_))
    ));
}

#[test]
fn unknown_status_and_verstat_values_are_kept() {
    let body =
        base("&StirVerstat=TN-Validation-Passed-A-Passthrough").replace("in-progress", "on-hold");
    let req = VoiceRequest::from_urlencoded(body.as_bytes()).expect("parses");
    assert_eq!(req.call.call_status, CallStatus::Other("on-hold".into()));
    let verstat = req.call.stir_verstat.expect("verstat");
    assert_eq!(
        verstat,
        StirVerstat::Other("TN-Validation-Passed-A-Passthrough".into())
    );
    assert!(verstat.is_passed_a());
}

#[test]
fn empty_optional_text_is_kept_but_empty_optional_number_is_absent() {
    let body = base("&ForwardedFrom=&MachineDetectionDuration=&AnsweredBy=machine_end_beep");
    let req = VoiceRequest::from_urlencoded(body.as_bytes()).expect("parses");
    assert_eq!(req.call.forwarded_from.as_deref(), Some(""));
    assert_eq!(req.machine_detection_duration_ms, None);
    assert_eq!(req.answered_by, Some(AnsweredBy::MachineEndBeep));
}

#[test]
fn parses_completed_status_callback() {
    let body = base(
        "&CallDuration=47&Duration=1&SipResponseCode=200&Timestamp=Tue%2C+31+Aug+2010+20%3A36%3A44+%2B0000\
&CallbackSource=call-progress-events&SequenceNumber=3",
    )
    .replace("in-progress", "completed");
    let cb = CallStatusCallback::from_urlencoded(body.as_bytes()).expect("parses");
    assert_eq!(cb.call.call_status, CallStatus::Completed);
    assert_eq!(cb.call_duration, Some(47));
    assert_eq!(cb.duration_minutes, Some(1));
    assert_eq!(cb.sip_response_code, Some(200));
    assert_eq!(
        cb.timestamp.as_deref(),
        Some("Tue, 31 Aug 2010 20:36:44 +0000")
    );
    assert_eq!(cb.callback_source.as_deref(), Some("call-progress-events"));
    assert_eq!(cb.sequence_number, Some(3));
    assert!(cb.extra.is_empty(), "{:?}", cb.extra);
}

#[test]
fn bad_number_names_the_field() {
    let body = base("&CallDuration=forty");
    assert_eq!(
        CallStatusCallback::from_urlencoded(body.as_bytes()),
        Err(WebhookError::InvalidNumber {
            field: "CallDuration",
            value: "forty".into()
        })
    );
    let body = base("&SequenceNumber=-1");
    assert!(matches!(
        CallStatusCallback::from_urlencoded(body.as_bytes()),
        Err(WebhookError::InvalidNumber {
            field: "SequenceNumber",
            ..
        })
    ));
}

#[test]
fn parses_dial_action_with_bridged_flag() {
    let body = base(
        "&DialCallStatus=no-answer&DialCallSid=CAffffffffffffffffffffffffffffffff&DialCallDuration=0&DialBridged=false",
    );
    let dial = DialActionRequest::from_urlencoded(body.as_bytes()).expect("parses");
    assert_eq!(dial.dial_call_status, DialCallStatus::NoAnswer);
    assert_eq!(
        dial.dial_call_sid.as_deref(),
        Some("CAffffffffffffffffffffffffffffffff")
    );
    assert_eq!(dial.dial_call_duration, Some(0));
    assert_eq!(dial.dial_bridged, Some(false));
    assert_eq!(dial.call.call_sid, CALL_SID);
}

#[test]
fn dial_action_requires_dial_call_status_and_a_real_boolean() {
    assert_eq!(
        DialActionRequest::from_urlencoded(base("").as_bytes()),
        Err(WebhookError::MissingField("DialCallStatus"))
    );
    assert_eq!(
        DialActionRequest::from_urlencoded(
            base("&DialCallStatus=completed&DialBridged=yes").as_bytes()
        ),
        Err(WebhookError::InvalidBoolean {
            field: "DialBridged",
            value: "yes".into()
        })
    );
}

#[test]
fn parses_gather_speech_result() {
    let body = base("&SpeechResult=I+need+an+appointment.&Confidence=0.92&Digits=&FinishedOnKey=");
    let g = GatherResult::from_urlencoded(body.as_bytes()).expect("parses");
    assert_eq!(g.speech_result.as_deref(), Some("I need an appointment."));
    assert_eq!(g.confidence, Some(0.92));
    assert_eq!(g.digits.as_deref(), Some(""));
    assert_eq!(g.finished_on_key.as_deref(), Some(""));
}

#[test]
fn gather_refuses_non_finite_confidence() {
    for bad in ["NaN", "inf", "high"] {
        let body = base(&format!("&Confidence={bad}"));
        assert!(
            matches!(
                GatherResult::from_urlencoded(body.as_bytes()),
                Err(WebhookError::InvalidNumber {
                    field: "Confidence",
                    ..
                })
            ),
            "{bad}"
        );
    }
}

#[test]
fn parses_gather_partial_result() {
    let body = base(
        "&UnstableSpeechResult=appoint&StableSpeechResult=I+need+an&SequenceNumber=2&LanguageCode=en-US",
    );
    let p = GatherPartialResult::from_urlencoded(body.as_bytes()).expect("parses");
    assert_eq!(p.stable_speech_result.as_deref(), Some("I need an"));
    assert_eq!(p.unstable_speech_result.as_deref(), Some("appoint"));
    assert_eq!(p.sequence_number, Some(2));
    assert_eq!(
        p.extra,
        vec![("LanguageCode".to_owned(), "en-US".to_owned())]
    );
}

#[test]
fn parses_record_action() {
    let body = base(
        "&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2F2010-04-01%2FAccounts%2FAC0123456789abcdef0123456789abcdef%2FRecordings%2FRE1&RecordingDuration=12&RecordingSid=RE1&Digits=hangup",
    );
    let r = RecordAction::from_urlencoded(body.as_bytes()).expect("parses");
    assert!(r.recording_url.ends_with("/Recordings/RE1"));
    assert_eq!(r.recording_duration, Some(12));
    assert_eq!(r.digits.as_deref(), Some("hangup"));
}

#[test]
fn parses_recording_status_callback() {
    let body = format!(
        "AccountSid={ACCOUNT_SID}&CallSid={CALL_SID}&RecordingSid=RE0123456789abcdef0123456789abcdef\
&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2F2010-04-01%2FAccounts%2F{ACCOUNT_SID}%2FRecordings%2FRE0123456789abcdef0123456789abcdef\
&RecordingStatus=completed&RecordingDuration=31&RecordingChannels=2&RecordingStartTime=Mon%2C+22+Aug+2022+17%3A06%3A09+%2B0000\
&RecordingSource=DialVerb&RecordingTrack=both&ErrorCode=0"
    );
    let r = RecordingStatusCallback::from_urlencoded(body.as_bytes()).expect("parses");
    assert_eq!(r.recording_status, RecordingStatus::Completed);
    assert_eq!(r.recording_sid, "RE0123456789abcdef0123456789abcdef");
    assert_eq!(r.recording_duration, Some(31));
    assert_eq!(r.recording_channels, Some(2));
    assert_eq!(r.recording_source.as_deref(), Some("DialVerb"));
    assert_eq!(r.recording_track.as_deref(), Some("both"));
    assert_eq!(r.error_code, Some(0));
    assert!(r.extra.is_empty());
}

#[test]
fn parses_stream_status_callbacks() {
    let started = format!(
        "AccountSid={ACCOUNT_SID}&CallSid={CALL_SID}&StreamSid=MZ0123456789abcdef0123456789abcdef\
&StreamName=MZ0123456789abcdef0123456789abcdef&StreamEvent=stream-started&Timestamp=2024-05-01T12%3A00%3A00.000Z"
    );
    let s = StreamStatusCallback::from_urlencoded(started.as_bytes()).expect("parses");
    assert_eq!(s.stream_event, StreamEvent::Started);
    assert_eq!(
        s.stream_name.as_deref(),
        Some("MZ0123456789abcdef0123456789abcdef")
    );
    assert_eq!(s.timestamp.as_deref(), Some("2024-05-01T12:00:00.000Z"));

    let error = format!(
        "AccountSid={ACCOUNT_SID}&CallSid={CALL_SID}&StreamSid=MZ1&StreamEvent=stream-error&StreamError=Stream+-+WebSocket+-+Connection+Refused"
    );
    let s = StreamStatusCallback::from_urlencoded(error.as_bytes()).expect("parses");
    assert_eq!(s.stream_event, StreamEvent::Error);
    assert_eq!(
        s.stream_error.as_deref(),
        Some("Stream - WebSocket - Connection Refused")
    );

    let missing = format!("AccountSid={ACCOUNT_SID}&CallSid={CALL_SID}&StreamEvent=stream-stopped");
    assert_eq!(
        StreamStatusCallback::from_urlencoded(missing.as_bytes()),
        Err(WebhookError::MissingField("StreamSid"))
    );
}

#[test]
fn parses_incoming_mms_with_media() {
    let body = format!(
        "ToCountry=US&MediaContentType0=image%2Fjpeg&ToState=CA&SmsMessageSid=MM1&NumMedia=2&ToCity=&FromZip=94103\
&SmsSid=MM1&FromState=CA&SmsStatus=received&FromCity=SAN+FRANCISCO&Body=Here+you+go+%F0%9F%93%B7&FromCountry=US\
&To=%2B15017122661&MediaUrl1=https%3A%2F%2Fapi.twilio.com%2Fm%2F2&ToZip=&NumSegments=1&MessageSid=MM1\
&AccountSid={ACCOUNT_SID}&From=%2B15558675310&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2Fm%2F1&ApiVersion=2010-04-01"
    );
    let sms = IncomingSms::from_urlencoded(body.as_bytes()).expect("parses");
    assert_eq!(sms.message_sid, "MM1");
    assert_eq!(sms.from, "+15558675310");
    assert_eq!(sms.to, "+15017122661");
    assert_eq!(sms.body, "Here you go 📷");
    assert_eq!(sms.num_segments, Some(1));
    assert_eq!(sms.media.len(), 2);
    assert_eq!(sms.media[0].url, "https://api.twilio.com/m/1");
    assert_eq!(sms.media[0].content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(sms.media[1].url, "https://api.twilio.com/m/2");
    assert_eq!(sms.media[1].content_type, None);
    assert_eq!(sms.sms_status.as_deref(), Some("received"));
    assert_eq!(sms.to_location.city.as_deref(), Some(""));
    assert_eq!(
        sms.extra,
        vec![
            ("SmsMessageSid".to_owned(), "MM1".to_owned()),
            ("SmsSid".to_owned(), "MM1".to_owned()),
        ]
    );
}

#[test]
fn incoming_sms_checks_announced_media() {
    let body =
        format!("MessageSid=MM1&AccountSid={ACCOUNT_SID}&From=%2B1&To=%2B2&Body=&NumMedia=1");
    assert_eq!(
        IncomingSms::from_urlencoded(body.as_bytes()),
        Err(WebhookError::MissingMediaUrl(0))
    );
    let body = format!(
        "MessageSid=MM1&AccountSid={ACCOUNT_SID}&From=%2B1&To=%2B2&Body=&NumMedia=4294967295"
    );
    assert!(matches!(
        IncomingSms::from_urlencoded(body.as_bytes()),
        Err(WebhookError::InvalidNumber {
            field: "NumMedia",
            ..
        })
    ));
    let body = format!("MessageSid=MM1&AccountSid={ACCOUNT_SID}&From=%2B1&To=%2B2");
    assert_eq!(
        IncomingSms::from_urlencoded(body.as_bytes()),
        Err(WebhookError::MissingField("Body"))
    );
}

#[test]
fn parses_voice_sdk_outgoing_call_with_custom_params() {
    let body = format!(
        "AccountSid={ACCOUNT_SID}&ApiVersion=2010-04-01&ApplicationSid=APcccccccccccccccccccccccccccccccc\
&CallSid={CALL_SID}&CallStatus=ringing&Called=&Caller=client%3Aalice&Direction=inbound&From=client%3Aalice\
&To=&agent=a1&to=%2B15555550100&foo=bar"
    );
    let call = ClientOutgoingCall::from_urlencoded(body.as_bytes()).expect("parses");
    assert_eq!(call.identity, "alice");
    assert_eq!(call.application_sid, "APcccccccccccccccccccccccccccccccc");
    assert_eq!(call.call.to, "");
    assert_eq!(call.param("to"), Some("+15555550100"));
    assert_eq!(call.param("foo"), Some("bar"));
    assert_eq!(call.params.len(), 3);
}

#[test]
fn voice_sdk_call_must_come_from_a_client() {
    let body = base("&ApplicationSid=AP1");
    assert_eq!(
        ClientOutgoingCall::from_urlencoded(body.as_bytes()),
        Err(WebhookError::InvalidValue {
            field: "From",
            value: "+14155551212".into()
        })
    );
}

/// A cheap deterministic stand-in for the fuzzer: random bodies made of the bytes that matter to
/// the form grammar must never panic any parser, only return errors.
#[test]
fn never_panics_on_arbitrary_bodies() {
    const ALPHABET: &[u8] = b"&=+%0aFzCallSidNumMedia1MediaUrl0\xc3\xa9\xff\x00 ";
    let keys = [
        "CallSid=",
        "AccountSid=",
        "From=",
        "To=",
        "CallStatus=",
        "NumMedia=",
        "MediaUrl0=",
        "Body=",
        "MessageSid=",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..5_000 {
        let mut body = Vec::new();
        for _ in 0..(next() % 12) {
            body.extend_from_slice(keys[(next() % keys.len() as u64) as usize].as_bytes());
            for _ in 0..(next() % 6) {
                body.push(ALPHABET[(next() % ALPHABET.len() as u64) as usize]);
            }
            body.push(b'&');
        }
        let _ = VoiceRequest::from_urlencoded(&body);
        let _ = CallStatusCallback::from_urlencoded(&body);
        let _ = DialActionRequest::from_urlencoded(&body);
        let _ = GatherResult::from_urlencoded(&body);
        let _ = RecordingStatusCallback::from_urlencoded(&body);
        let _ = StreamStatusCallback::from_urlencoded(&body);
        let _ = IncomingSms::from_urlencoded(&body);
        let _ = ClientOutgoingCall::from_urlencoded(&body);
        if let Ok(form) = Form::parse(&body) {
            assert_eq!(Form::parse(form.to_urlencoded().as_bytes()), Ok(form));
        }
    }
}
