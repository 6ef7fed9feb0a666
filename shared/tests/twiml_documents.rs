//! The exact TwiML documents of twilio.md §3.3 (twilio-python 9.13.0 `to_xml()` output), rebuilt
//! with the typed builder and compared byte-for-byte.

use shared::twiml::{
    CallEvent, Client, Connect, Dial, DialRecord, Gather, GatherInput, Message, MessagingResponse,
    Method, Number, Pause, Play, Record, RecordingEvent, Redirect, Reject, RejectReason, Say,
    SpeechTimeout, Start, Stop, Stream, Track, VoiceResponse, escape_attribute, escape_text,
};

const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

#[test]
fn say_pause_play_with_text_escaping() {
    let xml = VoiceResponse::new()
        .say(
            Say::new(r#"Hello & welcome <caller> "quoted" 'single'"#)
                .voice("Polly.Joanna")
                .language("en-US"),
        )
        .pause(Pause::new().length(1))
        .play(Play::new("https://example.com/a.mp3").loop_count(2))
        .to_xml();
    assert_eq!(
        xml,
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say language="en-US" voice="Polly.Joanna">Hello &amp; welcome &lt;caller&gt; "quoted" 'single'</Say><Pause length="1" /><Play loop="2">https://example.com/a.mp3</Play></Response>"#
    );
}

#[test]
fn gather_with_nested_say_then_redirect() {
    let xml = VoiceResponse::new()
        .gather(
            Gather::new()
                .input([GatherInput::Speech, GatherInput::Dtmf])
                .action("/gather?x=1&y=2")
                .method(Method::Post)
                .timeout(5)
                .speech_timeout(SpeechTimeout::Auto)
                .num_digits(1)
                .hints("yes, no, agent")
                .language("en-US")
                .action_on_empty_result(true)
                .say(Say::new("Say something")),
        )
        .redirect(Redirect::new("/voice").method(Method::Post))
        .to_xml();
    assert_eq!(
        xml,
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="/gather?x=1&amp;y=2" actionOnEmptyResult="true" hints="yes, no, agent" input="speech dtmf" language="en-US" method="POST" numDigits="1" speechTimeout="auto" timeout="5"><Say>Say something</Say></Gather><Redirect method="POST">/voice</Redirect></Response>"#
    );
}

#[test]
fn dial_number_with_status_events_and_client() {
    let xml = VoiceResponse::new()
        .dial(
            Dial::new()
                .action("/dial-done")
                .answer_on_bridge(true)
                .caller_id("+15005550006")
                .record(DialRecord::RecordFromAnswerDual)
                .timeout(20)
                .number(
                    Number::new("+14155551212")
                        .status_callback("/num-status")
                        .status_callback_event([
                            CallEvent::Initiated,
                            CallEvent::Ringing,
                            CallEvent::Answered,
                            CallEvent::Completed,
                        ]),
                )
                .client(Client::new("alice")),
        )
        .to_xml();
    assert_eq!(
        xml,
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial action="/dial-done" answerOnBridge="true" callerId="+15005550006" record="record-from-answer-dual" timeout="20"><Number statusCallback="/num-status" statusCallbackEvent="initiated ringing answered completed">+14155551212</Number><Client>alice</Client></Dial></Response>"#
    );
}

#[test]
fn connect_stream_with_parameters_escapes_attribute_values() {
    let xml = VoiceResponse::new()
        .connect(
            Connect::new().action("/after-stream").stream(
                Stream::new("wss://example.com/media")
                    .status_callback("https://example.com/stream-status")
                    .parameter("callerNumber", "+14155551212")
                    .parameter("lang", "en & fr"),
            ),
        )
        .to_xml();
    assert_eq!(
        xml,
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect action="/after-stream"><Stream statusCallback="https://example.com/stream-status" url="wss://example.com/media"><Parameter name="callerNumber" value="+14155551212" /><Parameter name="lang" value="en &amp; fr" /></Stream></Connect></Response>"#
    );
}

#[test]
fn start_fork_stream_then_say_and_pause() {
    let xml = VoiceResponse::new()
        .start(
            Start::new().stream(
                Stream::new("wss://example.com/fork")
                    .name("fork1")
                    .track(Track::BothTracks),
            ),
        )
        .say(Say::new("stream started"))
        .pause(Pause::seconds(60))
        .to_xml();
    assert_eq!(
        xml,
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Start><Stream name="fork1" track="both_tracks" url="wss://example.com/fork" /></Start><Say>stream started</Say><Pause length="60" /></Response>"#
    );
}

#[test]
fn record_voicemail_then_hangup() {
    let xml = VoiceResponse::new()
        .record(
            Record::new()
                .action("/recorded")
                .finish_on_key("#")
                .max_length(30)
                .play_beep(true)
                .recording_status_callback("/rec-status")
                .recording_status_callback_event([
                    RecordingEvent::InProgress,
                    RecordingEvent::Completed,
                    RecordingEvent::Absent,
                ])
                .timeout(5)
                .transcribe(false),
        )
        .hangup()
        .to_xml();
    assert_eq!(
        xml,
        r##"<?xml version="1.0" encoding="UTF-8"?><Response><Record action="/recorded" finishOnKey="#" maxLength="30" playBeep="true" recordingStatusCallback="/rec-status" recordingStatusCallbackEvent="in-progress completed absent" timeout="5" transcribe="false" /><Hangup /></Response>"##
    );
}

#[test]
fn reject_busy() {
    let xml = VoiceResponse::new()
        .reject(Reject::new().reason(RejectReason::Busy))
        .to_xml();
    assert_eq!(
        xml,
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy" /></Response>"#
    );
}

#[test]
fn empty_response_is_self_closing() {
    assert_eq!(
        VoiceResponse::new().to_xml(),
        r#"<?xml version="1.0" encoding="UTF-8"?><Response />"#
    );
    assert_eq!(
        MessagingResponse::new().to_xml(),
        r#"<?xml version="1.0" encoding="UTF-8"?><Response />"#
    );
}

#[test]
fn message_with_inline_body_and_attributes() {
    let xml = MessagingResponse::new()
        .message(
            Message::new("Thanks! <3 & bye")
                .to("+15558675310")
                .from("+15017122661")
                .action("/msg-status"),
        )
        .to_xml();
    assert_eq!(
        xml,
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message action="/msg-status" from="+15017122661" to="+15558675310">Thanks! &lt;3 &amp; bye</Message></Response>"#
    );
}

#[test]
fn message_with_body_and_media_children() {
    let xml = MessagingResponse::new()
        .message(
            Message::empty()
                .body("Body text")
                .media("https://example.com/cat.jpg"),
        )
        .to_xml();
    assert_eq!(
        xml,
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message><Body>Body text</Body><Media>https://example.com/cat.jpg</Media></Message></Response>"#
    );
}

#[test]
fn parameter_attribute_escaping_matches_python_example() {
    let xml = VoiceResponse::new()
        .connect(
            Connect::new().stream(Stream::new("wss://e/m").parameter("q", "a\"b<c>d&e'f\nnl\ttab")),
        )
        .to_xml();
    assert!(
        xml.contains(r#"<Parameter name="q" value="a&quot;b&lt;c&gt;d&amp;e'f&#10;nl&#09;tab" />"#),
        "{xml}"
    );
    assert_eq!(
        escape_attribute("a\"b<c>d&e'f\nnl\ttab"),
        "a&quot;b&lt;c&gt;d&amp;e'f&#10;nl&#09;tab"
    );
}

#[test]
fn document_starts_with_declaration_and_has_no_newlines() {
    let xml = VoiceResponse::new()
        .say(Say::new("line one\nline two"))
        .dial(
            Dial::to_number("+14155551212")
                .time_limit(600)
                .hangup_on_star(true)
                .method(Method::Get),
        )
        .stop(Stop::new().stream(Stream::named("fork1")))
        .to_xml();
    assert!(xml.starts_with(DECL));
    assert_eq!(
        &xml[DECL.len()..],
        "<Response><Say>line one\nline two</Say><Dial hangupOnStar=\"true\" method=\"GET\" timeLimit=\"600\">+14155551212</Dial><Stop><Stream name=\"fork1\" /></Stop></Response>"
    );
}

#[test]
fn control_characters_are_dropped_from_text_and_attributes() {
    let xml = VoiceResponse::new()
        .say(Say::new("bad\u{0}\u{8}text\u{1b}").voice("a\u{1}b"))
        .to_xml();
    assert!(
        xml.ends_with(r#"<Response><Say voice="ab">badtext</Say></Response>"#),
        "{xml}"
    );
    assert_eq!(escape_text("\u{c}ok\u{fffe}"), "ok");
}
