//! `application/x-www-form-urlencoded` bodies as ordered key/value pairs.
//!
//! Twilio posts every voice and messaging webhook as a form. The signature (see
//! [`crate::signature`]) is computed over the *decoded* keys and values, repeated keys included,
//! so the parser must keep every pair, in order, exactly as sent: a map would lose repeated keys
//! and a lossy decoder would make two different bodies validate as the same one.
//!
//! Decoding follows the WHATWG `application/x-www-form-urlencoded` parser (what `form_urlencoded`,
//! browsers and Twilio's SDK frameworks implement) with two deliberate differences, both stricter:
//!
//! * a `%` not followed by two hex digits is an error ([`FormError::BadPercentEncoding`]); WHATWG
//!   keeps it literally, which lets `%zz` and `%25zz` decode to the same string;
//! * bytes that are not UTF-8 after decoding are an error ([`FormError::InvalidUtf8`]); WHATWG
//!   replaces them with U+FFFD, which again maps different bodies to the same pairs.
//!
//! Twilio always sends canonical, UTF-8, percent-encoded forms, so neither rule rejects real
//! traffic; they only refuse input nobody legitimate produces.
//!
//! ```
//! use shared::form::Form;
//!
//! let form = Form::parse(b"CallSid=CA123&From=%2B14155551212&CallerName=Jos%C3%A9+N").unwrap();
//! assert_eq!(form.get("From"), Some("+14155551212"));
//! assert_eq!(form.get("CallerName"), Some("José N"));
//! ```

use std::fmt::Write as _;

/// Why a form body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A `%` at this byte offset of the body is not followed by two hex digits.
    #[error("malformed percent escape at byte {offset} of the form body")]
    BadPercentEncoding {
        /// Byte offset of the `%` in the raw body, for logs.
        offset: usize,
    },
    /// The key or value starting at this byte offset is not UTF-8 once decoded.
    #[error("form key or value at byte {offset} is not valid UTF-8 after decoding")]
    InvalidUtf8 {
        /// Byte offset in the raw body where the offending key or value starts.
        offset: usize,
    },
}

/// An ordered list of decoded form pairs.
///
/// Repeated keys, empty values and pair order are all preserved, because the Twilio signature
/// covers every value of a repeated key and callers may need the wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    /// Decoded `(key, value)` pairs in the order they appeared on the wire.
    pairs: Vec<(String, String)>,
}

impl Form {
    /// An empty form (for GET webhooks and JSON bodies, which carry no form parameters).
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a raw `application/x-www-form-urlencoded` body.
    ///
    /// `&` separates pairs (empty pairs such as `a=1&&b=2` are skipped, as WHATWG does), the first
    /// `=` separates key from value (a pair without `=` is a key with an empty value), `+` is a
    /// space and `%XX` is one byte.
    pub fn parse(body: &[u8]) -> Result<Form, FormError> {
        let mut pairs = Vec::new();
        let mut start = 0;
        for segment in body.split(|&b| b == b'&') {
            let segment_start = start;
            start += segment.len() + 1;
            if segment.is_empty() {
                continue;
            }
            let (key, value, value_start) = match segment.iter().position(|&b| b == b'=') {
                Some(eq) => (&segment[..eq], &segment[eq + 1..], segment_start + eq + 1),
                None => (
                    segment,
                    &segment[segment.len()..],
                    segment_start + segment.len(),
                ),
            };
            pairs.push((decode(key, segment_start)?, decode(value, value_start)?));
        }
        Ok(Form { pairs })
    }

    /// Builds a form from pairs, e.g. in tests and in the call simulator.
    pub fn from_pairs<I, K, V>(pairs: I) -> Form
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Form {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Appends a pair (a repeated key is kept as a second pair, never overwritten).
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.pairs.push((key.into(), value.into()));
    }

    /// The first value of `key`, the way frameworks expose a form field.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in wire order (e.g. repeated `MessagingBinding.Address`).
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `key` appears at all (an empty value counts as present).
    pub fn contains_key(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    /// All pairs in wire order; this is what [`crate::signature::compute`] takes.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Consumes the form, returning its pairs.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }

    /// Borrowed pairs in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pairs (repeated keys counted once per occurrence).
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Serialises back to a body, in pair order, the way Twilio and browsers encode forms
    /// (space as `+`, everything but `A-Za-z0-9*-._` percent-encoded), so
    /// `Form::parse(form.to_urlencoded().as_bytes())` returns an equal form.
    pub fn to_urlencoded(&self) -> String {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.pairs {
            serializer.append_pair(k, v);
        }
        serializer.finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Form {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Form::from_pairs(iter)
    }
}

impl<'a> IntoIterator for &'a Form {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl std::fmt::Display for Form {
    /// Writes the urlencoded form, so a `Form` can go straight into a request body.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_urlencoded())
    }
}

/// Decodes one key or value; `offset` is where `raw` starts in the body, for error positions.
fn decode(raw: &[u8], offset: usize) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = raw.get(i + 1).copied().and_then(hex_value);
                let lo = raw.get(i + 2).copied().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(FormError::BadPercentEncoding { offset: offset + i }),
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| FormError::InvalidUtf8 { offset })
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes `s` with the form encoding (used for building query strings of callback URLs).
///
/// Exposed so callers build callback URLs with the same canonical encoding Twilio uses; see
/// twilio.md §1.4 ("generate every callback/action URL with its query parameters already sorted
/// and canonically percent-encoded").
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for chunk in form_urlencoded::byte_serialize(s.as_bytes()) {
        let _ = out.write_str(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_repeated_keys_empty_values_and_order() {
        let form = Form::parse(b"b=2&a=&b=1&c").unwrap();
        assert_eq!(
            form.pairs(),
            &[
                ("b".into(), "2".into()),
                ("a".into(), String::new()),
                ("b".into(), "1".into()),
                ("c".into(), String::new()),
            ]
        );
        assert_eq!(form.get("b"), Some("2"));
        assert_eq!(form.get_all("b").collect::<Vec<_>>(), vec!["2", "1"]);
        assert_eq!(form.get("a"), Some(""));
        assert_eq!(form.get("zzz"), None);
    }

    #[test]
    fn plus_is_space_and_percent_plus_is_plus() {
        let form = Form::parse(b"Body=a%2Bb+c&From=%2B1").unwrap();
        assert_eq!(form.get("Body"), Some("a+b c"));
        assert_eq!(form.get("From"), Some("+1"));
    }

    #[test]
    fn decodes_utf8_percent_sequences_and_raw_utf8() {
        let form = Form::parse("n=Jos%C3%A9&m=Ñandú".as_bytes()).unwrap();
        assert_eq!(form.get("n"), Some("José"));
        assert_eq!(form.get("m"), Some("Ñandú"));
    }

    #[test]
    fn skips_empty_segments() {
        let form = Form::parse(b"&&a=1&&b=2&").unwrap();
        assert_eq!(form.len(), 2);
        assert!(Form::parse(b"").unwrap().is_empty());
    }

    #[test]
    fn splits_on_first_equals_only() {
        let form = Form::parse(b"a=b=c").unwrap();
        assert_eq!(form.get("a"), Some("b=c"));
    }

    #[test]
    fn rejects_malformed_percent_escapes_with_offset() {
        assert_eq!(
            Form::parse(b"a=1&b=%zz"),
            Err(FormError::BadPercentEncoding { offset: 6 })
        );
        assert_eq!(
            Form::parse(b"a=%4"),
            Err(FormError::BadPercentEncoding { offset: 2 })
        );
        assert_eq!(
            Form::parse(b"%=1"),
            Err(FormError::BadPercentEncoding { offset: 0 })
        );
    }

    #[test]
    fn rejects_invalid_utf8_after_decoding() {
        assert_eq!(
            Form::parse(b"a=1&b=%FF"),
            Err(FormError::InvalidUtf8 { offset: 6 })
        );
        assert_eq!(
            Form::parse(b"a=\xC3"),
            Err(FormError::InvalidUtf8 { offset: 2 })
        );
        assert_eq!(
            Form::parse(b"%C3=x"),
            Err(FormError::InvalidUtf8 { offset: 0 })
        );
    }

    #[test]
    fn round_trips_through_to_urlencoded() {
        let form = Form::from_pairs([
            ("CallerName", "José Ñandú & Co"),
            ("Body", "a+b c=d%"),
            ("CalledCity", ""),
            ("Body", "second"),
        ]);
        let encoded = form.to_urlencoded();
        assert_eq!(
            encoded,
            "CallerName=Jos%C3%A9+%C3%91and%C3%BA+%26+Co&Body=a%2Bb+c%3Dd%25&CalledCity=&Body=second"
        );
        assert_eq!(Form::parse(encoded.as_bytes()).unwrap(), form);
    }

    #[test]
    fn encode_component_matches_form_encoding() {
        assert_eq!(encode_component("+1 415&x"), "%2B1+415%26x");
    }
}
