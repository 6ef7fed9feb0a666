//! The OpenAI Realtime event protocol (the `realtime=v1` interface) as typed values: what the
//! node sends ([`ClientEvent`]) and what it reads ([`ServerEvent`]). Every message is one JSON
//! object in a WebSocket text frame, discriminated by `type`. Only the events the call agent
//! acts on are typed; the rest (rate limits, content parts, transcript deltas) parse as
//! [`ServerEvent::Other`] so a server that adds events never breaks a call.
//!
//! Both spellings of the audio events are read: the beta names (`response.audio.delta`,
//! `response.audio_transcript.done`) and the GA ones (`response.output_audio.delta`,
//! `response.output_audio_transcript.done`), since a deployment may pin either interface.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Turn detection on the server (its VAD decides when the caller has finished).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnDetection {
    /// Always `server_vad`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Speech probability threshold (0–1); 0.5 is OpenAI's default.
    pub threshold: f32,
    /// Audio kept before detected speech, so first syllables are not clipped.
    pub prefix_padding_ms: u32,
    /// Silence that ends the caller's turn (the cascaded agent's VAD uses 500 ms too).
    pub silence_duration_ms: u32,
    /// The server starts a response when the caller stops.
    pub create_response: bool,
    /// The server cancels its response when the caller starts talking (barge-in).
    pub interrupt_response: bool,
}

impl Default for TurnDetection {
    fn default() -> Self {
        TurnDetection {
            kind: "server_vad",
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
            create_response: true,
            interrupt_response: true,
        }
    }
}

/// The `session` object of `session.update`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionConfig {
    /// Text and audio out (text carries the transcript).
    pub modalities: Vec<&'static str>,
    /// The system prompt.
    pub instructions: String,
    /// The model's voice (`alloy`, `verse`, …).
    pub voice: String,
    /// Twilio's 8 kHz mu-law as is: no resampling either way.
    pub input_audio_format: &'static str,
    /// See `input_audio_format`.
    pub output_audio_format: &'static str,
    /// Caller turns are transcribed for the call's transcript.
    pub input_audio_transcription: Value,
    /// Server VAD.
    pub turn_detection: TurnDetection,
    /// The call tools, in the Realtime `tools` format.
    pub tools: Value,
    /// `auto`.
    pub tool_choice: &'static str,
}

impl SessionConfig {
    /// A phone session: g711_ulaw both ways, server VAD, whisper-1 transcripts, the call tools.
    pub fn phone(instructions: String, voice: &str) -> Self {
        SessionConfig {
            modalities: vec!["text", "audio"],
            instructions,
            voice: voice.to_owned(),
            input_audio_format: "g711_ulaw",
            output_audio_format: "g711_ulaw",
            input_audio_transcription: json!({ "model": "whisper-1" }),
            turn_detection: TurnDetection::default(),
            tools: realtime_tools(),
            tool_choice: "auto",
        }
    }
}

/// The chat-completions tools of [`crate::providers::llm_openai::tools`] in the Realtime
/// format, which has `name`/`description`/`parameters` at the top level instead of under
/// `function`: one definition of the call tools for both interfaces.
pub fn realtime_tools() -> Value {
    let tools = crate::providers::llm_openai::tools();
    let list = tools.as_array().cloned().unwrap_or_default();
    Value::Array(
        list.into_iter()
            .filter_map(|t| {
                let f = t.get("function")?;
                Some(json!({
                    "type": "function",
                    "name": f.get("name")?,
                    "description": f.get("description")?,
                    "parameters": f.get("parameters")?,
                }))
            })
            .collect(),
    )
}

/// An event the node sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum ClientEvent {
    /// Configures the session (sent once, right after `session.created`).
    #[serde(rename = "session.update")]
    SessionUpdate {
        /// The configuration.
        session: SessionConfig,
    },
    /// Caller audio, base64 of 8 kHz mu-law.
    #[serde(rename = "input_audio_buffer.append")]
    Append {
        /// Base64.
        audio: String,
    },
    /// The caller heard only the first `audio_end_ms` of an assistant item: the server drops
    /// the rest (and its transcript) from the conversation.
    #[serde(rename = "conversation.item.truncate")]
    Truncate {
        /// The assistant's message item.
        item_id: String,
        /// Always 0: one audio part per item.
        content_index: u32,
        /// Audio actually heard, in ms.
        audio_end_ms: u32,
    },
    /// Adds an item (a tool's result) to the conversation.
    #[serde(rename = "conversation.item.create")]
    ItemCreate {
        /// The item.
        item: Value,
    },
    /// Asks for a response (after a tool result; the greeting).
    #[serde(rename = "response.create")]
    ResponseCreate {
        /// Per-response overrides (instructions for the greeting).
        #[serde(skip_serializing_if = "Option::is_none")]
        response: Option<Value>,
    },
}

impl ClientEvent {
    /// A tool's result as a `function_call_output` item.
    pub fn function_output(call_id: &str, output: &Value) -> Self {
        ClientEvent::ItemCreate {
            item: json!({
                "type": "function_call_output",
                "call_id": call_id,
                "output": output.to_string(),
            }),
        }
    }

    /// The JSON text sent on the socket.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: no maps with non-string keys, no floats NaN.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The `error` object of an `error` event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `server_error`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Machine-readable code, if any.
    #[serde(default)]
    pub code: Option<String>,
    /// Human-readable.
    #[serde(default)]
    pub message: String,
}

/// An output item as announced by `response.output_item.added`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OutputItem {
    /// `item_…`.
    #[serde(default)]
    pub id: String,
    /// `message` or `function_call`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// A function call's name (beta servers give it only here).
    #[serde(default)]
    pub name: Option<String>,
    /// A function call's id.
    #[serde(default)]
    pub call_id: Option<String>,
}

/// A response as carried by `response.created` / `response.done`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResponseInfo {
    /// `resp_…`.
    #[serde(default)]
    pub id: String,
    /// `completed`, `cancelled`, `failed`, `incomplete`, `in_progress`.
    #[serde(default)]
    pub status: String,
}

/// An event the server sends (the ones the agent uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type")]
pub enum ServerEvent {
    /// The first event of every connection.
    #[serde(rename = "session.created")]
    SessionCreated {},
    /// The answer to `session.update`.
    #[serde(rename = "session.updated")]
    SessionUpdated {},
    /// Something went wrong; the session usually stays open.
    #[serde(rename = "error")]
    Error {
        /// Details.
        error: ErrorDetail,
    },
    /// The server VAD heard the caller start.
    #[serde(rename = "input_audio_buffer.speech_started")]
    SpeechStarted {
        /// Offset in the input audio buffer.
        #[serde(default)]
        audio_start_ms: u64,
        /// The user item this speech becomes.
        #[serde(default)]
        item_id: String,
    },
    /// The server VAD heard the caller stop.
    #[serde(rename = "input_audio_buffer.speech_stopped")]
    SpeechStopped {
        /// Offset in the input audio buffer.
        #[serde(default)]
        audio_end_ms: u64,
        /// The user item.
        #[serde(default)]
        item_id: String,
    },
    /// A response started.
    #[serde(rename = "response.created")]
    ResponseCreated {
        /// The response.
        response: ResponseInfo,
    },
    /// A response has a new item (a message or a function call).
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded {
        /// The item.
        item: OutputItem,
    },
    /// Assistant audio, base64 of 8 kHz mu-law.
    #[serde(rename = "response.audio.delta", alias = "response.output_audio.delta")]
    AudioDelta {
        /// The assistant message item.
        item_id: String,
        /// Base64.
        delta: String,
    },
    /// The item's audio is complete.
    #[serde(rename = "response.audio.done", alias = "response.output_audio.done")]
    AudioDone {
        /// The item.
        item_id: String,
    },
    /// What the assistant said in an item.
    #[serde(
        rename = "response.audio_transcript.done",
        alias = "response.output_audio_transcript.done"
    )]
    AudioTranscriptDone {
        /// The item.
        item_id: String,
        /// The words.
        transcript: String,
    },
    /// A function call's arguments are complete.
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone {
        /// The call's id, echoed in `function_call_output`.
        call_id: String,
        /// The function (GA servers send it here; beta ones only in the item).
        #[serde(default)]
        name: Option<String>,
        /// JSON text.
        arguments: String,
    },
    /// A response is over (completed, cancelled by a barge-in, failed).
    #[serde(rename = "response.done")]
    ResponseDone {
        /// The response.
        response: ResponseInfo,
    },
    /// A caller turn's transcript.
    #[serde(rename = "conversation.item.input_audio_transcription.completed")]
    InputTranscript {
        /// The user item.
        item_id: String,
        /// The words.
        transcript: String,
    },
    /// The server confirms a truncation.
    #[serde(rename = "conversation.item.truncated")]
    Truncated {
        /// The item.
        item_id: String,
        /// Where it was cut.
        #[serde(default)]
        audio_end_ms: u64,
    },
    /// Anything else (content parts, transcript deltas, rate limits, …).
    #[serde(other)]
    Other,
}

impl ServerEvent {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_beta_and_ga_spellings_and_skips_unknown_events() {
        let beta = ServerEvent::parse(
            r#"{"type":"response.audio.delta","event_id":"e1","response_id":"r","item_id":"i1","output_index":0,"content_index":0,"delta":"AAA="}"#,
        )
        .unwrap();
        let ga = ServerEvent::parse(
            r#"{"type":"response.output_audio.delta","event_id":"e1","response_id":"r","item_id":"i1","output_index":0,"content_index":0,"delta":"AAA="}"#,
        )
        .unwrap();
        assert_eq!(beta, ga);
        assert_eq!(
            ServerEvent::parse(r#"{"type":"rate_limits.updated","rate_limits":[]}"#).unwrap(),
            ServerEvent::Other
        );
        assert!(matches!(
            ServerEvent::parse(r#"{"type":"session.created","event_id":"e","session":{"id":"s"}}"#)
                .unwrap(),
            ServerEvent::SessionCreated {}
        ));
        let err = ServerEvent::parse(
            r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"x","message":"bad","param":null,"event_id":null}}"#,
        )
        .unwrap();
        assert!(matches!(err, ServerEvent::Error { error } if error.message == "bad"));
        assert!(ServerEvent::parse(r#"{"type":"response.audio.delta"}"#).is_err());
    }

    #[test]
    fn session_update_names_the_phone_formats_and_flat_tools() {
        let json: Value = serde_json::from_str(
            &ClientEvent::SessionUpdate {
                session: SessionConfig::phone("Be brief.".into(), "alloy"),
            }
            .to_json(),
        )
        .unwrap();
        assert_eq!(json["type"], "session.update");
        assert_eq!(json["session"]["input_audio_format"], "g711_ulaw");
        assert_eq!(json["session"]["output_audio_format"], "g711_ulaw");
        assert_eq!(json["session"]["turn_detection"]["type"], "server_vad");
        let names: Vec<&str> = json["session"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["transfer_call", "end_call", "capture_lead"]);
    }
}
