//! An OpenAI-compatible chat-completions client (OpenAI, Groq, llama.cpp's server, vLLM): the
//! same `POST {base}/chat/completions` with a bearer key (optional for local servers).
//!
//! - Replies stream (`stream: true`): Server-Sent Events whose `data:` lines hold
//!   `chat.completion.chunk` objects, ending with `data: [DONE]`. Text deltas are forwarded as
//!   they come; tool calls arrive as fragments of `delta.tool_calls` (the id and name first, the
//!   JSON arguments in pieces) and are assembled per `index`, then typed as [`LlmAction`]s.
//! - Screening is a structured output (`response_format: json_schema`, strict) validated into
//!   [`ScreeningVerdict`]: a model that answers outside the schema is an error, never a guess.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::domain::ScreeningLabel;
use tokio::sync::mpsc;

use super::{ProviderError, RetryPolicy, join_url};
use crate::agent::ScreeningVerdict;

/// A chat-completions endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiChat {
    /// Pooled HTTP client.
    client: reqwest::Client,
    /// `https://api.openai.com/v1`, `https://api.groq.com/openai/v1`, `http://127.0.0.1:8080/v1`.
    base_url: String,
    /// Bearer key; `None` for local servers that need none.
    api_key: Option<String>,
    /// `gpt-4o-mini`, `llama-3.1-8b-instant`, …
    model: String,
    /// Timeouts and retries.
    pub policy: RetryPolicy,
}

/// Who said a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    /// Instructions.
    System,
    /// The caller.
    User,
    /// The agent.
    Assistant,
}

/// One message of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// Who.
    pub role: ChatRole,
    /// What.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role`.
    pub fn new(role: ChatRole, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
        }
    }
}

/// How urgent a captured lead is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    /// Whenever convenient.
    Low,
    /// Today.
    Normal,
    /// Now.
    High,
}

/// What the model asked the call to do (its tool calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmAction {
    /// Put the caller through to a department.
    Transfer {
        /// The department's name as the tenant configured it.
        department: String,
    },
    /// End the call.
    EndCall {
        /// Why (for the call record).
        reason: String,
    },
    /// Record a lead for a callback.
    CaptureLead {
        /// The caller's name.
        name: String,
        /// Where to call back.
        callback_number: String,
        /// What it is about.
        reason: String,
        /// How soon.
        urgency: Urgency,
    },
}

/// A complete model reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LlmReply {
    /// The text to speak (may be empty when the model only called tools).
    pub text: String,
    /// The tool calls, in the order the model made them.
    pub actions: Vec<LlmAction>,
}

/// The tools offered to the model, in the chat-completions `tools` format.
pub fn tools() -> Value {
    let function = |name: &str, description: &str, properties: Value, required: &[&str]| {
        json!({
            "type": "function",
            "function": {
                "name": name,
                "description": description,
                "parameters": {
                    "type": "object",
                    "properties": properties,
                    "required": required,
                    "additionalProperties": false,
                },
            },
        })
    };
    json!([
        function(
            "transfer_call",
            "Transfer the caller to a department of the business.",
            json!({ "department": { "type": "string", "description": "Department name" } }),
            &["department"],
        ),
        function(
            "end_call",
            "End the call once the caller is done.",
            json!({ "reason": { "type": "string" } }),
            &["reason"],
        ),
        function(
            "capture_lead",
            "Record the caller as a lead so someone calls them back.",
            json!({
                "name": { "type": "string" },
                "callback_number": { "type": "string" },
                "reason": { "type": "string" },
                "urgency": { "type": "string", "enum": ["low", "normal", "high"] },
            }),
            &["name", "callback_number", "reason", "urgency"],
        ),
    ])
}

/// The JSON schema of a screening verdict (strict structured output).
fn screening_format() -> Value {
    json!({
        "type": "json_schema",
        "json_schema": {
            "name": "screening_verdict",
            "strict": true,
            "schema": {
                "type": "object",
                "properties": {
                    "label": { "type": "string", "enum": ["legit", "marketing", "spam", "unknown"] },
                    "intent": { "type": "string", "description": "One line: why the caller calls" },
                    "confidence": { "type": "number", "minimum": 0, "maximum": 1 },
                    "rationale": { "type": "string" },
                },
                "required": ["label", "intent", "confidence", "rationale"],
                "additionalProperties": false,
            },
        },
    })
}

/// The screening instructions.
const SCREENING_PROMPT: &str = "You screen phone calls for a small business owner. Classify the \
caller's introduction: legit (a real person with a real reason to reach the owner), marketing \
(sales, offers, surveys), spam (robocalls, scams) or unknown (not enough to tell). Give a one-line \
intent, a confidence between 0 and 1 and a short rationale.";

impl OpenAiChat {
    /// A client for `model` at `base_url`.
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        api_key: Option<String>,
        model: &str,
    ) -> Self {
        OpenAiChat {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.filter(|k| !k.is_empty()),
            model: model.to_owned(),
            policy: RetryPolicy::default(),
        }
    }

    /// The model name (for logs and event rows).
    pub fn model(&self) -> &str {
        &self.model
    }

    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        let request = self
            .client
            .post(join_url(&self.base_url, "/chat/completions"))
            .json(body);
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// Sends `body`, returning the response once its headers arrived with a success status.
    async fn send(&self, body: &Value) -> Result<reqwest::Response, ProviderError> {
        self.policy.send(self.post(body)).await
    }

    /// Streams a reply to `messages` with the call tools offered. Text deltas go to `deltas`
    /// as they arrive (when given); the assembled reply is returned at `[DONE]`.
    /// `on_retry` hears about retried failures.
    pub async fn chat(
        &self,
        messages: &[ChatMessage],
        deltas: Option<&mpsc::UnboundedSender<String>>,
        on_retry: impl FnMut(&ProviderError),
    ) -> Result<LlmReply, ProviderError> {
        let body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "tools": tools(),
            "tool_choice": "auto",
        });
        // Retrying is safe: the errors retried (connect, 429, 5xx) all happen before the first
        // delta; a stream broken midway is a protocol error and is not retried.
        self.policy
            .run(|| self.stream_once(&body, deltas), on_retry)
            .await
    }

    async fn stream_once(
        &self,
        body: &Value,
        deltas: Option<&mpsc::UnboundedSender<String>>,
    ) -> Result<LlmReply, ProviderError> {
        let response = self.send(body).await?;
        let mut stream = response.bytes_stream();
        let mut sse = SseDecoder::default();
        let mut assembly = ReplyAssembly::default();
        let mut first = true;
        loop {
            let chunk = if first {
                first = false;
                self.policy
                    .first_byte(async { Ok(stream.next().await) })
                    .await?
            } else {
                stream.next().await
            };
            let Some(chunk) = chunk else {
                for data in sse.finish() {
                    if assembly.push(&data, deltas)? {
                        return assembly.finish();
                    }
                }
                return Err(ProviderError::Protocol(
                    "the stream ended before `data: [DONE]`".into(),
                ));
            };
            let chunk = chunk.map_err(|e| ProviderError::Protocol(format!("stream broke: {e}")))?;
            for data in sse.push(&chunk) {
                if assembly.push(&data, deltas)? {
                    return assembly.finish();
                }
            }
        }
    }

    /// Classifies a caller's introduction with a structured output.
    pub async fn screen(
        &self,
        introduction: &str,
        on_retry: impl FnMut(&ProviderError),
    ) -> Result<ScreeningVerdict, ProviderError> {
        let body = json!({
            "model": self.model,
            "messages": [
                ChatMessage::new(ChatRole::System, SCREENING_PROMPT),
                ChatMessage::new(ChatRole::User, introduction),
            ],
            "response_format": screening_format(),
            "temperature": 0,
        });
        self.policy
            .run(
                || async {
                    let response = self.send(&body).await?;
                    let value: Value = response.json().await.map_err(|e| {
                        ProviderError::Protocol(format!("completion is not JSON: {e}"))
                    })?;
                    parse_screening(&value)
                },
                on_retry,
            )
            .await
    }
}

/// Splits a byte stream into SSE events and yields each event's data (its `data:` lines joined
/// with `\n`). Comments (`:`), `event:`, `id:` and `retry:` lines are ignored.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of an unfinished line.
    line: Vec<u8>,
    /// Data lines of the event being read.
    data: Vec<String>,
}

impl SseDecoder {
    /// Feeds bytes; returns the data of every event they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.line_done(&line, &mut events);
            } else {
                self.line.push(b);
            }
        }
        events
    }

    /// The end of the stream: a last event not followed by a blank line still counts.
    pub fn finish(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.line_done(&line, &mut events);
        }
        self.line_done(b"", &mut events);
        events
    }

    fn line_done(&mut self, line: &[u8], events: &mut Vec<String>) {
        if line.is_empty() {
            if !self.data.is_empty() {
                events.push(std::mem::take(&mut self.data).join("\n"));
            }
            return;
        }
        let line = String::from_utf8_lossy(line);
        if let Some(rest) = line.strip_prefix("data:") {
            self.data
                .push(rest.strip_prefix(' ').unwrap_or(rest).to_owned());
        }
    }
}

/// A tool call being assembled from fragments.
#[derive(Debug, Default)]
struct ToolCallParts {
    /// `function.name`, sent once (some servers repeat it; the first wins).
    name: String,
    /// `function.arguments`, concatenated.
    arguments: String,
}

/// One streamed reply being put together.
#[derive(Debug, Default)]
pub struct ReplyAssembly {
    /// Text so far.
    text: String,
    /// Tool calls by `index`.
    tools: BTreeMap<u64, ToolCallParts>,
}

impl ReplyAssembly {
    /// Applies one SSE event's data; `true` at `[DONE]`.
    pub fn push(
        &mut self,
        data: &str,
        deltas: Option<&mpsc::UnboundedSender<String>>,
    ) -> Result<bool, ProviderError> {
        if data.trim() == "[DONE]" {
            return Ok(true);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| {
            ProviderError::Protocol(format!("chunk is not JSON ({e}): {}", super::snippet(data)))
        })?;
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            return Err(ProviderError::Protocol(format!(
                "error in the stream: {message}"
            )));
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return Err(ProviderError::Protocol(format!(
                "chunk without `choices`: {}",
                super::snippet(data)
            )));
        };
        // Only the first choice is used (`n` is never set).
        let Some(delta) = choices.first().and_then(|c| c.get("delta")) else {
            return Ok(false); // usage-only chunks have no choices
        };
        if let Some(text) = delta.get("content").and_then(Value::as_str)
            && !text.is_empty()
        {
            self.text.push_str(text);
            if let Some(tx) = deltas {
                let _ = tx.send(text.to_owned());
            }
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for call in calls {
                let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                let parts = self.tools.entry(index).or_default();
                if let Some(function) = call.get("function") {
                    if let Some(name) = function.get("name").and_then(Value::as_str)
                        && parts.name.is_empty()
                    {
                        parts.name = name.to_owned();
                    }
                    if let Some(args) = function.get("arguments").and_then(Value::as_str) {
                        parts.arguments.push_str(args);
                    }
                }
            }
        }
        Ok(false)
    }

    /// The reply with its tool calls typed.
    pub fn finish(self) -> Result<LlmReply, ProviderError> {
        let actions = self
            .tools
            .into_values()
            .map(|parts| parse_action(&parts.name, &parts.arguments))
            .collect::<Result<_, _>>()?;
        Ok(LlmReply {
            text: self.text.trim().to_owned(),
            actions,
        })
    }
}

/// A tool call's name and JSON arguments as an [`LlmAction`].
pub fn parse_action(name: &str, arguments: &str) -> Result<LlmAction, ProviderError> {
    let bad = |why: String| ProviderError::Protocol(format!("tool call `{name}`: {why}"));
    let args: Value = if arguments.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(arguments).map_err(|e| bad(format!("arguments are not JSON: {e}")))?
    };
    let field = |key: &str| -> Result<String, ProviderError> {
        args.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| bad(format!("missing `{key}`")))
    };
    match name {
        "transfer_call" => Ok(LlmAction::Transfer {
            department: field("department")?,
        }),
        "end_call" => Ok(LlmAction::EndCall {
            reason: field("reason").unwrap_or_else(|_| "caller done".into()),
        }),
        "capture_lead" => Ok(LlmAction::CaptureLead {
            name: field("name")?,
            callback_number: field("callback_number")?,
            reason: field("reason")?,
            urgency: serde_json::from_value(args.get("urgency").cloned().unwrap_or(Value::Null))
                .map_err(|_| bad("`urgency` must be low, normal or high".into()))?,
        }),
        other => Err(bad(format!("unknown tool `{other}`"))),
    }
}

/// A non-streamed completion holding a screening verdict → [`ScreeningVerdict`].
pub fn parse_screening(completion: &Value) -> Result<ScreeningVerdict, ProviderError> {
    let bad = |why: &str| ProviderError::Protocol(format!("screening verdict: {why}"));
    let message = completion
        .pointer("/choices/0/message")
        .ok_or_else(|| bad("no `choices[0].message`"))?;
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
        return Err(bad(&format!("the model refused: {refusal}")));
    }
    let content = message
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no content"))?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Verdict {
        label: String,
        intent: String,
        confidence: f32,
        rationale: String,
    }
    let v: Verdict = serde_json::from_str(content)
        .map_err(|e| bad(&format!("content does not match the schema: {e}")))?;
    let label: ScreeningLabel = v
        .label
        .parse()
        .map_err(|_| bad(&format!("unknown label `{}`", v.label)))?;
    if !(0.0..=1.0).contains(&v.confidence) {
        return Err(bad(&format!("confidence {} is outside 0..1", v.confidence)));
    }
    if v.intent.trim().is_empty() {
        return Err(bad("empty intent"));
    }
    Ok(ScreeningVerdict {
        label,
        intent: v.intent.trim().to_owned(),
        confidence: v.confidence,
        rationale: v.rationale.trim().to_owned(),
        action: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_survive_any_split() {
        let stream = b": keep-alive\r\ndata: {\"a\":1}\r\n\r\nevent: x\ndata: [DONE]\n\n";
        for split in 0..stream.len() {
            let mut d = SseDecoder::default();
            let mut got = d.push(&stream[..split]);
            got.extend(d.push(&stream[split..]));
            got.extend(d.finish());
            assert_eq!(
                got,
                vec!["{\"a\":1}".to_owned(), "[DONE]".to_owned()],
                "split {split}"
            );
        }
    }

    #[test]
    fn assembles_tool_calls_from_fragments() {
        let mut a = ReplyAssembly::default();
        let chunks = [
            r#"{"choices":[{"delta":{"role":"assistant","content":"One moment"}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"transfer_call","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"depart"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ment\":\"billing\"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ];
        for c in chunks {
            assert!(!a.push(c, None).unwrap());
        }
        assert!(a.push("[DONE]", None).unwrap());
        let reply = a.finish().unwrap();
        assert_eq!(reply.text, "One moment");
        assert_eq!(
            reply.actions,
            vec![LlmAction::Transfer {
                department: "billing".into()
            }]
        );
    }

    #[test]
    fn rejects_bad_tool_arguments_naming_the_problem() {
        let err = parse_action("capture_lead", r#"{"name":"Ann"}"#).unwrap_err();
        assert!(err.to_string().contains("callback_number"), "{err}");
        let err = parse_action("launch_rockets", "{}").unwrap_err();
        assert!(err.to_string().contains("unknown tool"), "{err}");
        let lead = parse_action(
            "capture_lead",
            r#"{"name":"Ann","callback_number":"+15550100","reason":"leak","urgency":"high"}"#,
        )
        .unwrap();
        assert!(matches!(
            lead,
            LlmAction::CaptureLead {
                urgency: Urgency::High,
                ..
            }
        ));
    }

    #[test]
    fn validates_screening_structured_output() {
        let completion = |content: &str| json!({ "choices": [{ "message": { "role": "assistant", "content": content } }] });
        let ok = parse_screening(&completion(
            r#"{"label":"marketing","intent":"sells solar panels","confidence":0.9,"rationale":"offer"}"#,
        ))
        .unwrap();
        assert_eq!(ok.label, ScreeningLabel::Marketing);
        assert_eq!(ok.intent, "sells solar panels");
        let err = parse_screening(&completion(
            r#"{"label":"friend","intent":"x","confidence":0.9,"rationale":""}"#,
        ))
        .unwrap_err();
        assert!(err.to_string().contains("friend"), "{err}");
        let err = parse_screening(&completion(
            r#"{"label":"spam","intent":"x","confidence":7,"rationale":""}"#,
        ))
        .unwrap_err();
        assert!(err.to_string().contains("confidence"), "{err}");
    }
}
