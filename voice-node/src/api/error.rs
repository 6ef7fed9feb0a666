//! The `/api/…` error envelope (`{"error": {code, message, details?}}`, dashboard/API.md
//! "Errors"): client errors carry their stable code and a human message; internal errors become a
//! plain 500/503 whose details go only to the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One failed API request: the status, the machine-readable code and a message for people.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// Stable code from API.md (`not_found`, `validation_failed`, …).
    pub code: &'static str,
    /// English, for humans; never internals.
    pub message: String,
    /// `details` of the envelope (`fields` for 422).
    pub details: Option<Value>,
    /// `Retry-After` seconds (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400 `tenant_required`: a superadmin without `tenant_id` on a tenant-scoped endpoint.
    pub fn tenant_required() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "tenant_required",
            "pick a tenant with ?tenant_id=",
        )
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first")
    }

    /// 401 `invalid_credentials` (same answer for an unknown e-mail and a wrong password).
    pub fn invalid_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong e-mail or password",
        )
    }

    /// 403 `forbidden`.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "your role may not do this",
        )
    }

    /// 403 `bad_origin`.
    pub fn bad_origin() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "bad_origin",
            "request from another origin refused",
        )
    }

    /// 404 `not_found` (also for another tenant's ids: existence is not leaked).
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "not found")
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 422 `validation_failed` for one field.
    pub fn invalid(field: &str, problem: &str) -> Self {
        let mut err = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("{field} {problem}"),
        );
        err.details = Some(json!({ "fields": { field: problem } }));
        err
    }

    /// 429 `rate_limited` with `Retry-After`.
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut err = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many attempts; try again later",
        );
        err.retry_after = Some(retry_after.max(1));
        err
    }

    /// 503 `voice_not_configured`.
    pub fn voice_not_configured() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "voice_not_configured",
            "the dialer needs TWILIO_ACCOUNT_SID, TWILIO_API_KEY_SID, TWILIO_API_KEY_SECRET and TWIML_APP_SID",
        )
    }

    /// 500 `internal`; `why` goes to the log only.
    pub fn internal(why: impl std::fmt::Display) -> Self {
        tracing::error!(error = %why, "api request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => ApiError::not_found(),
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::warn!(error = %err, "api request failed: database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable; try again",
                )
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                ApiError::conflict("already exists")
            }
            sqlx::Error::Database(db) if db.is_check_violation() => {
                let field = db.constraint().unwrap_or("value").to_owned();
                ApiError::invalid(&field, "is invalid")
            }
            _ => ApiError::internal(err),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection;
        match rejection {
            // Well-formed JSON with unknown or ill-typed fields: 422, as API.md asks.
            JsonRejection::JsonDataError(e) => {
                let mut err = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    e.body_text(),
                );
                err.details = Some(json!({ "fields": {} }));
                err
            }
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(details) = self.details {
            error["details"] = details;
        }
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// What every API handler returns.
pub type ApiResult<T> = Result<T, ApiError>;
