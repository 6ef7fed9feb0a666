//! One simulated call from dial-in to hang-up: the voice webhook and its TwiML, the media
//! stream, the final status callback, and (single-call mode) the node's record of the call.

use std::sync::Arc;
use std::time::Duration;

use shared::form::Form;
use tokio::time::Instant;

use super::caller_audio::Utterance;
use super::media_call::{SessionOptions, SimulatedCaller};
use super::node_record::{self, NodeCallRecord};
use super::report::{CallReport, DialReport};
use super::twilio_http::{CallIdentity, HttpMethod, TwilioHttp, rfc2822_now};
use super::twiml_follow::{CallEnd, CallerBehaviour, FollowResult, follow_call};

/// The edge path of the call status callback.
pub const STATUS_PATH: &str = "/telephony/status";

/// Where to read the node's record of a call, and with what key.
#[derive(Debug, Clone)]
pub struct RecordSource {
    /// `EDGE_SHARED_SECRET`.
    pub secret: Vec<u8>,
    /// A node base URL overriding the one derived from the stream URL.
    pub node_override: Option<String>,
    /// How long to wait for the node to have an outcome.
    pub wait: Duration,
}

/// Everything one call needs.
#[derive(Debug, Clone)]
pub struct CallPlan {
    /// Signs and sends webhooks.
    pub http: TwilioHttp,
    /// Who calls whom.
    pub call: CallIdentity,
    /// What the caller says.
    pub script: Arc<Vec<Utterance>>,
    /// Dial outcome and voicemail length.
    pub behaviour: CallerBehaviour,
    /// Stream behaviour.
    pub session: SessionOptions,
    /// `None`: do not read the node's record (load mode), else where and how.
    pub record: Option<RecordSource>,
    /// Error when `record` cannot be read because `EDGE_SHARED_SECRET` is unset.
    pub record_unavailable: Option<String>,
}

/// Places the call and reports it.
pub async fn place_call(plan: CallPlan) -> CallReport {
    let started = Instant::now();
    let mut caller = SimulatedCaller {
        http: plan.http.clone(),
        script: plan.script.clone(),
        options: plan.session.clone(),
        streams: Vec::new(),
        spoken_before: 0,
    };
    let followed = follow_call(&plan.http, &plan.call, plan.behaviour, &mut caller).await;
    let duration = started.elapsed();
    let mut errors = followed.errors.clone();
    let mut callback_errors = 0;
    for stream in &caller.streams {
        errors.extend(stream.errors.iter().cloned());
        callback_errors += stream.callback_errors;
    }
    // Twilio reports the end of the call once it is over (a call rejected before answering
    // never ran TwiML past <Reject>, but still gets its final status).
    if let Err(e) = post_final_status(&plan.http, &plan.call, followed.ended, duration).await {
        errors.push(e);
        callback_errors += 1;
    }

    let node_url = plan
        .record
        .as_ref()
        .and_then(|r| r.node_override.clone())
        .or_else(|| {
            followed
                .last_stream
                .as_ref()
                .and_then(|s| node_record::node_base_from_stream_url(&s.url))
        });
    let mut record: Option<NodeCallRecord> = None;
    if let (Some(source), Some(node)) = (&plan.record, &node_url) {
        match node_record::fetch(node, &source.secret, &plan.call.call_sid, source.wait).await {
            Ok(r) => record = Some(r),
            Err(e) => errors.push(format!("reading the node's record of the call: {e:#}")),
        }
    } else if let (Some(reason), Some(_)) = (&plan.record_unavailable, &node_url) {
        errors.push(reason.clone());
    }

    let turn_latency_ms = caller
        .streams
        .iter()
        .flat_map(|s| s.turn_latency_ms.iter().copied())
        .collect();
    let node_turn_latency_ms = record
        .as_ref()
        .map(|r| r.turn_latency_ms.clone())
        .unwrap_or_default();
    let node_errors = record
        .as_ref()
        .map(|r| r.errors.clone())
        .unwrap_or_default();
    let (mode, outcome, outcome_source, transcript, screening) = match record {
        Some(r) => {
            let mode = r.mode.or_else(|| fallback_mode(&followed));
            let (outcome, source) = match r.outcome {
                Some(o) => (Some(o), "node"),
                None => (Some(fallback_outcome(&followed)), "simulator"),
            };
            (mode, outcome, source, r.transcript, r.screening)
        }
        None => (
            fallback_mode(&followed),
            Some(fallback_outcome(&followed)),
            "simulator",
            Vec::new(),
            None,
        ),
    };
    CallReport {
        call_sid: plan.call.call_sid.clone(),
        mode,
        outcome,
        transcript,
        screening,
        turn_latency_ms,
        errors,
        callback_errors,
        outcome_source,
        ended: followed.ended,
        from: plan.call.from.clone(),
        to: plan.call.to.clone(),
        duration_s: (duration.as_secs_f64() * 10.0).round() / 10.0,
        node_url,
        node_turn_latency_ms,
        node_errors,
        twiml_said: followed.said.clone(),
        dials: followed
            .dials
            .iter()
            .map(|(to, status)| DialReport {
                to: to.clone(),
                status,
            })
            .collect(),
        twiml: followed.documents.clone(),
        streams: caller.streams,
        call_updates: Vec::new(),
    }
}

/// The call's mode as far as the simulator can tell.
fn fallback_mode(followed: &FollowResult) -> Option<String> {
    followed
        .stream_mode
        .clone()
        .or_else(|| (!followed.dials.is_empty()).then(|| "forward".to_owned()))
}

/// The outcome as far as the simulator can tell (a `shared::domain::CallOutcome` spelling).
fn fallback_outcome(followed: &FollowResult) -> String {
    let answered_dial = followed.dials.iter().any(|(_, s)| *s == "completed");
    match followed.ended {
        CallEnd::ApplicationError => "failed",
        CallEnd::Rejected => "rejected",
        CallEnd::AfterVoicemail => "voicemail",
        _ if answered_dial && followed.last_stream.is_none() => "transferred",
        _ if !followed.dials.is_empty() && followed.last_stream.is_none() => "missed",
        _ => "completed",
    }
    .to_owned()
}

/// `POST /telephony/status` with the final `CallStatus` and durations (twilio.md §2.3).
pub async fn post_final_status(
    http: &TwilioHttp,
    call: &CallIdentity,
    ended: CallEnd,
    duration: Duration,
) -> Result<(), String> {
    let status = ended.final_call_status();
    let mut form: Form = call.voice_params(status);
    form.push("CallbackSource", "call-progress-events");
    if status == "completed" {
        let secs = duration.as_secs().max(1);
        form.push("CallDuration", secs.to_string());
        form.push("Duration", secs.div_ceil(60).to_string());
    }
    form.push("SequenceNumber", "0");
    form.push("Timestamp", rfc2822_now());
    let url = http.public_url(STATUS_PATH);
    match http.send(HttpMethod::Post, &url, &form).await {
        Ok(answer) if answer.is_success() => Ok(()),
        Ok(answer) => Err(format!(
            "status callback {url} answered HTTP {}: {}",
            answer.status,
            answer.body.chars().take(200).collect::<String>()
        )),
        Err(e) => Err(format!("status callback: {e:#}")),
    }
}
