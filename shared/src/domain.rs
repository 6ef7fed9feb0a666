//! Domain enums the edge, the voice node and Postgres all agree on.
//!
//! Each enum has one spelling everywhere: lowercase `snake_case`, the same in JSON (serde), in
//! Postgres text columns (whose `CHECK` constraints list exactly the strings in each enum's
//! `ALL`), in CLI flags and in logs. [`as_str`](CallMode::as_str) and [`FromStr`] are the only
//! conversions, so a new variant cannot drift between the layers: add it here, then to the
//! migration's `CHECK` list.
//!
//! | enum | strings |
//! |---|---|
//! | [`CallMode`] | `screening`, `receptionist`, `forward` |
//! | [`ScreeningLabel`] | `legit`, `marketing`, `spam`, `unknown` |
//! | [`Role`] | `superadmin`, `admin`, `member` |
//! | [`CallOutcome`] | `completed`, `transferred`, `message_taken`, `rejected`, `voicemail`, `missed`, `failed`, `abandoned` |
//!
//! ```
//! use shared::domain::CallMode;
//! let mode: CallMode = "receptionist".parse().unwrap();
//! assert_eq!(mode.as_str(), "receptionist");
//! assert!("Receptionist".parse::<CallMode>().is_err()); // one spelling only
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A string that is not one of an enum's spellings.
///
/// Parsing is exact (no case folding, no trimming) because the same strings are checked by
/// Postgres constraints: accepting `"Spam"` here would only move the failure to the database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}; expected one of: {expected}")]
pub struct UnknownVariant {
    /// Which enum was being parsed, e.g. `"call mode"`.
    pub kind: &'static str,
    /// The rejected input, for the error message.
    pub value: String,
    /// The accepted spellings, space separated, so the message tells the user how to fix it.
    pub expected: &'static str,
}

/// Defines a fieldless enum with its one string spelling per variant, plus `ALL`, `as_str`,
/// `Display`, `FromStr` and serde (which must agree with `as_str`; a test checks it).
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order (the order of the Postgres `CHECK` list).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one spelling used in JSON, Postgres and the CLI.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownVariant {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: concat!($($text, " "),+).trim_ascii_end(),
                    }),
                }
            }
        }
    };
}

string_enum! {
    /// What a tenant's number does with a call; chosen per number and carried in the routing
    /// snapshot so the edge can answer with the right TwiML without asking a node.
    CallMode, "call mode" {
        /// The AI asks who is calling and why, classifies the call and acts by tenant policy.
        Screening => "screening",
        /// The AI answers as a front desk: FAQ, transfer attempts, lead capture.
        Receptionist => "receptionist",
        /// The call rings the owner first; on no answer the caller is texted back.
        Forward => "forward",
    }
}

string_enum! {
    /// The screening verdict shown in the inbox and used by tenant policy.
    ScreeningLabel, "screening label" {
        /// A real person with a reason to reach the owner.
        Legit => "legit",
        /// A sales or marketing call: not fraud, but not wanted either.
        Marketing => "marketing",
        /// Robocalls, scams and other calls to end politely.
        Spam => "spam",
        /// The classifier could not decide (too little speech, low confidence).
        Unknown => "unknown",
    }
}

string_enum! {
    /// A dashboard user's power. Ordered from most to least privileged, but check roles with
    /// explicit matches rather than comparisons so a new role is a compile error, not a guess.
    Role, "role" {
        /// Operates the whole installation, across tenants.
        Superadmin => "superadmin",
        /// Manages one tenant: numbers, users, policy.
        Admin => "admin",
        /// Reads one tenant's calls and messages.
        Member => "member",
    }
}

string_enum! {
    /// How a call ended, as stored on the call row and shown in the dashboard.
    CallOutcome, "call outcome" {
        /// The AI handled the call to a natural end (questions answered, caller said goodbye).
        Completed => "completed",
        /// The caller was connected to the owner or another human.
        Transferred => "transferred",
        /// The AI took a message or captured a lead for follow-up.
        MessageTaken => "message_taken",
        /// The call was refused: a blocked caller at the edge, or spam ended by screening.
        Rejected => "rejected",
        /// The caller left a recorded voicemail.
        Voicemail => "voicemail",
        /// Forward mode: the owner did not pick up and no one else handled the call.
        Missed => "missed",
        /// Something broke (provider outage, node error) before the call could be handled.
        Failed => "failed",
        /// The caller hung up before any outcome was reached.
        Abandoned => "abandoned",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_all<T>(all: &[T], as_str: fn(&T) -> &'static str)
    where
        T: FromStr<Err = UnknownVariant>
            + Serialize
            + for<'de> Deserialize<'de>
            + PartialEq
            + fmt::Debug,
    {
        for v in all {
            let s = as_str(v);
            assert_eq!(s.parse::<T>().as_ref(), Ok(v), "{s} parses back");
            assert_eq!(
                serde_json::to_string(v).unwrap(),
                format!("\"{s}\""),
                "serde agrees with as_str"
            );
            assert_eq!(&serde_json::from_str::<T>(&format!("\"{s}\"")).unwrap(), v);
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s} is lowercase snake_case"
            );
        }
    }

    #[test]
    fn every_variant_round_trips_through_str_and_serde() {
        check_all(CallMode::ALL, |v| v.as_str());
        check_all(ScreeningLabel::ALL, |v| v.as_str());
        check_all(Role::ALL, |v| v.as_str());
        check_all(CallOutcome::ALL, |v| v.as_str());
    }

    #[test]
    fn outcome_list_matches_documented_check_constraint() {
        let names: Vec<_> = CallOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            names,
            [
                "completed",
                "transferred",
                "message_taken",
                "rejected",
                "voicemail",
                "missed",
                "failed",
                "abandoned"
            ]
        );
    }

    #[test]
    fn rejects_other_spellings_with_helpful_message() {
        let err = "Spam".parse::<ScreeningLabel>().unwrap_err();
        assert_eq!(err.kind, "screening label");
        assert_eq!(
            err.to_string(),
            "unknown screening label \"Spam\"; expected one of: legit marketing spam unknown"
        );
        assert!(" forward".parse::<CallMode>().is_err());
        assert!("message-taken".parse::<CallOutcome>().is_err());
        assert!(serde_json::from_str::<Role>("\"owner\"").is_err());
    }
}
