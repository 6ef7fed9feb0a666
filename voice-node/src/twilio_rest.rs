//! Twilio's REST API, as the node calls it: send an SMS, update (transfer) or end a live call,
//! fetch or delete a recording (twilio.md §6). The node's one Twilio client.
//!
//! HTTP Basic with the Account SID and Auth Token, form bodies, JSON answers. Errors are typed:
//! Twilio's own `{code, message, more_info, status}` when it answered, a transport error when it did
//! not. [`TwilioError::is_retryable`] is the queue's retry rule: 429 and 5xx and transport errors
//! are worth retrying, every other 4xx is permanent.
//!
//! Never logs the auth token, and phone numbers only masked ([`crate::config::mask_phone`]).

use std::time::Duration;

use serde::Deserialize;
use shared::form::{Form, encode_component};

/// Why a REST call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TwilioError {
    /// Twilio answered with an error status.
    #[error("Twilio REST {status}: error {code} {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// Twilio's error code (0 when the body was not Twilio's error JSON).
        code: u32,
        /// Twilio's message.
        message: String,
        /// Twilio's link to the error's documentation.
        more_info: Option<String>,
    },
    /// No answer (connect error, timeout) or an unreadable one.
    #[error("Twilio REST unreachable: {0}")]
    Transport(String),
}

impl TwilioError {
    /// Whether trying again later can succeed: rate limits, server errors, network trouble.
    pub fn is_retryable(&self) -> bool {
        match self {
            TwilioError::Api { status, .. } => *status == 429 || *status >= 500,
            TwilioError::Transport(_) => true,
        }
    }
}

/// An SMS to send.
#[derive(Debug, Clone)]
pub struct SmsRequest {
    /// `To`: the recipient, E.164.
    pub to: String,
    /// `From`: one of the tenant's numbers.
    pub from: String,
    /// `Body`.
    pub body: String,
    /// `StatusCallback`: where Twilio reports delivery, if anywhere.
    pub status_callback: Option<String>,
}

/// What Twilio said about an accepted message.
#[derive(Debug, Clone, Deserialize)]
pub struct SentMessage {
    /// `SM…`.
    pub sid: String,
    /// Twilio's status (`queued`, `accepted`, …).
    #[serde(default)]
    pub status: Option<String>,
}

/// What to do with a live call.
#[derive(Debug, Clone)]
pub enum CallUpdate {
    /// Replace its TwiML (e.g. `<Dial>` to transfer it).
    Twiml(String),
    /// Fetch new TwiML from this URL (POST).
    Url(String),
    /// Hang it up (`Status=completed`).
    Complete,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
    more_info: Option<String>,
}

/// A Twilio REST client for one account.
#[derive(Clone)]
pub struct TwilioClient {
    /// Shared connection pool with a short timeout: callers retry through the job queue.
    http: reqwest::Client,
    /// `TWILIO_API_BASE` without a trailing slash.
    api_base: String,
    /// `TWILIO_ACCOUNT_SID`: the Basic user and part of every path.
    account_sid: String,
    /// `TWILIO_AUTH_TOKEN`: the Basic password. Never printed (see the Debug impl).
    auth_token: String,
    /// The `StatusCallback` put on every SMS that does not name its own
    /// (`PUBLIC_WEBHOOK_BASE_URL` + `/sms/status`), so delivery reports reach `sms_messages`.
    sms_status_callback: Option<String>,
}

impl std::fmt::Debug for TwilioClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioClient")
            .field("api_base", &self.api_base)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .finish()
    }
}

impl TwilioClient {
    /// A client for `account_sid` at `api_base` (`https://api.twilio.com` in production).
    pub fn new(api_base: &str, account_sid: &str, auth_token: &str) -> Self {
        TwilioClient {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            api_base: api_base.trim_end_matches('/').to_owned(),
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            sms_status_callback: None,
        }
    }

    /// The same client, asking Twilio to report every SMS's delivery to `url`.
    pub fn with_sms_status_callback(mut self, url: impl Into<String>) -> Self {
        self.sms_status_callback = Some(url.into());
        self
    }

    /// The client the configuration allows: `None` without an Account SID or Auth Token.
    pub fn from_config(config: &crate::config::Config) -> Option<Self> {
        match &config.twilio_account_sid {
            Some(sid) if !config.twilio_auth_token.is_empty() => {
                let client = Self::new(&config.twilio_api_base, sid, &config.twilio_auth_token);
                Some(match &config.public_webhook_base_url {
                    Some(base) => client.with_sms_status_callback(format!(
                        "{base}{}",
                        shared::webhook::SMS_STATUS_PATH
                    )),
                    None => client,
                })
            }
            _ => None,
        }
    }

    fn url(&self, rest: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/{rest}",
            self.api_base,
            encode_component(&self.account_sid)
        )
    }

    async fn post(&self, url: String, form: Form) -> Result<reqwest::Response, TwilioError> {
        let response = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form.to_urlencoded())
            .send()
            .await
            .map_err(|e| TwilioError::Transport(e.without_url().to_string()))?;
        check(response).await
    }

    /// `POST …/Messages.json`: Twilio queues the SMS and answers 201 with its `SM…` SID.
    pub async fn send_sms(&self, sms: &SmsRequest) -> Result<SentMessage, TwilioError> {
        let mut pairs = vec![
            ("To", sms.to.as_str()),
            ("From", sms.from.as_str()),
            ("Body", sms.body.as_str()),
        ];
        if let Some(cb) = sms
            .status_callback
            .as_deref()
            .or(self.sms_status_callback.as_deref())
        {
            pairs.push(("StatusCallback", cb));
        }
        let response = self
            .post(self.url("Messages.json"), Form::from_pairs(pairs))
            .await?;
        let sent: SentMessage = response
            .json()
            .await
            .map_err(|e| TwilioError::Transport(format!("unreadable Messages answer: {e}")))?;
        tracing::debug!(to = %crate::config::mask_phone(&sms.to), sid = %sent.sid, "SMS accepted by Twilio");
        Ok(sent)
    }

    /// `POST …/Calls/{CallSid}.json`: new TwiML, a redirect, or a hang-up.
    pub async fn update_call(
        &self,
        call_sid: &str,
        update: &CallUpdate,
    ) -> Result<(), TwilioError> {
        let form = match update {
            CallUpdate::Twiml(twiml) => Form::from_pairs([("Twiml", twiml.as_str())]),
            CallUpdate::Url(url) => Form::from_pairs([("Url", url.as_str()), ("Method", "POST")]),
            CallUpdate::Complete => Form::from_pairs([("Status", "completed")]),
        };
        let url = self.url(&format!("Calls/{}.json", encode_component(call_sid)));
        self.post(url, form).await.map(drop)
    }

    /// `GET …/Recordings/{RecordingSid}.mp3`, forwarding a `Range` header: the answer (200, 206
    /// or 416) to stream on as it arrives. 404 and other errors are [`TwilioError::Api`].
    pub async fn fetch_recording_media(
        &self,
        recording_sid: &str,
        range: Option<&str>,
    ) -> Result<reqwest::Response, TwilioError> {
        let url = self.url(&format!(
            "Recordings/{}.mp3",
            encode_component(recording_sid)
        ));
        let mut request = self
            .http
            .get(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token));
        if let Some(range) = range {
            request = request.header("range", range);
        }
        // No overall timeout here: a long recording streams for longer than the client's
        // default; the connect and first-byte wait still apply.
        let response = request
            .timeout(Duration::from_secs(3600))
            .send()
            .await
            .map_err(|e| TwilioError::Transport(e.without_url().to_string()))?;
        if response.status() == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
            return Ok(response);
        }
        check(response).await
    }

    /// `POST …/Calls/{CallSid}/Recordings.json` (dual channel): starts recording a live call;
    /// Twilio's `RE…` SID.
    pub async fn start_call_recording(&self, call_sid: &str) -> Result<String, TwilioError> {
        let url = self.url(&format!(
            "Calls/{}/Recordings.json",
            encode_component(call_sid)
        ));
        let response = self
            .post(url, Form::from_pairs([("RecordingChannels", "dual")]))
            .await?;
        let body: SentMessage = response
            .json()
            .await
            .map_err(|e| TwilioError::Transport(format!("unreadable Recordings answer: {e}")))?;
        Ok(body.sid)
    }

    /// `POST …/Calls/{CallSid}/Recordings/{RecordingSid}.json` with `Status=stopped`.
    pub async fn stop_call_recording(
        &self,
        call_sid: &str,
        recording_sid: &str,
    ) -> Result<(), TwilioError> {
        let url = self.url(&format!(
            "Calls/{}/Recordings/{}.json",
            encode_component(call_sid),
            encode_component(recording_sid)
        ));
        self.post(url, Form::from_pairs([("Status", "stopped")]))
            .await
            .map(drop)
    }

    /// Ends a live call (`Status=completed`); Twilio then sends `stop` on its stream. A node
    /// ends a finished call this way *before* closing its Media Stream: closing only the socket
    /// makes Twilio run the `<Connect action>`, which the edge treats as "this node failed" and
    /// answers by routing the caller to another node (`edge-worker/src/answers.rs`).
    pub async fn hang_up(&self, call_sid: &str) -> Result<(), TwilioError> {
        self.update_call(call_sid, &CallUpdate::Complete).await
    }

    /// `DELETE …/Recordings/{RecordingSid}.json`; a recording Twilio no longer has (404) counts as
    /// deleted.
    pub async fn delete_recording(&self, recording_sid: &str) -> Result<(), TwilioError> {
        let url = self.url(&format!(
            "Recordings/{}.json",
            encode_component(recording_sid)
        ));
        let response = self
            .http
            .delete(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| TwilioError::Transport(e.without_url().to_string()))?;
        match check(response).await {
            Ok(_) => Ok(()),
            Err(TwilioError::Api { status: 404, .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

/// Turns a non-2xx answer into [`TwilioError::Api`].
async fn check(response: reqwest::Response) -> Result<reqwest::Response, TwilioError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let body: Option<ErrorBody> = serde_json::from_str(&text).ok();
    let (code, message, more_info) = match body {
        Some(b) => (
            b.code.unwrap_or(0),
            b.message.unwrap_or_default(),
            b.more_info,
        ),
        None => (0, text.chars().take(200).collect(), None),
    };
    Err(TwilioError::Api {
        status: status.as_u16(),
        code,
        message,
        more_info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rate_limits_server_errors_and_transport_are_retried() {
        let api = |status| TwilioError::Api {
            status,
            code: 0,
            message: String::new(),
            more_info: None,
        };
        assert!(api(429).is_retryable());
        assert!(api(500).is_retryable());
        assert!(api(503).is_retryable());
        assert!(!api(400).is_retryable());
        assert!(!api(401).is_retryable());
        assert!(!api(404).is_retryable());
        assert!(TwilioError::Transport("timeout".into()).is_retryable());
    }

    #[test]
    fn debug_output_hides_the_auth_token() {
        let client = TwilioClient::new("http://x", "AC1", "secret-token");
        assert!(!format!("{client:?}").contains("secret-token"));
    }
}
