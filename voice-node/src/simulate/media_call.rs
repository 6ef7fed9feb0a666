//! The Media Stream, from Twilio's side: a signed WebSocket handshake, `connected` and `start`,
//! then 20 ms `media` frames at real-time pace for the whole call; agent audio is "played" by a
//! [`Playback`] model that echoes marks when their audio has played and empties on `clear`.
//!
//! Turn-taking: the caller waits for the agent's turn to finish (its marks echoed and
//! [`SessionOptions::turn_gap`] without agent audio), then says the next sentence. Turn latency
//! is measured from the end of the caller's speech (the last loud frame sent) to the first agent
//! audio frame received.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use shared::form::Form;
use shared::media_stream::{
    self, Connected, InboundMessage, Mark, Media, MediaFormat, MediaPayload, OutboundMessage,
    Start, Stop, Track,
};
use shared::mulaw::FRAME_BYTES;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use super::call_control::{CallControl, CallRedirect};
use super::caller_audio::{NoiseFloor, Utterance};
use super::ids;
use super::load::StreamGauge;
use super::playback::Playback;
use super::report::duration_ms;
use super::twilio_http::{CallIdentity, HttpMethod, TwilioHttp, iso8601_now};
use super::twiml_follow::{MediaLeg, StreamEnd, StreamSpec};

/// One frame of audio.
pub const FRAME: Duration = Duration::from_millis(20);

/// Agent audio arriving more than this after the buffer ran dry, mid-utterance, is late: the
/// caller heard a gap.
pub const LATE_AFTER: Duration = Duration::from_millis(20);

/// How the simulated caller behaves on the stream.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Agent silence (after its audio played and its marks came back) that ends its turn.
    pub turn_gap: Duration,
    /// How long to wait for the agent to start talking (greeting, or a reply) before moving on.
    pub reply_timeout: Duration,
    /// Load mode: stay on the line this long, then hang up, script done or not. `None`: hang up
    /// when the script is done.
    pub hold_for: Option<Duration>,
    /// Hang up (and report an error) after this long whatever happens.
    pub max_duration: Duration,
    /// Give up on the WebSocket handshake after this long.
    pub handshake_timeout: Duration,
    /// Post `<Stream statusCallback>` events (stream-started, stream-stopped) like Twilio.
    pub stream_status_callbacks: bool,
    /// Load mode: counts open streams across calls.
    pub gauge: Option<Arc<StreamGauge>>,
    /// REST updates of the live call (`--twilio-api-listen`): the stream stops on one, as
    /// Twilio's does, and the follower runs the new TwiML. `None`: nobody can update the call.
    pub call_control: Option<CallControl>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            turn_gap: Duration::from_millis(700),
            reply_timeout: Duration::from_secs(15),
            hold_for: None,
            max_duration: Duration::from_secs(180),
            handshake_timeout: Duration::from_secs(10),
            stream_status_callbacks: true,
            gauge: None,
            call_control: None,
        }
    }
}

/// What happened on one stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamStats {
    /// The `<Stream url>` connected to.
    pub url: String,
    /// The StreamSid the simulator made up.
    pub stream_sid: String,
    /// Upgrade request to `101 Switching Protocols`, ms.
    pub handshake_ms: Option<f64>,
    /// `start` sent to the first agent audio frame received, ms (the greeting's latency).
    pub first_agent_audio_ms: Option<f64>,
    /// `media` frames sent (caller audio and line noise).
    pub frames_sent: u64,
    /// Frames the simulator itself sent more than 20 ms behind schedule (an overloaded
    /// simulator, not the node's fault).
    pub send_late_frames: u64,
    /// Agent audio received, in 20 ms frames (bytes / 160).
    pub frames_received: u64,
    /// Agent `media` messages received.
    pub media_messages_received: u64,
    /// Agent frames that arrived more than 20 ms after the caller's buffer ran dry within an
    /// utterance: audible gaps.
    pub late_frames: u64,
    /// Marks the agent sent.
    pub marks_received: u64,
    /// Marks echoed back (after their audio played, or at a `clear`).
    pub marks_echoed: u64,
    /// `clear` messages the agent sent.
    pub clears: u64,
    /// Agent audio dropped by `clear` before it played, ms.
    pub cleared_audio_ms: u64,
    /// End of caller speech → first agent audio frame, per answered turn, ms.
    pub turn_latency_ms: Vec<u64>,
    /// Caller sentences spoken.
    pub utterances_spoken: usize,
    /// Sentences the agent did not answer within the reply timeout.
    pub unanswered_turns: usize,
    /// Who ended the stream and how.
    pub ended_by: String,
    /// Protocol breaches and failures seen on this stream.
    pub errors: Vec<String>,
    /// Of `errors`, the stream status callbacks the edge did not accept (see
    /// [`super::report::CallReport::callback_errors`]).
    pub callback_errors: usize,
}

/// The simulated caller as the TwiML follower's media leg.
#[derive(Debug)]
pub struct SimulatedCaller {
    /// For the stream status callbacks and the handshake's auth token.
    pub http: TwilioHttp,
    /// The sentences, in order.
    pub script: Arc<Vec<Utterance>>,
    /// Behaviour.
    pub options: SessionOptions,
    /// One entry per stream opened (a fallback may open a second).
    pub streams: Vec<StreamStats>,
    /// Sentences spoken on streams that a REST update ended: the caller stays on the line
    /// through a transfer, so the stream after it goes on with the next sentence.
    pub spoken_before: usize,
}

impl MediaLeg for SimulatedCaller {
    async fn run_stream(&mut self, call: &CallIdentity, stream: &StreamSpec) -> StreamEnd {
        let mut stats = StreamStats::default();
        let script = self.script.get(self.spoken_before..).unwrap_or_default();
        let end =
            run_media_session(&self.http, call, stream, script, &self.options, &mut stats).await;
        if matches!(end, StreamEnd::Redirected(_)) {
            self.spoken_before += stats.utterances_spoken;
        }
        self.streams.push(stats);
        end
    }
}

/// The `X-Twilio-Signature` of a Media Streams handshake: HMAC-SHA1 over the `wss://` URL exactly
/// as the TwiML wrote it, with no parameters (twilio.md §1.5).
pub fn handshake_signature(auth_token: &str, stream_url: &str) -> String {
    shared::signature::compute(auth_token, stream_url, &[])
}

/// Where the turn-taking is.
#[derive(Debug)]
enum Phase {
    /// Waiting for the agent to speak and finish.
    Listening {
        /// When the wait began.
        since: Instant,
        /// Whether agent audio arrived during this wait.
        heard_agent: bool,
    },
    /// Sending utterance `index`, frame `frame` next.
    Speaking { index: usize, frame: usize },
    /// Script done; the caller stays (load mode) or hangs up.
    Done,
}

/// Runs one stream to its end, filling `stats`.
pub async fn run_media_session(
    http: &TwilioHttp,
    call: &CallIdentity,
    stream: &StreamSpec,
    script: &[Utterance],
    options: &SessionOptions,
    stats: &mut StreamStats,
) -> StreamEnd {
    stats.url = stream.url.clone();
    stats.stream_sid = ids::sid("MZ");
    let end = session(http, call, stream, script, options, stats).await;
    stats.ended_by = match &end {
        StreamEnd::CallerHungUp => "caller".to_owned(),
        StreamEnd::NodeClosed => "node".to_owned(),
        StreamEnd::Failed(reason) => format!("failed: {reason}"),
        StreamEnd::Redirected(CallRedirect::Completed) => "rest hang-up".to_owned(),
        StreamEnd::Redirected(_) => "rest update".to_owned(),
    };
    end
}

async fn session(
    http: &TwilioHttp,
    call: &CallIdentity,
    stream: &StreamSpec,
    script: &[Utterance],
    options: &SessionOptions,
    stats: &mut StreamStats,
) -> StreamEnd {
    // --- handshake --------------------------------------------------------------------------
    let mut request = match stream.url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => return StreamEnd::Failed(format!("bad stream URL {:?}: {e}", stream.url)),
    };
    let signature = handshake_signature(http.auth_token(), &stream.url);
    let headers = request.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&signature) {
        headers.insert("X-Twilio-Signature", v);
    }
    headers.insert("User-Agent", HeaderValue::from_static("Twilio.TmeWs/1.0"));
    let handshake_started = Instant::now();
    let connected = tokio::time::timeout(
        options.handshake_timeout,
        tokio_tungstenite::connect_async(request),
    )
    .await;
    let ws = match connected {
        Err(_) => {
            return StreamEnd::Failed(format!(
                "handshake timed out after {:?}",
                options.handshake_timeout
            ));
        }
        Ok(Err(e)) => return StreamEnd::Failed(describe_handshake_error(e)),
        Ok(Ok((ws, _response))) => ws,
    };
    stats.handshake_ms = Some(duration_ms(handshake_started.elapsed()));
    if let Some(gauge) = &options.gauge {
        gauge.opened();
    }
    let (mut sink, mut incoming) = ws.split();

    // --- connected, start -------------------------------------------------------------------
    let stream_sid = stats.stream_sid.clone();
    let mut seq: u64 = 0;
    let mut next_seq = || {
        seq += 1;
        seq
    };
    let connected = InboundMessage::Connected(Connected {
        protocol: "Call".into(),
        version: "1.0.0".into(),
    });
    let start = InboundMessage::Start(Start {
        sequence_number: next_seq(),
        account_sid: call.account_sid.clone(),
        stream_sid: stream_sid.clone(),
        call_sid: call.call_sid.clone(),
        tracks: vec![Track::Inbound],
        custom_parameters: stream.parameters.clone(),
        media_format: MediaFormat {
            encoding: "audio/x-mulaw".into(),
            sample_rate: 8000,
            channels: 1,
        },
    });
    for message in [connected, start] {
        if let Err(e) = sink.send(Message::text(message.to_json())).await {
            return StreamEnd::Failed(format!("sending {}: {e}", message.event()));
        }
    }
    let started = Instant::now();
    let mut callbacks = Vec::new();
    if options.stream_status_callbacks {
        callbacks.push(stream_status(
            http,
            call,
            stream,
            &stream_sid,
            "stream-started",
        ));
    }

    // --- the call ---------------------------------------------------------------------------
    let mut playback = Playback::new();
    let mut noise = NoiseFloor::new(started.elapsed().as_nanos() as u64 ^ seq_seed(&call.call_sid));
    let mut ticker = tokio::time::interval_at(started, FRAME);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut phase = Phase::Listening {
        since: started,
        heard_agent: false,
    };
    let mut chunk: u64 = 0;
    let mut last_agent_audio: Option<Instant> = None;
    let mut awaiting_reply_since: Option<Instant> = None;
    let mut speech_end: Option<Instant> = None;
    let mut agent_utterance_open = false;
    let mut misaligned_reported = false;
    let mut echoes: Vec<String> = Vec::new();
    // Held for the whole stream: a REST update stops this stream, not a later one.
    let mut control = match &options.call_control {
        Some(control) => Some(control.lock().await),
        None => None,
    };

    let end = loop {
        tokio::select! {
            biased;
            frame = incoming.next() => {
                let now = Instant::now();
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        stats.errors.push("node sent a binary frame; Media Streams messages are JSON text".into());
                        continue;
                    }
                    Some(Ok(Message::Close(close))) => {
                        break node_closed(close);
                    }
                    Some(Ok(_)) => continue, // ping/pong: tungstenite answers pings itself
                    Some(Err(e)) => break StreamEnd::Failed(format!("socket error: {e}")),
                    None => break StreamEnd::Failed("socket closed without a close frame".into()),
                };
                let message = match media_stream::parse_outbound(&text) {
                    Ok(m) => m,
                    Err(e) => {
                        stats.errors.push(format!("node sent an invalid message ({e}): {}", clip(&text)));
                        continue;
                    }
                };
                let sid = match &message {
                    OutboundMessage::Media { stream_sid, .. }
                    | OutboundMessage::Mark { stream_sid, .. }
                    | OutboundMessage::Clear { stream_sid } => stream_sid.as_ref(),
                };
                if sid != stream_sid {
                    stats.errors.push(format!("node sent {} for stream {sid}, not {stream_sid}", message.event()));
                }
                match message {
                    OutboundMessage::Media { payload, .. } => {
                        let bytes = match payload.decode_to_vec() {
                            Ok(audio) => audio.len(),
                            Err(e) => {
                                stats.errors.push(format!("node sent undecodable audio: {e}"));
                                continue;
                            }
                        };
                        if !bytes.is_multiple_of(FRAME_BYTES) && !misaligned_reported {
                            misaligned_reported = true;
                            stats.errors.push(format!(
                                "node sent a media payload of {bytes} bytes; keep outbound audio in whole 160-byte frames"
                            ));
                        }
                        stats.media_messages_received += 1;
                        let arrival = playback.on_media(now, bytes);
                        if agent_utterance_open && arrival.underrun > LATE_AFTER {
                            stats.late_frames += 1;
                        }
                        agent_utterance_open = true;
                        stats.frames_received = playback.received_bytes() / FRAME_BYTES as u64;
                        if stats.first_agent_audio_ms.is_none() {
                            stats.first_agent_audio_ms = Some(duration_ms(now - started));
                        }
                        if let Some(end) = awaiting_reply_since.take() {
                            stats.turn_latency_ms.push((now - end).as_millis() as u64);
                        }
                        last_agent_audio = Some(now);
                        if let Phase::Listening { heard_agent, .. } = &mut phase {
                            *heard_agent = true;
                        }
                    }
                    OutboundMessage::Mark { name, .. } => {
                        stats.marks_received += 1;
                        agent_utterance_open = false;
                        if name.is_empty() {
                            stats.errors.push("node sent a mark without a name".into());
                        }
                        if let Some(name) = playback.on_mark(now, name.into_owned()) {
                            echoes.push(name);
                        }
                    }
                    OutboundMessage::Clear { .. } => {
                        stats.clears += 1;
                        agent_utterance_open = false;
                        echoes.extend(playback.on_clear(now));
                        if playback.is_playing(now) || playback.pending_marks() != 0 {
                            stats.errors.push("clear did not empty the playback queue".into());
                        }
                    }
                }
                if !echoes.is_empty()
                    && let Err(e) = send_marks(&mut sink, &mut echoes, &stream_sid, &mut next_seq, stats).await
                {
                    break StreamEnd::Failed(e);
                }
            }
            redirect = next_redirect(&mut control) => {
                // Twilio stops the stream before it runs the new TwiML (or ends the call).
                if let StreamEnd::Failed(e) = hang_up_stream(&mut sink, &mut incoming, call, &stream_sid, &mut next_seq).await {
                    stats.errors.push(format!("stopping the stream for a REST update: {e}"));
                }
                break StreamEnd::Redirected(redirect);
            }
            scheduled = ticker.tick() => {
                let now = Instant::now();
                if now.saturating_duration_since(scheduled) > FRAME {
                    stats.send_late_frames += 1;
                }
                echoes.extend(playback.due_marks(now));
                if !echoes.is_empty()
                    && let Err(e) = send_marks(&mut sink, &mut echoes, &stream_sid, &mut next_seq, stats).await
                {
                    break StreamEnd::Failed(e);
                }

                // The caller's next 20 ms.
                let noise_frame;
                let audio: &[u8] = match &mut phase {
                    Phase::Speaking { index, frame } => {
                        let utterance = &script[*index];
                        let audio = utterance.frame(*frame);
                        if *frame == utterance.last_speech_frame {
                            speech_end = Some(now + FRAME);
                        }
                        *frame += 1;
                        if *frame >= utterance.frames() {
                            stats.utterances_spoken += 1;
                            awaiting_reply_since = speech_end.take().or(Some(now + FRAME));
                            phase = Phase::Listening { since: now + FRAME, heard_agent: false };
                        }
                        audio
                    }
                    _ => {
                        noise_frame = noise.frame();
                        &noise_frame
                    }
                };
                chunk += 1;
                let media = InboundMessage::Media(Media {
                    sequence_number: next_seq(),
                    stream_sid: stream_sid.as_str().into(),
                    track: Track::Inbound,
                    chunk,
                    timestamp_ms: 102 + (chunk - 1) * 20,
                    payload: MediaPayload::encode(audio),
                });
                if let Err(e) = sink.send(Message::text(media.to_json())).await {
                    break StreamEnd::Failed(format!("sending media: {e}"));
                }
                stats.frames_sent += 1;

                // Turn-taking.
                if let Phase::Listening { since, heard_agent } = phase {
                    let agent_done = heard_agent
                        && playback.pending_marks() == 0
                        && !playback.is_playing(now)
                        && playback.play_end().is_none_or(|end| now - end >= options.turn_gap)
                        && last_agent_audio.is_none_or(|at| now - at >= options.turn_gap);
                    let gave_up = !heard_agent && now.saturating_duration_since(since) >= options.reply_timeout;
                    if gave_up {
                        if stats.utterances_spoken == 0 {
                            stats.errors.push(format!(
                                "the agent said nothing within {:?} of the stream start",
                                options.reply_timeout
                            ));
                        } else {
                            stats.unanswered_turns += 1;
                        }
                        awaiting_reply_since = None;
                    }
                    if agent_done || gave_up {
                        let next = stats.utterances_spoken;
                        phase = if next < script.len() {
                            Phase::Speaking { index: next, frame: 0 }
                        } else {
                            Phase::Done
                        };
                    }
                }
                let elapsed = now - started;
                let hang_up = match options.hold_for {
                    Some(hold) => elapsed >= hold,
                    None => matches!(phase, Phase::Done),
                };
                if elapsed >= options.max_duration && !hang_up {
                    stats.errors.push(format!("the call was still going after {:?}; hanging up", options.max_duration));
                    break hang_up_stream(&mut sink, &mut incoming, call, &stream_sid, &mut next_seq).await;
                }
                if hang_up {
                    break hang_up_stream(&mut sink, &mut incoming, call, &stream_sid, &mut next_seq).await;
                }
            }
        }
    };
    stats.cleared_audio_ms = playback.cleared_bytes() / 8;
    if let Some(gauge) = &options.gauge {
        gauge.closed();
    }
    if options.stream_status_callbacks {
        callbacks.push(stream_status(
            http,
            call,
            stream,
            &stream_sid,
            "stream-stopped",
        ));
    }
    for callback in callbacks {
        if let Ok(Err(e)) = callback.await {
            stats.errors.push(e);
            stats.callback_errors += 1;
        }
    }
    end
}

/// The next REST update of the call; never, without call control.
async fn next_redirect(
    control: &mut Option<
        tokio::sync::MutexGuard<'_, tokio::sync::mpsc::UnboundedReceiver<CallRedirect>>,
    >,
) -> CallRedirect {
    match control {
        Some(inbox) => match inbox.recv().await {
            Some(redirect) => redirect,
            // The endpoint is gone: no more updates can come.
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// A seed from the CallSid so concurrent calls' noise differs.
fn seq_seed(call_sid: &str) -> u64 {
    call_sid.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

async fn send_marks<S>(
    sink: &mut S,
    echoes: &mut Vec<String>,
    stream_sid: &str,
    next_seq: &mut impl FnMut() -> u64,
    stats: &mut StreamStats,
) -> Result<(), String>
where
    S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
{
    for name in echoes.drain(..) {
        let echo = InboundMessage::Mark(Mark {
            sequence_number: next_seq(),
            stream_sid: stream_sid.to_owned(),
            name,
        });
        sink.send(Message::text(echo.to_json()))
            .await
            .map_err(|e| format!("echoing a mark: {e}"))?;
        stats.marks_echoed += 1;
    }
    Ok(())
}

/// `stop`, a close frame, and a short wait for the node's close.
async fn hang_up_stream<S, R>(
    sink: &mut S,
    incoming: &mut R,
    call: &CallIdentity,
    stream_sid: &str,
    next_seq: &mut impl FnMut() -> u64,
) -> StreamEnd
where
    S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
    R: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let stop = InboundMessage::Stop(Stop {
        sequence_number: next_seq(),
        stream_sid: stream_sid.to_owned(),
        account_sid: call.account_sid.clone(),
        call_sid: call.call_sid.clone(),
    });
    if let Err(e) = sink.send(Message::text(stop.to_json())).await {
        return StreamEnd::Failed(format!("sending stop: {e}"));
    }
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    // Read until the node's close (or give up): late agent frames after stop are not errors.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(message)) = incoming.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    StreamEnd::CallerHungUp
}

fn node_closed(close: Option<CloseFrame>) -> StreamEnd {
    match close {
        None => StreamEnd::NodeClosed,
        Some(frame) if matches!(frame.code, CloseCode::Normal | CloseCode::Away) => {
            StreamEnd::NodeClosed
        }
        Some(frame) => StreamEnd::Failed(format!(
            "node closed the stream with code {} ({})",
            u16::from(frame.code),
            frame.reason
        )),
    }
}

fn describe_handshake_error(e: tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            let replay = response
                .headers()
                .get("fly-replay")
                .and_then(|v| v.to_str().ok())
                .map(|v| format!(" (fly-replay: {v}; no Fly proxy here to replay it)"))
                .unwrap_or_default();
            let body = response
                .body()
                .as_deref()
                .map(|b| clip(&String::from_utf8_lossy(b)))
                .unwrap_or_default();
            format!("handshake refused with HTTP {status}{replay} {body}")
                .trim_end()
                .to_owned()
        }
        tungstenite::Error::Url(e) => format!(
            "stream URL not usable: {e} (this build speaks ws:// and plain wss:// is not supported)"
        ),
        other => format!("handshake failed: {other}"),
    }
}

fn clip(text: &str) -> String {
    if text.len() <= 200 {
        text.to_owned()
    } else {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &text[..end])
    }
}

/// Posts one `<Stream statusCallback>` event in the background (Twilio does not wait for it).
fn stream_status(
    http: &TwilioHttp,
    call: &CallIdentity,
    stream: &StreamSpec,
    stream_sid: &str,
    event: &'static str,
) -> tokio::task::JoinHandle<Result<(), String>> {
    let Some(url) = stream.status_callback.clone() else {
        return tokio::spawn(async { Ok(()) });
    };
    let method = HttpMethod::from_attr(stream.status_callback_method.as_deref());
    let form = Form::from_pairs([
        ("AccountSid", call.account_sid.as_str()),
        ("CallSid", call.call_sid.as_str()),
        ("StreamEvent", event),
        ("StreamName", stream.name.as_deref().unwrap_or(stream_sid)),
        ("StreamSid", stream_sid),
        ("Timestamp", &iso8601_now()),
    ]);
    let http = http.clone();
    tokio::spawn(async move {
        match http.send(method, &url, &form).await {
            Ok(answer) if answer.is_success() => Ok(()),
            Ok(answer) => Err(format!(
                "stream status callback ({event}) answered HTTP {}",
                answer.status
            )),
            Err(e) => Err(format!("stream status callback ({event}): {e:#}")),
        }
    })
}
