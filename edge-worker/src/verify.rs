//! The Twilio webhook extractor: every Twilio route takes a [`TwilioWebhook`], so no handler
//! can see a request whose signature was not checked.
//!
//! The signature is checked over `PUBLIC_WEBHOOK_BASE_URL` + the path and raw query exactly as
//! received, never over the URL the runtime reports: behind Cloudflare, a proxy, `wrangler dev`
//! or workerd on loopback that URL differs from the one Twilio signed. The body is read raw and
//! parsed with `shared::form`, so every field (repeated keys included) is covered.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shared::form::{Form, FormError};
use shared::routing::GeoPoint;
use shared::signature::{SignatureError, validate_form};
use shared::webhook::FromForm;

use crate::AppState;
use crate::platform::RequestLocation;
use crate::rate_limit::ClientAddr;

/// Twilio webhook bodies are a few KB; anything near this is not Twilio.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request whose `X-Twilio-Signature` is valid, with what handlers need from it.
#[derive(Debug, Clone)]
pub struct TwilioWebhook {
    /// The decoded form, exactly the pairs the signature covered.
    pub form: Form,
    /// The raw body, for the idempotency hash when Twilio sends no token.
    pub raw_body: Bytes,
    /// The raw query string (our own callback URLs carry `node=`, `attempt=`, …; they were
    /// signed with the URL, so they can be trusted).
    pub query: Option<String>,
    /// `I-Twilio-Idempotency-Token`, when sent.
    pub idempotency_token: Option<String>,
    /// `X-Home-Region` (`us1`, `ie1`, `au1`): where Twilio runs the call's media.
    pub home_region: Option<String>,
    /// The request's `cf` location (Worker) or dev headers (native).
    pub location: Option<GeoPoint>,
}

/// Why a webhook was refused before reaching its handler.
#[derive(Debug, thiserror::Error)]
pub enum WebhookRejection {
    /// No `X-Twilio-Signature` header.
    #[error("missing X-Twilio-Signature")]
    MissingSignature,
    /// The signature does not match (tampered, another auth token, or a URL mismatch).
    #[error("invalid X-Twilio-Signature")]
    BadSignature(SignatureError),
    /// The body is not a form.
    #[error("malformed form body: {0}")]
    MalformedBody(FormError),
    /// The body could not be read (connection dropped, too slow).
    #[error("unreadable body: {0}")]
    UnreadableBody(String),
    /// The body is larger than any Twilio webhook.
    #[error("request body is over the limit of {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// This source sent too many unsigned requests ([`crate::rate_limit`]).
    #[error(transparent)]
    RateLimited(#[from] crate::rate_limit::RateLimited),
}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        let status = match &self {
            WebhookRejection::MissingSignature | WebhookRejection::BadSignature(_) => {
                StatusCode::FORBIDDEN
            }
            WebhookRejection::MalformedBody(_) | WebhookRejection::UnreadableBody(_) => {
                StatusCode::BAD_REQUEST
            }
            WebhookRejection::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookRejection::RateLimited(limited) => return limited.into_response(),
        };
        tracing::warn!(status = status.as_u16(), reason = %self, "webhook refused");
        (status, self.to_string()).into_response()
    }
}

impl FromRequest<AppState> for TwilioWebhook {
    type Rejection = WebhookRejection;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        // A source that keeps failing is refused before anything else is looked at.
        let source = parts.extensions.get::<ClientAddr>().copied();
        let now_ms = state.clock.now_ms();
        state.limiter.check(source, now_ms)?;
        let refuse = |rejection: WebhookRejection| {
            state.limiter.record_failure(source, now_ms);
            rejection
        };
        // Checked before reading the body: an unsigned request costs nothing.
        let signature = header("x-twilio-signature")
            .ok_or_else(|| refuse(WebhookRejection::MissingSignature))?;
        let declared = header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
            return Err(WebhookRejection::TooLarge);
        }
        let raw_body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|e| {
                // A chunked body that grew past the limit, or a read error (slow or dropped).
                if std::error::Error::source(&e)
                    .is_some_and(|inner| inner.is::<http_body_util::LengthLimitError>())
                {
                    WebhookRejection::TooLarge
                } else {
                    WebhookRejection::UnreadableBody(e.to_string())
                }
            })?;
        let form =
            Form::parse(&raw_body).map_err(|e| refuse(WebhookRejection::MalformedBody(e)))?;
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/");
        let url = state.config.public_url(path_and_query);
        validate_form(
            &state.config.twilio_auth_token,
            &url,
            &form,
            Some(&signature),
        )
        .map_err(|e| refuse(WebhookRejection::BadSignature(e)))?;
        Ok(TwilioWebhook {
            form,
            raw_body,
            query: parts.uri.query().map(str::to_owned),
            idempotency_token: header(shared::forwarded::TWILIO_IDEMPOTENCY_HEADER),
            home_region: header("x-home-region"),
            location: parts.extensions.get::<RequestLocation>().map(|l| l.0),
        })
    }
}

impl TwilioWebhook {
    /// The typed parameters of this webhook; a missing or malformed field is a 400 naming it.
    pub fn parse<T: FromForm>(&self) -> Result<T, crate::error::EdgeError> {
        T::from_form(&self.form).map_err(crate::error::EdgeError::BadParams)
    }

    /// A parameter of our own callback URL's query (decoded), e.g. `node`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        Form::parse(query.as_bytes())
            .ok()?
            .get(name)
            .map(str::to_owned)
    }
}
