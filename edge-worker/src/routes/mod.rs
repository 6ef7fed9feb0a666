//! One module per group of Twilio routes. Every handler takes a [`TwilioWebhook`] (signature
//! already checked) and answers TwiML, 204, or an [`crate::error::EdgeError`].
//!
//! [`TwilioWebhook`]: crate::verify::TwilioWebhook

pub mod callbacks;
pub mod dial_result;
pub mod inbound;
pub mod outbound;

use shared::form::Form;
use shared::routing::{NumberRoute, RoutingSnapshot};

/// The number a call was placed to: `To`, then `ForwardedFrom` (a carrier forwarded the call
/// from our number), then `Called` (legacy duplicate of `To`); the first one in the snapshot.
pub fn called_number<'s>(snapshot: &'s RoutingSnapshot, form: &Form) -> Option<&'s NumberRoute> {
    ["To", "ForwardedFrom", "Called"]
        .iter()
        .filter_map(|key| form.get(key))
        .find_map(|number| snapshot.lookup_number(number))
}
