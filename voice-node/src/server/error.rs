//! Errors of the node's HTTP routes: client errors map to their status with a message; internal
//! errors become a plain 500/503 whose details go only to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What a route can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or wrong HMAC on an internal request.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A body that cannot be what the route takes.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Nothing by that id.
    #[error("not found")]
    NotFound,
    /// The database is unreachable: worth retrying elsewhere or later.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Unavailable(err) => {
                tracing::warn!(error = %err, "request failed: database unavailable");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        (status, format!("{self}\n")).into_response()
    }
}
