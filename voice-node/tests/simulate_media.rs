//! The simulator's Media Stream against a tiny node: marks are echoed when their audio has
//! played, `clear` empties the playback queue and echoes pending marks at once, agent audio
//! gaps are counted as late frames, and `--load` runs many calls.

mod simulate_support;

use std::sync::Arc;
use std::time::Duration;

use simulate_support::*;
use voice_node::simulate::load::{LoadTarget, run_load, run_load_to};
use voice_node::simulate::media_call::{StreamStats, run_media_session};
use voice_node::simulate::twilio_http::{CallIdentity, TwilioHttp};
use voice_node::simulate::twiml_follow::{DialStatus, StreamEnd, StreamSpec};

async fn session_against(node: &FakeNode, hold: Duration) -> (StreamEnd, StreamStats) {
    let http = TwilioHttp::new(AUTH_TOKEN, "http://127.0.0.1:9", "http://127.0.0.1:9").unwrap();
    let call = CallIdentity::new("AC00000000000000000000000000000000", FROM, TO);
    let stream = StreamSpec {
        url: node.ws_url.clone(),
        ..StreamSpec::default()
    };
    let options = voice_node::simulate::media_call::SessionOptions {
        hold_for: Some(hold),
        stream_status_callbacks: false,
        ..Default::default()
    };
    let mut stats = StreamStats::default();
    let end = run_media_session(&http, &call, &stream, &[], &options, &mut stats).await;
    (end, stats)
}

#[tokio::test]
async fn clear_drops_queued_audio_and_echoes_pending_marks_immediately() {
    let node = start_node(AgentScript::MarksThenClear).await;
    let (end, stats) = session_against(&node, Duration::from_millis(1500)).await;
    assert_eq!(end, StreamEnd::CallerHungUp);
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    assert_eq!(stats.clears, 1);
    assert_eq!((stats.marks_received, stats.marks_echoed), (2, 2));
    // 2 s of audio queued, cleared after 300 ms: ~1.7 s never played.
    assert!(
        (1500..1800).contains(&stats.cleared_audio_ms),
        "{}",
        stats.cleared_audio_ms
    );
    let seen = node.seen.lock().unwrap();
    // Neither mark's audio had played (the first needed 1 s), so both came back right after
    // the clear, in order.
    let names: Vec<&str> = seen
        .echo_after_clear
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    for (name, after) in &seen.echo_after_clear {
        assert!(
            *after < Duration::from_millis(200),
            "{name} echoed {after:?} after clear"
        );
    }
    for (name, after) in &seen.mark_echo_after {
        assert!(
            *after < Duration::from_millis(500),
            "{name} echoed {after:?} after it was sent"
        );
    }
}

#[tokio::test]
async fn marks_wait_for_their_audio_to_play() {
    let node = start_node(AgentScript::GreetAndReply {
        greeting_frames: 50, // 1 s, sent all at once
        reply_frames: 1,
    })
    .await;
    let (_, stats) = session_against(&node, Duration::from_millis(1500)).await;
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    let seen = node.seen.lock().unwrap();
    let (name, after) = &seen.mark_echo_after[0];
    assert_eq!(name, "greeting");
    // Not before the 1 s of audio could have played; the upper bound only leaves room for a
    // loaded 2-core CI machine (this is a behaviour test, not a timing benchmark).
    assert!(
        (Duration::from_millis(980)..Duration::from_millis(2000)).contains(after),
        "echoed after {after:?}, expected ~1 s"
    );
    assert_eq!(stats.first_agent_audio_ms.map(|ms| ms < 500.0), Some(true));
    // 1.5 s on the line at 50 frames/s (a busy machine may delay the close a little).
    assert!(
        (70..=95).contains(&stats.frames_sent),
        "{}",
        stats.frames_sent
    );
}

#[tokio::test]
async fn a_gap_in_agent_audio_counts_as_late_frames() {
    let node = start_node(AgentScript::GappyUtterance { gap_ms: 120 }).await;
    let (_, gappy) = session_against(&node, Duration::from_millis(1200)).await;
    assert_eq!(gappy.frames_received, 20);
    // The 120 ms hole makes at least one frame late; scheduler noise on a loaded machine may add
    // a few, never most of the 20.
    assert!((1..=5).contains(&gappy.late_frames), "{gappy:?}");

    let smooth = start_node(AgentScript::GappyUtterance { gap_ms: 15 }).await;
    let (_, stats) = session_against(&smooth, Duration::from_millis(1200)).await;
    assert!(
        stats.late_frames < gappy.late_frames.max(2),
        "smooth audio: {stats:?}, gappy: {gappy:?}"
    );
}

#[tokio::test]
async fn load_runs_concurrent_calls_and_reports_percentiles() {
    let node = start_node(AgentScript::GreetAndReply {
        greeting_frames: 10,
        reply_frames: 5,
    })
    .await;
    let ws_url = node.ws_url.clone();
    let edge = start_edge(Arc::new(move |path, _| match path {
        "/telephony/inbound" => Some(twiml(&format!(
            r#"<Connect><Stream url="{ws_url}"><Parameter name="mode" value="receptionist"/></Stream></Connect>"#
        ))),
        _ => None,
    }))
    .await;
    let template = plan(&edge, Vec::new(), DialStatus::Completed);
    let report = run_load(
        template,
        20,
        Duration::from_secs(2),
        Duration::from_millis(500),
        Some(std::process::id()),
    )
    .await;
    assert_eq!(report.calls, 20);
    assert_eq!(report.completed, 20, "{report:#?}");
    assert_eq!(report.failed, 0, "{report:#?}");
    assert_eq!(report.handshake_failures, 0);
    assert!(
        report.peak_concurrent_streams > 10,
        "{}",
        report.peak_concurrent_streams
    );
    assert_eq!(report.latency_ms.handshake.count, 20);
    assert_eq!(report.latency_ms.first_agent_audio.count, 20);
    assert!(report.latency_ms.handshake.p99 >= report.latency_ms.handshake.p50);
    assert_eq!(report.marks_echoed, 20);
    assert_eq!(report.frames_received, 200);
    // ~2 s per call at 50 frames/s.
    assert!(
        (1900..=2100).contains(&report.frames_sent),
        "{}",
        report.frames_sent
    );
    assert_eq!(edge.hits_on("/telephony/status").len(), 20);
    assert!(report.simulator.cpu_s > 0.0);
    // Sampling this very process as "the node".
    let node = report.node.expect("node usage from /proc");
    assert!(node.rss_peak_mib > 1.0 && node.cpu_s >= 0.0, "{node:?}");
    // Every call had its own CallSid.
    let sids: std::collections::BTreeSet<String> = edge
        .hits_on("/telephony/inbound")
        .iter()
        .map(|h| h.form.get("CallSid").unwrap().to_owned())
        .collect();
    assert_eq!(sids.len(), 20);
}

#[tokio::test]
async fn load_can_target_a_websocket_directly_without_the_edge() {
    let node = start_node(AgentScript::GreetAndReply {
        greeting_frames: 10,
        reply_frames: 5,
    })
    .await;
    // An edge that answers nothing: every call must go straight to the stream URL.
    let edge = start_edge(Arc::new(|_, _| None)).await;
    let mut template = plan(&edge, Vec::new(), DialStatus::Completed);
    template.session.stream_status_callbacks = false;
    let target = LoadTarget::Stream(StreamSpec {
        url: node.ws_url.clone(),
        ..StreamSpec::default()
    });
    let report = run_load_to(
        template,
        target,
        5,
        Duration::from_secs(1),
        Duration::from_millis(200),
        None,
    )
    .await;
    assert_eq!(report.completed, 5, "{report:#?}");
    assert_eq!(report.failed, 0, "{report:#?}");
    assert_eq!(report.frames_received, 50);
    assert_eq!(report.marks_echoed, 5);
    assert!(edge.hits_on("/telephony/inbound").is_empty());
    assert!(edge.hits_on("/telephony/status").is_empty());
    // The handshake is still signed like Twilio's.
    let seen = node.seen.lock().unwrap();
    assert!(
        seen.signatures.iter().all(Option::is_some),
        "{:?}",
        seen.signatures
    );
}
