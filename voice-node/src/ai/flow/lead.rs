//! A caller's details as the receptionist takes them down, and the small parsers that turn
//! spoken answers into fields ("it's Ann" → `Ann`, "five five five, oh one nine nine" →
//! `5550199`, "pretty urgent" → [`Urgency::High`]).
//!
//! Pure text functions: the flow calls them, tests feed them transcripts.

use super::{opens_with, words};

/// How soon the caller needs an answer (the `leads.urgency` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Urgency {
    /// Whenever is convenient.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Today / as soon as possible.
    High,
}

impl Urgency {
    /// The database spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }

    /// How the read-back says it.
    pub const fn spoken(self) -> &'static str {
        match self {
            Urgency::Low => "not urgent",
            Urgency::Normal => "normal priority",
            Urgency::High => "urgent",
        }
    }

    /// The database spelling read back (`None` for anything else).
    pub fn from_db(text: &str) -> Option<Self> {
        match text {
            "low" => Some(Urgency::Low),
            "normal" => Some(Urgency::Normal),
            "high" => Some(Urgency::High),
            _ => None,
        }
    }
}

/// A lead the caller confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedLead {
    /// As the caller said it.
    pub name: String,
    /// Digits (E.164 when it came from the caller ID).
    pub callback_number: String,
    /// Why they called.
    pub reason: String,
    /// How soon.
    pub urgency: Urgency,
}

/// The caller's name from an answer like "My name is Ann Lee." or "It's Bob".
pub fn parse_name(text: &str) -> Option<String> {
    let trimmed = text.trim().trim_end_matches(['.', '!', '?', ',']);
    let lower = trimmed.to_lowercase();
    let mut rest = trimmed;
    for prefix in [
        "no, my name is ",
        "no, it's ",
        "my name is ",
        "my name's ",
        "the name is ",
        "name is ",
        "this is ",
        "it's ",
        "it is ",
        "i'm ",
        "i am ",
        "yes, it's ",
        "sure, it's ",
        "sure, ",
        "yes, ",
    ] {
        if lower.starts_with(prefix) {
            rest = &trimmed[prefix.len()..];
            break;
        }
    }
    let name = rest.trim().trim_end_matches(['.', '!', '?', ',']).trim();
    (!name.is_empty() && name.chars().any(char::is_alphabetic)).then(|| name.to_owned())
}

/// A phone number from digits or spoken digits ("five five five oh one nine nine"); `None`
/// below 7 digits (too short to call back). A leading `+` is kept.
pub fn parse_phone(text: &str) -> Option<String> {
    let mut digits = String::new();
    let plus = text.trim_start().starts_with('+');
    for word in text
        .to_lowercase()
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '-' | '(' | ')'))
    {
        let spoken = match word {
            "zero" | "oh" | "o" => Some('0'),
            "one" => Some('1'),
            "two" => Some('2'),
            "three" => Some('3'),
            "four" => Some('4'),
            "five" => Some('5'),
            "six" => Some('6'),
            "seven" => Some('7'),
            "eight" => Some('8'),
            "nine" => Some('9'),
            _ => None,
        };
        match spoken {
            Some(d) => digits.push(d),
            None => digits.extend(word.chars().filter(char::is_ascii_digit)),
        }
    }
    if digits.len() < 7 || digits.len() > 15 {
        return None;
    }
    Some(if plus { format!("+{digits}") } else { digits })
}

/// How urgent the caller says it is; `None` when the answer does not say.
pub fn parse_urgency(text: &str) -> Option<Urgency> {
    let t = text.to_lowercase();
    let low = [
        "not urgent",
        "not very",
        "no rush",
        "not really",
        "whenever",
        "no hurry",
        "low",
        "not important",
        "can wait",
        "not that urgent",
    ];
    let high = [
        "urgent",
        "emergency",
        "asap",
        "as soon as possible",
        "right away",
        "immediately",
        "today",
        "high",
        "very",
    ];
    if low.iter().any(|p| t.contains(p)) {
        Some(Urgency::Low)
    } else if high.iter().any(|p| t.contains(p)) {
        Some(Urgency::High)
    } else if [
        "normal",
        "medium",
        "regular",
        "soon",
        "this week",
        "a bit",
        "somewhat",
    ]
    .iter()
    .any(|p| t.contains(p))
    {
        Some(Urgency::Normal)
    } else {
        None
    }
}

/// Whether an answer agrees ("yes", "that's right", "correct").
pub fn is_yes(text: &str) -> bool {
    opens_with(
        &words(text),
        &[
            "yes",
            "yeah",
            "yep",
            "yup",
            "correct",
            "that's right",
            "that is right",
            "that's correct",
            "right",
            "sure",
            "ok",
            "okay",
            "sounds good",
            "perfect",
            "exactly",
            "it is",
        ],
    )
}

/// Whether an answer disagrees ("no", "that's wrong", "not quite").
pub fn is_no(text: &str) -> bool {
    opens_with(
        &words(text),
        &[
            "no",
            "nope",
            "not quite",
            "that's wrong",
            "wrong",
            "incorrect",
            "actually",
        ],
    )
}

/// Reads a number back digit by digit in groups ("5 5 5, 0 1 9 9"), so TTS does not say
/// "five million…"; E.164 US numbers drop the country code.
pub fn spoken_number(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let digits = match digits.strip_prefix('1') {
        Some(rest) if number.starts_with("+1") && rest.len() == 10 => rest.to_owned(),
        _ => digits,
    };
    let groups: Vec<String> = match digits.len() {
        10 => vec![&digits[..3], &digits[3..6], &digits[6..]],
        7 => vec![&digits[..3], &digits[3..]],
        _ => vec![digits.as_str()],
    }
    .into_iter()
    .map(|g| {
        g.chars()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    })
    .collect();
    groups.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_introductions() {
        assert_eq!(parse_name("My name is Ann Lee."), Some("Ann Lee".into()));
        assert_eq!(parse_name("It's Bob"), Some("Bob".into()));
        assert_eq!(parse_name("Carla"), Some("Carla".into()));
        assert_eq!(parse_name("..."), None);
    }

    #[test]
    fn numbers_from_digits_and_words() {
        assert_eq!(parse_phone("555-0199"), Some("5550199".into()));
        assert_eq!(
            parse_phone("+1 (415) 555 0100"),
            Some("+14155550100".into())
        );
        assert_eq!(
            parse_phone("five five five, oh one nine nine"),
            Some("5550199".into())
        );
        assert_eq!(parse_phone("call me at 12"), None);
    }

    #[test]
    fn urgency_words() {
        assert_eq!(parse_urgency("It's not urgent"), Some(Urgency::Low));
        assert_eq!(
            parse_urgency("Pretty urgent, today please"),
            Some(Urgency::High)
        );
        assert_eq!(parse_urgency("sometime this week"), Some(Urgency::Normal));
        assert_eq!(parse_urgency("hmm"), None);
    }

    #[test]
    fn yes_and_no() {
        assert!(is_yes("Yes, that's right."));
        assert!(is_yes("Correct"));
        assert!(!is_yes("No, the number is wrong"));
        assert!(is_no("No, the number is wrong"));
        assert!(is_no("Actually, it's Bob"));
        assert!(!is_no("Nobody"));
    }

    #[test]
    fn numbers_are_read_back_in_groups() {
        assert_eq!(spoken_number("+14155550100"), "4 1 5, 5 5 5, 0 1 0 0");
        assert_eq!(spoken_number("5550199"), "5 5 5, 0 1 9 9");
    }
}
