//! Errors a handler can answer with, after the webhook passed its signature check.
//!
//! Client mistakes (a field Twilio always sends is missing) are 400 with the field named. A
//! callback no node accepted is 503, deliberately: Twilio records the failure (error 11200 in
//! its debugger) and, when the callback URL carries retry connection overrides, retries it,
//! instead of the event being acknowledged and lost. Details of internal failures stay in the
//! log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::webhook::WebhookError;

use crate::forward::ForwardError;

/// A handler's failure.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The form is signed but lacks a required field or has a malformed one.
    #[error("bad webhook parameters: {0}")]
    BadParams(#[from] WebhookError),
    /// No node took a forwarded callback: answer 503 so it is not lost silently.
    #[error("event not delivered: {0}")]
    NotDelivered(#[from] ForwardError),
}

/// Seconds a 503 asks Twilio (or an operator replaying it) to wait.
const RETRY_AFTER_S: &str = "5";

impl IntoResponse for EdgeError {
    fn into_response(self) -> Response {
        match &self {
            EdgeError::BadParams(err) => {
                tracing::warn!(error = %err, "webhook with bad parameters");
                (StatusCode::BAD_REQUEST, err.to_string()).into_response()
            }
            EdgeError::NotDelivered(err) => {
                tracing::error!(error = %err, "callback not delivered to any node; answering 503");
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no voice node accepted the event; retry later",
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
                response
            }
        }
    }
}
