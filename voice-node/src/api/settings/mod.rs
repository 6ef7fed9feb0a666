//! Tenant administration: the settings pages of the dashboard (API.md "Tenant and settings").

pub mod departments;
pub mod kb;
pub mod numbers;
pub mod providers;
pub mod screening;
pub mod tenant;
pub mod users;

use serde::{Deserialize, Deserializer};

use crate::api::error::{ApiError, ApiResult};

/// A nullable field of a `PATCH` body: omitted (leave it), `null` (clear it) or a value.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Patch<T> {
    /// Not in the body.
    #[default]
    Missing,
    /// `null`.
    Null,
    /// A value.
    Set(T),
}

impl<T> Patch<T> {
    /// Whether the field was left out.
    pub fn is_missing(&self) -> bool {
        matches!(self, Patch::Missing)
    }

    /// The new value (None for `null` and for a missing field).
    pub fn value(&self) -> Option<&T> {
        match self {
            Patch::Set(v) => Some(v),
            _ => None,
        }
    }

    /// `current` after the patch.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Patch::Missing => current,
            Patch::Null => None,
            Patch::Set(v) => Some(v),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Called only when the field is present (`#[serde(default)]` covers a missing one).
        Ok(match Option::<T>::deserialize(deserializer)? {
            Some(v) => Patch::Set(v),
            None => Patch::Null,
        })
    }
}

/// An E.164 number as the schema's CHECK wants it (`+` and 2–15 digits, no leading zero).
pub fn check_e164(field: &str, value: &str) -> ApiResult<String> {
    let digits = value.strip_prefix('+').unwrap_or("");
    let ok = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid(field, "must be E.164"))
    }
}

/// A `CallMode`.
pub fn check_mode(mode: &str) -> ApiResult<()> {
    match mode {
        "screening" | "receptionist" | "forward" => Ok(()),
        _ => Err(ApiError::invalid(
            "mode",
            "must be screening, receptionist or forward",
        )),
    }
}
