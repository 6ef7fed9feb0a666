//! Twilio-shaped identifiers: two letters and 32 lowercase hex digits (`CA…`, `MZ…`, `AC…`).

use uuid::Uuid;

/// A fresh random SID with `prefix` (`"CA"` for calls, `"MZ"` for streams, `"RE"` for
/// recordings, `"AC"` for accounts).
pub fn sid(prefix: &str) -> String {
    format!("{prefix}{}", Uuid::new_v4().simple())
}

/// Whether `s` looks like a SID with `prefix`.
pub fn is_sid(prefix: &str, s: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_prefix_and_32_hex() {
        let call = sid("CA");
        assert!(is_sid("CA", &call), "{call}");
        assert_ne!(call, sid("CA"));
        assert!(!is_sid("CA", "CA123"));
        assert!(!is_sid("MZ", &call));
    }
}
