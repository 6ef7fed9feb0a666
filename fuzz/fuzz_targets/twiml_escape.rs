//! Arbitrary text spoken with `<Say>` must never break out of the element: inside it there is
//! no raw `<`, and every `&` starts an entity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::twiml::{Say, VoiceResponse, escape_text};

fn assert_inert(escaped: &str) {
    assert!(!escaped.contains('<'), "raw < in {escaped:?}");
    let mut rest = escaped;
    while let Some(i) = rest.find('&') {
        rest = &rest[i..];
        let entity_ok = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
            .iter()
            .any(|e| rest.starts_with(e))
            || (rest.starts_with("&#")
                && rest[2..]
                    .split_once(';')
                    .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())));
        assert!(entity_ok, "bare & in {escaped:?}");
        rest = &rest[1..];
    }
}

fuzz_target!(|text: &str| {
    assert_inert(&escape_text(text));
    let xml = VoiceResponse::new().say(Say::new(text)).to_xml();
    let start = xml.find("<Say>").map(|i| i + "<Say>".len());
    let end = xml.rfind("</Say>");
    match (start, end) {
        (Some(start), Some(end)) if start <= end => assert_inert(&xml[start..end]),
        // An empty <Say/> may be self-closed; then there is nothing inside to check.
        _ => assert!(
            xml.contains("<Say/>") || xml.contains("<Say />"),
            "no Say in {xml}"
        ),
    }
});
