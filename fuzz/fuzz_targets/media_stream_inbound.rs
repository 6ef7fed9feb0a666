//! `parse_inbound` on arbitrary text must never panic; whatever parses must survive
//! `to_json` → parse unchanged, and payload decoding must never panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::media_stream::{InboundMessage, parse_inbound, parse_outbound};

fuzz_target!(|text: &str| {
    if let Ok(msg) = parse_inbound(text) {
        let json = msg.to_json();
        let again = parse_inbound(&json).expect("to_json output parses");
        assert_eq!(again, msg);
        if let InboundMessage::Media(media) = &msg {
            let mut frame = [0u8; 160];
            let _ = media.payload.decode_into(&mut frame);
            let _ = media.payload.decode_to_vec();
        }
    }
    if let Ok(msg) = parse_outbound(text) {
        let json = msg.to_json();
        let again = parse_outbound(&json).expect("to_json output parses");
        assert_eq!(again, msg);
    }
});
