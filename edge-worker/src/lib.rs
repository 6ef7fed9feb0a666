//! callgate's edge: Twilio webhook handlers (issue 3 builds them out).
