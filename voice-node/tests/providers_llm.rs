//! The OpenAI-compatible chat client against a local server speaking chat completions over SSE:
//! streamed text, tool calls split across chunks, retries, timeouts, malformed streams, and the
//! screening structured output.

mod provider_fakes;

use std::time::{Duration, Instant};

use provider_fakes::{FakeHttp, Reply, chunk, completion, text_reply};
use serde_json::json;
use shared::domain::ScreeningLabel;
use tokio::sync::mpsc;
use voice_node::providers::llm_openai::{ChatRole, LlmAction, Urgency};
use voice_node::providers::{ChatMessage, OpenAiChat, ProviderError, RetryPolicy};

const PATH: &str = "/v1/chat/completions";

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        first_byte: Duration::from_millis(300),
        total: Duration::from_secs(2),
    }
}

async fn client(fake: &FakeHttp, key: Option<&str>) -> OpenAiChat {
    let mut chat = OpenAiChat::new(
        voice_node::providers::http_client(),
        &format!("{}/v1", fake.base),
        key.map(str::to_owned),
        "fake-model",
    );
    chat.policy = policy();
    chat
}

fn question() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new(ChatRole::System, "You are a receptionist."),
        ChatMessage::new(ChatRole::User, "When do you open?"),
    ]
}

#[tokio::test]
async fn streams_text_deltas_in_order_and_assembles_the_reply() {
    let fake = FakeHttp::start().await;
    // One chunk split in the middle of its JSON, across two writes.
    let split = chunk(json!({ "content": "nine " }));
    let (a, b) = split.split_at(25);
    let mut chunks = vec![
        chunk(json!({ "role": "assistant", "content": "" })),
        chunk(json!({ "content": "We open at " })),
        a.to_owned(),
        b.to_owned(),
        ": comment lines are ignored\n\n".to_owned(),
        chunk(json!({ "content": "on weekdays." })),
    ];
    chunks.push("data: [DONE]\n\n".into());
    fake.on(PATH, vec![Reply::Sse(chunks)]).await;
    let chat = client(&fake, Some("sk-test")).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reply = chat.chat(&question(), Some(&tx), |_| {}).await.unwrap();
    assert_eq!(reply.text, "We open at nine on weekdays.");
    assert!(reply.actions.is_empty());
    drop(tx);
    let mut deltas = Vec::new();
    while let Some(d) = rx.recv().await {
        deltas.push(d);
    }
    assert_eq!(deltas, vec!["We open at ", "nine ", "on weekdays."]);

    let seen = fake.seen().await;
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.headers["authorization"], "Bearer sk-test");
    assert_eq!(req.body["stream"], true);
    assert_eq!(req.body["model"], "fake-model");
    assert_eq!(req.body["messages"][1]["role"], "user");
    let tools: Vec<&str> = req.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, vec!["transfer_call", "end_call", "capture_lead"]);
}

#[tokio::test]
async fn tool_calls_split_across_chunks_become_typed_actions() {
    let fake = FakeHttp::start().await;
    let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut function = json!({ "arguments": args });
        if let Some(name) = name {
            function["name"] = json!(name);
        }
        let mut c = json!({ "index": index, "function": function });
        if let Some(id) = id {
            c["id"] = json!(id);
            c["type"] = json!("function");
        }
        chunk(json!({ "tool_calls": [c] }))
    };
    let chunks = vec![
        chunk(json!({ "role": "assistant", "content": "Let me note that." })),
        call(0, Some("call_a"), Some("capture_lead"), ""),
        call(0, None, None, "{\"name\": \"Ann Lee\", \"callback_"),
        call(
            0,
            None,
            None,
            "number\": \"+15550100\", \"reason\": \"leaking pipe\",",
        ),
        call(1, Some("call_b"), Some("end_call"), "{\"reason\":"),
        call(0, None, None, " \"urgency\": \"high\"}"),
        call(1, None, None, "\"lead taken\"}"),
        format!(
            "data: {}\n\n",
            json!({ "choices": [{ "index": 0, "delta": {}, "finish_reason": "tool_calls" }] })
        ),
        "data: [DONE]\n\n".into(),
    ];
    fake.on(PATH, vec![Reply::Sse(chunks)]).await;
    let reply = client(&fake, None)
        .await
        .chat(&question(), None, |_| {})
        .await
        .unwrap();
    assert_eq!(reply.text, "Let me note that.");
    assert_eq!(
        reply.actions,
        vec![
            LlmAction::CaptureLead {
                name: "Ann Lee".into(),
                callback_number: "+15550100".into(),
                reason: "leaking pipe".into(),
                urgency: Urgency::High,
            },
            LlmAction::EndCall {
                reason: "lead taken".into()
            },
        ]
    );
    // No key configured (a local llama.cpp): no Authorization header.
    assert!(fake.seen().await[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn retries_server_errors_and_rate_limits_then_succeeds() {
    let fake = FakeHttp::start().await;
    fake.on(
        PATH,
        vec![
            Reply::Status(500, "boom".into()),
            Reply::Status(429, "slow down".into()),
            text_reply("Hello there."),
        ],
    )
    .await;
    let mut retried = Vec::new();
    let reply = client(&fake, Some("k"))
        .await
        .chat(&question(), None, |e| retried.push(e.to_string()))
        .await
        .unwrap();
    assert_eq!(reply.text, "Hello there.");
    assert_eq!(fake.seen().await.len(), 3);
    assert_eq!(retried.len(), 2);
    assert!(
        retried[0].contains("500") && retried[0].contains("boom"),
        "{retried:?}"
    );
    assert!(retried[1].contains("429"), "{retried:?}");
}

#[tokio::test]
async fn gives_up_after_the_attempts_and_never_retries_a_bad_key() {
    let fake = FakeHttp::start().await;
    fake.on(PATH, vec![Reply::Status(503, "down".into())]).await;
    let err = client(&fake, Some("k"))
        .await
        .chat(&question(), None, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Status { status: 503, .. }),
        "{err}"
    );
    assert_eq!(fake.seen().await.len(), 3);

    let fake = FakeHttp::start().await;
    fake.on(PATH, vec![Reply::Status(401, "Incorrect API key".into())])
        .await;
    let err = client(&fake, Some("bad"))
        .await
        .chat(&question(), None, |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Incorrect API key"), "{err}");
    assert_eq!(fake.seen().await.len(), 1);
}

#[tokio::test]
async fn a_hanging_provider_times_out_without_retrying() {
    let fake = FakeHttp::start().await;
    fake.on(PATH, vec![Reply::Hang]).await;
    let t0 = Instant::now();
    let err = client(&fake, None)
        .await
        .chat(&question(), None, |_| panic!("timeouts are not retried"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::FirstByteTimeout(_)), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());

    // Headers and some text, then a stall: the total timeout ends it.
    let fake = FakeHttp::start().await;
    fake.on(
        PATH,
        vec![Reply::SseThenHang(vec![chunk(json!({ "content": "We" }))])],
    )
    .await;
    let t0 = Instant::now();
    let err = client(&fake, None)
        .await
        .chat(&question(), None, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::TotalTimeout(_)), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn malformed_streams_are_errors_that_name_the_problem() {
    let fake = FakeHttp::start().await;
    fake.on(
        PATH,
        vec![Reply::Sse(vec![
            chunk(json!({ "content": "ok" })),
            "data: {not json\n\n".into(),
            "data: [DONE]\n\n".into(),
        ])],
    )
    .await;
    let err = client(&fake, None)
        .await
        .chat(&question(), None, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Protocol(_)), "{err}");
    assert!(err.to_string().contains("not JSON"), "{err}");
    assert_eq!(
        fake.seen().await.len(),
        1,
        "protocol errors are not retried"
    );

    let fake = FakeHttp::start().await;
    fake.on(
        PATH,
        vec![Reply::Sse(vec![chunk(json!({ "content": "cut" }))])],
    )
    .await;
    let err = client(&fake, None)
        .await
        .chat(&question(), None, |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("[DONE]"), "{err}");

    let fake = FakeHttp::start().await;
    fake.on(
        PATH,
        vec![Reply::Sse(vec![format!(
            "data: {}\n\n",
            json!({ "error": { "message": "model overloaded" } })
        )])],
    )
    .await;
    let err = client(&fake, None)
        .await
        .chat(&question(), None, |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("model overloaded"), "{err}");
}

#[tokio::test]
async fn screening_uses_a_strict_json_schema_and_validates_the_verdict() {
    let fake = FakeHttp::start().await;
    fake.on(
        PATH,
        vec![
            completion(
                r#"{"label":"spam","intent":"car warranty robocall","confidence":0.93,"rationale":"recorded offer"}"#,
            ),
            completion(r#"{"label":"spam","intent":"x"}"#),
        ],
    )
    .await;
    let chat = client(&fake, Some("k")).await;
    let verdict = chat
        .screen("This is about your car's extended warranty", |_| {})
        .await
        .unwrap();
    assert_eq!(verdict.label, ScreeningLabel::Spam);
    assert_eq!(verdict.intent, "car warranty robocall");
    assert!((verdict.confidence - 0.93).abs() < 1e-6);

    let req = &fake.seen().await[0];
    assert_eq!(req.body["response_format"]["type"], "json_schema");
    assert_eq!(req.body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(
        req.body["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"],
        json!(["legit", "marketing", "spam", "unknown"])
    );
    assert_eq!(
        req.body["messages"][1]["content"],
        "This is about your car's extended warranty"
    );

    let err = chat.screen("hello", |_| {}).await.unwrap_err();
    assert!(err.to_string().contains("schema"), "{err}");
}
