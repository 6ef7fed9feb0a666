//! The call session driven over channels: typed events in, typed messages out, no sockets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use shared::domain::{CallMode, CallOutcome};
use shared::media_stream::{MediaFormat, Start, Track};
use shared::mulaw::FRAME_BYTES;
use shared::stream_token::{StreamClaims, issue};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::*;
use crate::agent::greeting_recorder::{
    GreetingRecorderFactory, PromptVoice, Prompts, RecorderConfig,
};
use crate::agent::{AgentHandle, AgentOutput, CallAgent, SpeechAudio, TurnTimings, UtteranceId};
use crate::drain::Drain;
use crate::media::AudioChunk;

const SECRET: &[u8] = b"test edge secret, 32 bytes long!";
const NODE: &str = "node-a";
const CALL: &str = "CA00000000000000000000000000000001";
const TENANT: &str = "6f1c2a4e-8b7d-4c1e-9a3f-2d5e7b9c1a01";

/// What the session sent to "Twilio".
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    Media(Box<[u8; FRAME_BYTES]>),
    Mark(String),
    Clear,
    Close(u16, String),
}

struct ChannelSink(mpsc::UnboundedSender<Sent>);

impl MediaSink for ChannelSink {
    fn bind_stream(&mut self, _stream_sid: &str) {}

    async fn send(&mut self, message: Outgoing<'_>) -> Result<(), SinkError> {
        let sent = match message {
            Outgoing::Media(frame) => Sent::Media(Box::new(*frame)),
            Outgoing::Mark(name) => Sent::Mark(name.to_owned()),
            Outgoing::Clear => Sent::Clear,
            Outgoing::Close { code, reason } => Sent::Close(code, reason.to_owned()),
        };
        self.0
            .send(sent)
            .map_err(|_| SinkError("test sink dropped".into()))
    }
}

/// An agent that reports every event to the test and hands the test its output.
struct ProbeAgent {
    events: mpsc::UnboundedSender<AgentEvent>,
    outputs: mpsc::UnboundedSender<AgentOutput>,
}

impl CallAgent for ProbeAgent {
    async fn on_event(&mut self, event: AgentEvent, out: &AgentOutput) {
        if matches!(event, AgentEvent::Started(_)) {
            let _ = self.outputs.send(out.clone());
        }
        let _ = self.events.send(event);
    }
}

struct ProbeFactory {
    events: mpsc::UnboundedSender<AgentEvent>,
    outputs: mpsc::UnboundedSender<AgentOutput>,
}

impl AgentFactory for ProbeFactory {
    fn start(&self, _call: &CallStarted, metrics: Arc<Metrics>) -> AgentHandle {
        AgentHandle::spawn(
            ProbeAgent {
                events: self.events.clone(),
                outputs: self.outputs.clone(),
            },
            metrics,
        )
    }
}

struct Harness {
    events: mpsc::Sender<StreamEvent>,
    sent: mpsc::UnboundedReceiver<Sent>,
    writes: mpsc::UnboundedReceiver<Write>,
    agent_events: mpsc::UnboundedReceiver<AgentEvent>,
    agent_outputs: mpsc::UnboundedReceiver<AgentOutput>,
    metrics: Arc<Metrics>,
    drain: Drain,
    task: JoinHandle<SessionSummary>,
}

fn harness_with(agents: Option<Arc<dyn AgentFactory>>) -> Harness {
    let metrics = Arc::new(Metrics::new());
    let (store, writes) = WriteQueue::detached(Arc::clone(&metrics));
    let (agent_events_tx, agent_events) = mpsc::unbounded_channel();
    let (outputs_tx, agent_outputs) = mpsc::unbounded_channel();
    let agents = agents.unwrap_or_else(|| {
        Arc::new(ProbeFactory {
            events: agent_events_tx,
            outputs: outputs_tx,
        })
    });
    let drain = Drain::new();
    let ctx = Arc::new(SessionContext {
        node_id: NODE.into(),
        region: "local".into(),
        edge_shared_secret: SECRET.to_vec(),
        agents,
        store,
        metrics: Arc::clone(&metrics),
        drain: drain.subscribe(),
        pacing: Pacing::default(),
        twilio: None,
        webhook_base_url: None,
        turn_seqs: crate::media::turn_seq::TurnSeqs::new(None),
    });
    let (events_tx, events_rx) = mpsc::channel(64);
    let (sent_tx, sent) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(events_rx, ChannelSink(sent_tx), ctx));
    Harness {
        events: events_tx,
        sent,
        writes,
        agent_events,
        agent_outputs,
        metrics,
        drain,
        task,
    }
}

fn harness() -> Harness {
    harness_with(None)
}

fn claims() -> StreamClaims {
    StreamClaims {
        call_sid: CALL.into(),
        tenant_id: TENANT.into(),
        node_id: NODE.into(),
        mode: CallMode::Receptionist,
        expires_at: now_unix() + 120,
    }
}

fn start_with(token: Option<String>) -> StreamEvent {
    let mut custom_parameters = BTreeMap::new();
    if let Some(token) = token {
        custom_parameters.insert("token".to_owned(), token);
    }
    custom_parameters.insert("tenant".to_owned(), TENANT.to_owned());
    StreamEvent::Start(Box::new(Start {
        sequence_number: 1,
        account_sid: "AC1".into(),
        stream_sid: "MZ1".into(),
        call_sid: CALL.into(),
        tracks: vec![Track::Inbound],
        custom_parameters,
        media_format: MediaFormat {
            encoding: "audio/x-mulaw".into(),
            sample_rate: 8000,
            channels: 1,
        },
    }))
}

fn valid_start() -> StreamEvent {
    start_with(Some(issue(&claims(), SECRET)))
}

fn media(byte: u8) -> StreamEvent {
    StreamEvent::Media {
        audio: AudioChunk::new(&[byte; FRAME_BYTES]),
        timestamp_ms: 20,
        received_at: Instant::now(),
    }
}

fn clip(frames: usize) -> SpeechAudio {
    SpeechAudio::Clip(Arc::from(vec![0x42u8; frames * FRAME_BYTES]))
}

impl Harness {
    async fn send(&self, event: StreamEvent) {
        self.events.send(event).await.expect("session alive");
    }

    async fn started(&mut self) -> AgentOutput {
        self.send(StreamEvent::Connected).await;
        self.send(valid_start()).await;
        let out = self.agent_outputs.recv().await.expect("agent started");
        assert!(matches!(
            self.agent_events.recv().await,
            Some(AgentEvent::Started(_))
        ));
        out
    }

    async fn next_sent(&mut self) -> Sent {
        tokio::time::timeout(Duration::from_secs(30), self.sent.recv())
            .await
            .expect("something sent in time")
            .expect("sink open")
    }

    /// Media frames until the next non-media message, which is returned with the count.
    async fn frames_until_other(&mut self) -> (usize, Sent) {
        let mut n = 0;
        loop {
            match self.next_sent().await {
                Sent::Media(_) => n += 1,
                other => return (n, other),
            }
        }
    }

    async fn next_agent_event(&mut self) -> AgentEvent {
        tokio::time::timeout(Duration::from_secs(30), self.agent_events.recv())
            .await
            .expect("agent event in time")
            .expect("agent alive")
    }

    fn drain_writes(&mut self) -> Vec<Write> {
        let mut out = Vec::new();
        while let Ok(w) = self.writes.try_recv() {
            out.push(w);
        }
        out
    }

    async fn finish(self) -> (SessionSummary, Vec<Write>, Vec<Sent>) {
        let Harness {
            task,
            mut writes,
            mut sent,
            ..
        } = self;
        let summary = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("session ended in time")
            .expect("session did not panic");
        let mut all_writes = Vec::new();
        while let Ok(w) = writes.try_recv() {
            all_writes.push(w);
        }
        let mut all_sent = Vec::new();
        while let Ok(s) = sent.try_recv() {
            all_sent.push(s);
        }
        (summary, all_writes, all_sent)
    }
}

#[tokio::test]
async fn valid_token_starts_the_call_and_stop_ends_it() {
    let mut h = harness();
    let _out = h.started().await;
    h.send(StreamEvent::Stop).await;
    let ended = h.next_agent_event().await;
    assert_eq!(format!("{ended:?}"), "Ended(Stopped)");
    let metrics = Arc::clone(&h.metrics);
    let (summary, writes, sent) = h.finish().await;
    assert_eq!(summary.call_sid.as_deref(), Some(CALL));
    assert_eq!(summary.reason, EndReason::Stopped);
    assert_eq!(summary.outcome, Some(CallOutcome::Abandoned));
    assert_eq!(sent, vec![Sent::Close(1000, "stream stopped".into())]);
    let Write::CallStarted(row) = &writes[0] else {
        panic!("first write is the call row: {writes:?}")
    };
    assert_eq!(
        (row.call_sid.as_str(), row.tenant_id.as_str(), row.mode),
        (CALL, TENANT, CallMode::Receptionist)
    );
    assert!(
        matches!(writes.last(), Some(Write::CallEnded(end)) if end.call_over && end.outcome == Some(CallOutcome::Abandoned))
    );
    assert_eq!(metrics.active_calls.get(), 0);
}

#[tokio::test]
async fn refuses_missing_expired_tampered_foreign_and_misaddressed_tokens() {
    let mut expired = claims();
    expired.expires_at = now_unix() - 1;
    let mut other_node = claims();
    other_node.node_id = "node-b".into();
    let mut other_call = claims();
    other_call.call_sid = "CA_other".into();
    let good = issue(&claims(), SECRET);
    let tampered = {
        let (payload, tag) = good.split_once('.').unwrap();
        let mut tag = tag.to_owned();
        let flipped = if tag.starts_with('A') { "B" } else { "A" };
        tag.replace_range(0..1, flipped);
        format!("{payload}.{tag}")
    };
    let cases = [
        (None, "stream token missing"),
        (Some(issue(&expired, SECRET)), "stream token expired"),
        (Some(tampered), "signature does not match"),
        (
            Some(issue(&claims(), b"another edge's secret")),
            "signature does not match",
        ),
        (Some(issue(&other_node, SECRET)), "for node node-b"),
        (Some(issue(&other_call, SECRET)), "for another call"),
        (Some("garbage".to_owned()), "malformed"),
    ];
    for (token, expected) in cases {
        let mut h = harness();
        h.send(StreamEvent::Connected).await;
        h.send(start_with(token)).await;
        let metrics = Arc::clone(&h.metrics);
        let no_agent = h.agent_events.try_recv().is_err();
        let (summary, writes, sent) = h.finish().await;
        let [Sent::Close(1008, reason)] = sent.as_slice() else {
            panic!("{expected}: expected one 1008 close, got {sent:?}")
        };
        assert!(
            reason.contains(expected),
            "{reason:?} should say {expected:?}"
        );
        assert!(summary.call_sid.is_none());
        assert!(
            writes.is_empty(),
            "a refused stream writes nothing: {writes:?}"
        );
        assert!(no_agent);
        assert_eq!(metrics.stream_tokens_refused.get(), 1);
        assert_eq!(metrics.active_calls.get(), 0);
    }
}

#[tokio::test]
async fn media_before_start_and_protocol_violations_close_with_a_reason() {
    let h = harness();
    h.send(media(0xFF)).await;
    let (_, _, sent) = h.finish().await;
    assert_eq!(sent, vec![Sent::Close(1008, "media before start".into())]);

    let mut h = harness();
    let _out = h.started().await;
    h.send(StreamEvent::Closed(CloseCause::Protocol(
        crate::media::ProtocolViolation::TooLarge { limit: 65536 },
    )))
    .await;
    let (summary, writes, sent) = h.finish().await;
    assert_eq!(
        sent,
        vec![Sent::Close(1009, "frame exceeds 65536 bytes".into())]
    );
    assert_eq!(summary.outcome, Some(CallOutcome::Failed));
    assert!(
        writes
            .iter()
            .any(|w| matches!(w, Write::Event(e) if e.kind == "session_error"))
    );
}

#[tokio::test]
async fn media_and_dtmf_reach_the_agent_in_order() {
    let mut h = harness();
    let _out = h.started().await;
    h.send(media(0x11)).await;
    h.send(StreamEvent::Dtmf('5')).await;
    h.send(media(0x22)).await;
    let AgentEvent::Audio(first) = h.next_agent_event().await else {
        panic!("audio first")
    };
    assert_eq!(first.audio.as_slice(), &[0x11; FRAME_BYTES]);
    assert!(matches!(h.next_agent_event().await, AgentEvent::Dtmf('5')));
    let AgentEvent::Audio(second) = h.next_agent_event().await else {
        panic!("audio third")
    };
    assert_eq!(second.audio.as_slice()[0], 0x22);
    h.send(StreamEvent::Stop).await;
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn utterances_are_framed_marked_and_reported_played_when_the_mark_returns() {
    let mut h = harness();
    let out = h.started().await;
    let id = out.say(
        clip(10),
        "hello",
        TurnTimings {
            speech_end_ms: Some(0),
            ..TurnTimings::default()
        },
    );
    let (frames, after) = h.frames_until_other().await;
    assert_eq!(frames, 10);
    assert_eq!(after, Sent::Mark(id.mark_name()));
    match h.next_agent_event().await {
        AgentEvent::Playing {
            id: playing,
            first_frame_ms,
        } => {
            assert_eq!(playing, id);
            assert!(first_frame_ms < 1_000, "{first_frame_ms}");
        }
        other => panic!("expected Playing at the first frame, got {other:?}"),
    }
    h.send(StreamEvent::Mark(id.mark_name())).await;
    match h.next_agent_event().await {
        AgentEvent::Played {
            id: played,
            interrupted,
        } => {
            assert_eq!((played, interrupted), (id, false));
        }
        other => panic!("expected Played, got {other:?}"),
    }
    let writes = h.drain_writes();
    let turn = writes
        .iter()
        .find_map(|w| match w {
            Write::Turn(t) => Some(t),
            _ => None,
        })
        .expect("agent turn written at its first frame");
    assert_eq!(
        (turn.speaker, turn.text.as_str(), turn.seq),
        (Speaker::Agent, "hello", 0)
    );
    assert!(turn.timings.first_audio_frame_ms.is_some());
    assert!(writes.iter().any(|w| matches!(
        w,
        Write::AgentTurnEnded {
            seq: 0,
            interrupted: false,
            ..
        }
    )));
    assert_eq!(h.metrics.turn_latency.count(), 1);
    h.send(StreamEvent::Stop).await;
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn barge_in_sends_clear_and_drops_the_queued_frames() {
    let mut h = harness();
    let out = h.started().await;
    let first = out.say(clip(200), "a long answer", TurnTimings::default());
    let second = out.say(clip(50), "and more", TurnTimings::default());
    // Let the burst and a few paced frames go out (and take the rest of their batch).
    for _ in 0..8 {
        assert!(matches!(h.next_sent().await, Sent::Media(_)));
    }
    let mut sent_before = 8;
    while let Ok(sent) = h.sent.try_recv() {
        assert!(matches!(sent, Sent::Media(_)), "{sent:?}");
        sent_before += 1;
    }
    out.send(AgentAction::Interrupt);
    let (frames_before_clear, clear) = h.frames_until_other().await;
    assert_eq!(clear, Sent::Clear);
    assert!(
        frames_before_clear <= 1,
        "{frames_before_clear} frames after the interrupt"
    );
    // Both utterances are reported cut short, the first with its turn marked interrupted.
    let mut played = Vec::new();
    while played.len() < 2 {
        if let AgentEvent::Played { id, interrupted } = h.next_agent_event().await {
            played.push((id, interrupted));
        }
    }
    assert_eq!(played, vec![(first, true), (second, true)]);
    // Nothing more is sent: the queue is empty.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(h.sent.try_recv().is_err());
    // All but what went out (and at most one more frame) of both utterances' 250.
    assert!(h.metrics.frames_dropped.get() + sent_before + 1 >= 250);
    assert_eq!(h.metrics.clears_sent.get(), 1);
    let writes = h.drain_writes();
    assert!(writes.iter().any(|w| matches!(
        w,
        Write::AgentTurnEnded {
            seq: 0,
            interrupted: true,
            ..
        }
    )));
    assert!(
        writes
            .iter()
            .any(|w| matches!(w, Write::Event(e) if e.kind == "barge_in"))
    );
    // A later utterance plays normally.
    let third = out.say(clip(3), "sorry, go ahead", TurnTimings::default());
    let (frames, mark) = h.frames_until_other().await;
    assert_eq!((frames, mark), (3, Sent::Mark(third.mark_name())));
    h.send(StreamEvent::Stop).await;
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn ten_seconds_of_speech_is_paced_without_late_frames() {
    let mut h = harness();
    let out = h.started().await;
    let started = Instant::now();
    let id = out.say(clip(500), "ten seconds", TurnTimings::default());
    let (frames, mark) = h.frames_until_other().await;
    assert_eq!((frames, mark), (500, Sent::Mark(id.mark_name())));
    let took = started.elapsed();
    // 10 s of audio leaves in 10 s minus the 300 ms lead: slightly faster than real time.
    assert!(
        took >= Duration::from_millis(9_600) && took <= Duration::from_millis(9_800),
        "{took:?}"
    );
    assert_eq!(h.metrics.frames_out.get(), 500);
    assert_eq!(h.metrics.frames_late.get(), 0);
    h.send(StreamEvent::Stop).await;
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn hangup_waits_for_the_goodbye_to_play_then_ends_the_call() {
    let mut h = harness();
    let out = h.started().await;
    let bye = out.say(clip(5), "goodbye", TurnTimings::default());
    out.send(AgentAction::Hangup(CallOutcome::MessageTaken));
    let (frames, mark) = h.frames_until_other().await;
    assert_eq!((frames, mark), (5, Sent::Mark(bye.mark_name())));
    // Not over until the goodbye was heard.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!h.task.is_finished());
    h.send(StreamEvent::Mark(bye.mark_name())).await;
    let (summary, writes, sent) = h.finish().await;
    assert_eq!(summary.reason, EndReason::AgentHangup);
    assert_eq!(summary.outcome, Some(CallOutcome::MessageTaken));
    assert_eq!(sent.last(), Some(&Sent::Close(1000, "call ended".into())));
    assert!(
        matches!(writes.last(), Some(Write::CallEnded(end)) if end.outcome == Some(CallOutcome::MessageTaken))
    );
}

#[tokio::test(start_paused = true)]
async fn a_transfer_without_a_twilio_account_is_reported_to_the_agent_and_the_call_goes_on() {
    let mut h = harness();
    let out = h.started().await;
    let hold = out.say(clip(5), "please hold", TurnTimings::default());
    out.send(AgentAction::Transfer(crate::agent::TransferRequest {
        to: "+15550001111".into(),
        department: "Sales".into(),
    }));
    let (frames, mark) = h.frames_until_other().await;
    assert_eq!((frames, mark), (5, Sent::Mark(hold.mark_name())));
    // The transfer starts only once "please hold" was heard.
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.send(StreamEvent::Mark(hold.mark_name())).await;
    let reason = loop {
        match h.agent_events.recv().await.expect("agent events") {
            AgentEvent::TransferFailed { reason } => break reason,
            _ => continue,
        }
    };
    assert!(reason.contains("TWILIO_ACCOUNT_SID"), "{reason}");
    // The call goes on: the agent can still speak, and it is not hung up.
    let more = out.say(clip(3), "let me take a message", TurnTimings::default());
    let (frames, mark) = h.frames_until_other().await;
    assert_eq!((frames, mark), (3, Sent::Mark(more.mark_name())));
    assert!(!h.task.is_finished());
    h.send(StreamEvent::Stop).await;
    let (summary, writes, _) = h.finish().await;
    assert_eq!(summary.reason, EndReason::Stopped);
    let kinds: Vec<&str> = writes
        .iter()
        .filter_map(|w| match w {
            Write::Event(e) => Some(e.kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["transfer_attempt", "transfer_failed"]);
}

#[test]
fn transfer_twiml_dials_numbers_and_sip_with_the_dial_result_action() {
    let number = crate::agent::TransferRequest {
        to: "+15550001111".into(),
        department: "Sales".into(),
    };
    assert_eq!(
        transfer_twiml(&number, Some("https://edge.example/")),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Dial \
         action=\"https://edge.example/telephony/dial-result?transfer=1\" method=\"POST\" \
         timeout=\"20\"><Number>+15550001111</Number></Dial></Response>"
    );
    let sip = crate::agent::TransferRequest {
        to: "sip:billing@pbx.example.com".into(),
        department: "Billing".into(),
    };
    assert!(transfer_twiml(&sip, None).ends_with(
        "<Dial timeout=\"20\"><Sip>sip:billing@pbx.example.com</Sip></Dial></Response>"
    ));
}

#[tokio::test]
async fn node_shutdown_closes_a_live_call_with_1001() {
    let mut h = harness();
    let _out = h.started().await;
    h.drain.close_remaining();
    let (summary, _, sent) = h.finish().await;
    assert_eq!(summary.reason, EndReason::NodeShutdown);
    assert_eq!(sent, vec![Sent::Close(1001, "node shutting down".into())]);
}

#[tokio::test(start_paused = true)]
async fn greeting_recorder_greets_records_untranscribed_turns_and_hangs_up_on_hash() {
    let factory = GreetingRecorderFactory {
        prompts: Arc::new(Prompts::new(PromptVoice::Tone)),
        config: RecorderConfig::default(),
    };
    let mut h = harness_with(Some(Arc::new(factory)));
    h.send(StreamEvent::Connected).await;
    h.send(valid_start()).await;
    // The greeting plays and is marked.
    let (greeting_frames, mark) = h.frames_until_other().await;
    assert!(greeting_frames > 10);
    let Sent::Mark(greeting) = mark else {
        panic!("{mark:?}")
    };
    h.send(StreamEvent::Mark(greeting)).await;
    // The caller speaks for 1 s, then is silent: one turn, then an acknowledgment.
    for i in 0..100 {
        h.send(media(if i < 50 { 0x90 } else { 0xFF })).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ack_frames, ack_mark) = h.frames_until_other().await;
    assert!(
        ack_frames > 10 && matches!(ack_mark, Sent::Mark(_)),
        "{ack_frames} {ack_mark:?}"
    );
    let writes = h.drain_writes();
    let caller_turn = writes
        .iter()
        .find_map(|w| match w {
            Write::Turn(t) if t.speaker == Speaker::Caller => Some(t),
            _ => None,
        })
        .expect("caller turn");
    assert!(
        caller_turn
            .text
            .starts_with("[caller speech, 1.0 s — not transcribed"),
        "{}",
        caller_turn.text
    );
    h.send(StreamEvent::Dtmf('#')).await;
    let (bye_frames, bye_mark) = h.frames_until_other().await;
    assert!(bye_frames > 10);
    let Sent::Mark(bye) = bye_mark else { panic!() };
    h.send(StreamEvent::Mark(bye)).await;
    let (summary, _, _) = h.finish().await;
    assert_eq!(summary.reason, EndReason::AgentHangup);
    assert_eq!(summary.outcome, Some(CallOutcome::MessageTaken));
}

#[tokio::test(start_paused = true)]
async fn greeting_recorder_barges_in_when_the_caller_talks_over_it() {
    let factory = GreetingRecorderFactory {
        prompts: Arc::new(Prompts::new(PromptVoice::Tone)),
        config: RecorderConfig::default(),
    };
    let mut h = harness_with(Some(Arc::new(factory)));
    h.send(StreamEvent::Connected).await;
    h.send(valid_start()).await;
    assert!(matches!(h.next_sent().await, Sent::Media(_)));
    // 300 ms of loud speech over the greeting.
    let mut saw_clear = false;
    for _ in 0..15 {
        h.send(media(0x90)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        while let Ok(sent) = h.sent.try_recv() {
            saw_clear |= sent == Sent::Clear;
        }
    }
    assert!(saw_clear, "no clear within 300 ms of caller speech");
    assert_eq!(h.metrics.clears_sent.get(), 1);
    h.send(StreamEvent::Stop).await;
    h.finish().await;
}

#[test]
fn utterance_ids_round_trip_through_mark_names() {
    let id = UtteranceId(42);
    assert_eq!(UtteranceId::from_mark_name(&id.mark_name()), Some(id));
    assert_eq!(UtteranceId::from_mark_name("utt-x"), None);
}
