//! A node's REST update of a live call (`simulate --twilio-api-listen`) is followed the way
//! Twilio follows it: the stream gets `stop`, the new TwiML runs (a transfer's `<Dial action>`,
//! whose missed result the edge answers with a new stream), and the caller goes on with the
//! next sentence; `Status=completed` ends the call. The node's side is the real `TwilioClient`.

mod simulate_support;

use std::sync::Arc;
use std::time::Duration;

use simulate_support::*;
use voice_node::simulate::call::place_call;
use voice_node::simulate::call_control::CallControlServer;
use voice_node::simulate::twiml_follow::{CallEnd, DialStatus};
use voice_node::twilio_rest::{CallUpdate, TwilioClient};

fn stream_twiml(ws_url: &str) -> String {
    twiml(&format!(
        r#"<Connect><Stream url="{ws_url}"><Parameter name="mode" value="receptionist"/></Stream></Connect>"#
    ))
}

/// Waits until the fake node has seen `event`.
async fn wait_for_event(node: &FakeNode, event: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !node.seen.lock().unwrap().events.iter().any(|e| e == event) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node never saw {event}: {:?}",
            node.seen.lock().unwrap().events
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_rest_transfer_stops_the_stream_dials_and_the_caller_goes_on_after_a_missed_dial() {
    let node = start_node(AgentScript::GreetAndReply {
        greeting_frames: 10,
        reply_frames: 10,
    })
    .await;
    let ws_url = node.ws_url.clone();
    let edge = start_edge(Arc::new(move |path, _form| match path {
        // The missed transfer brings the caller back to the AI on a new stream, as the edge does.
        "/telephony/inbound" | "/telephony/dial-result" => Some(stream_twiml(&ws_url)),
        _ => None,
    }))
    .await;
    let mut plan = plan(
        &edge,
        vec![loud_utterance(20), loud_utterance(20)],
        DialStatus::NoAnswer,
    );
    // Room for the update to land between the reply and the caller's next sentence.
    plan.session.turn_gap = Duration::from_secs(2);
    let (server, control) = CallControlServer::start("127.0.0.1:0", &plan.call, AUTH_TOKEN)
        .await
        .unwrap();
    plan.session.call_control = Some(control);
    let call = plan.call.clone();
    let running = tokio::spawn(place_call(plan));

    // The first sentence was answered; now the node transfers the call.
    wait_for_event(&node, "mark:reply-1").await;
    let transfer = twiml(&format!(
        r#"<Dial action="{}/telephony/dial-result?transfer=1" method="POST" timeout="20"><Number>+15550109012</Number></Dial>"#,
        edge.base
    ));
    TwilioClient::new(
        &format!("http://{}", server.addr),
        &call.account_sid,
        AUTH_TOKEN,
    )
    .update_call(&call.call_sid, &CallUpdate::Twiml(transfer.clone()))
    .await
    .unwrap();
    let report = running.await.unwrap();

    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    assert_eq!(report.ended, CallEnd::CallerHungUp);
    assert_eq!(server.updates(), vec![format!("Twiml: {transfer}")]);
    let urls: Vec<&str> = report.twiml.iter().map(|d| d.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            format!("{}/telephony/inbound", edge.base).as_str(),
            "REST update (Twiml)",
            format!("{}/telephony/dial-result?transfer=1", edge.base).as_str(),
        ]
    );
    assert_eq!(report.dials.len(), 1);
    assert_eq!(
        (report.dials[0].to.as_str(), report.dials[0].status),
        ("+15550109012", "no-answer")
    );
    let dial = edge.hits_on("/telephony/dial-result");
    assert_eq!(dial.len(), 1);
    assert!(dial[0].path.ends_with("?transfer=1"), "{}", dial[0].path);
    assert_eq!(dial[0].form.get("DialCallStatus"), Some("no-answer"));
    assert_eq!(dial[0].form.get("CallSid"), Some(call.call_sid.as_str()));

    // Two streams: the first stopped by the update after one sentence, the second going on with
    // the second sentence (not the script from the top).
    assert_eq!(report.streams.len(), 2, "{:#?}", report.streams);
    assert_eq!(report.streams[0].ended_by, "rest update");
    assert_eq!(report.streams[0].utterances_spoken, 1);
    assert_eq!(report.streams[1].utterances_spoken, 1);
    assert_eq!(report.streams[1].ended_by, "caller");
    let events = node.seen.lock().unwrap().events.clone();
    let starts: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| *e == "start")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 2, "{events:?}");
    assert!(
        events[starts[0]..starts[1]].iter().any(|e| e == "stop"),
        "Twilio stops the first stream before the dial: {events:?}"
    );
}

#[tokio::test]
async fn a_rest_hang_up_stops_the_stream_and_ends_the_call() {
    let node = start_node(AgentScript::GreetAndReply {
        greeting_frames: 10,
        reply_frames: 10,
    })
    .await;
    let ws_url = node.ws_url.clone();
    let edge = start_edge(Arc::new(move |path, _form| {
        (path == "/telephony/inbound").then(|| stream_twiml(&ws_url))
    }))
    .await;
    let mut plan = plan(&edge, vec![loud_utterance(20)], DialStatus::Completed);
    plan.session.turn_gap = Duration::from_secs(2);
    let (server, control) = CallControlServer::start("127.0.0.1:0", &plan.call, AUTH_TOKEN)
        .await
        .unwrap();
    plan.session.call_control = Some(control);
    let call = plan.call.clone();
    let running = tokio::spawn(place_call(plan));

    wait_for_event(&node, "mark:greeting").await;
    TwilioClient::new(
        &format!("http://{}", server.addr),
        &call.account_sid,
        AUTH_TOKEN,
    )
    .hang_up(&call.call_sid)
    .await
    .unwrap();
    let report = running.await.unwrap();

    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    assert_eq!(report.ended, CallEnd::NodeHungUp);
    assert_eq!(report.streams.len(), 1);
    assert_eq!(report.streams[0].ended_by, "rest hang-up");
    assert_eq!(report.streams[0].utterances_spoken, 0);
    assert!(node.seen.lock().unwrap().events.iter().any(|e| e == "stop"));
    // Twilio reports the end of the call once it is over.
    let status = edge.hits_on("/telephony/status");
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].form.get("CallStatus"), Some("completed"));
}
