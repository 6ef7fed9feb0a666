//! Ending a live call over Twilio's REST API.
//!
//! A node must hang a finished call up through REST *before* closing its Media Stream: closing
//! only the socket makes Twilio run the `<Connect action>`, which the edge treats as "this node
//! failed" and answers by routing the caller to another node (see `edge-worker/src/answers.rs`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Something that can end a call.
pub trait CallControl: Send + Sync + 'static {
    /// Ends `call_sid` (Twilio then sends `stop` on the stream).
    fn hang_up<'a>(
        &'a self,
        call_sid: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// Twilio's REST API: `POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` with
/// `Status=completed` (twilio.md §6).
#[derive(Debug, Clone)]
pub struct TwilioRest {
    /// HTTP client with a short timeout.
    http: reqwest::Client,
    /// `TWILIO_API_BASE`.
    api_base: String,
    /// `TWILIO_ACCOUNT_SID`.
    account_sid: String,
    /// `TWILIO_AUTH_TOKEN`.
    auth_token: String,
}

impl TwilioRest {
    /// A client for `account_sid`.
    pub fn new(api_base: &str, account_sid: &str, auth_token: &str) -> Self {
        TwilioRest {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            api_base: api_base.trim_end_matches('/').to_owned(),
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
        }
    }
}

impl CallControl for TwilioRest {
    fn hang_up<'a>(
        &'a self,
        call_sid: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let url = format!(
                "{}/2010-04-01/Accounts/{}/Calls/{}.json",
                self.api_base,
                shared::form::encode_component(&self.account_sid),
                shared::form::encode_component(call_sid)
            );
            let body = shared::form::Form::from_pairs([("Status", "completed")]).to_urlencoded();
            let response = self
                .http
                .post(url)
                .basic_auth(&self.account_sid, Some(&self.auth_token))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .map_err(|e| format!("Twilio REST unreachable: {e}"))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("Twilio REST answered {}", response.status()))
            }
        })
    }
}
