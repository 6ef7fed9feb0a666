//! Deterministic dialogue per call mode: what the agent says next and what happens after.
//!
//! Flows are plain state machines with no I/O: the agent feeds them what the caller said (and,
//! for screening, the classifier's verdict; for the receptionist, the knowledge base's answer)
//! and speaks the [`Reply`] they return. That keeps every branch testable without audio.

pub mod context;
pub mod hours;
pub mod lead;
pub mod receptionist;
pub mod screening;

use shared::domain::CallOutcome;

pub use lead::{CapturedLead, Urgency};

/// Where a caller is put through to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferTarget {
    /// Who, as said to the caller and stored on the call event ("Sales", "the owner").
    pub department: String,
    /// The E.164 number or SIP URI dialed.
    pub to: String,
}

/// What happens once a reply has been said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// Wait for the caller.
    Listen,
    /// End the call with this outcome.
    Hangup(CallOutcome),
    /// Put the caller through (`<Dial>` over Twilio REST); the outcome follows the dial.
    Transfer(TransferTarget),
}

/// The agent's next words, and what they commit to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Spoken, clause by clause.
    pub text: String,
    /// Then.
    pub after: After,
    /// A lead the caller just confirmed: the agent stores and announces it (once per call).
    pub lead: Option<CapturedLead>,
}

impl Reply {
    /// Say `text`, then listen.
    pub fn listen(text: impl Into<String>) -> Self {
        Reply {
            text: text.into(),
            after: After::Listen,
            lead: None,
        }
    }

    /// Say `text`, then hang up with `outcome`.
    pub fn hangup(text: impl Into<String>, outcome: CallOutcome) -> Self {
        Reply {
            text: text.into(),
            after: After::Hangup(outcome),
            lead: None,
        }
    }

    /// Say `text`, then transfer the call to `target`.
    pub fn transfer(text: impl Into<String>, target: TransferTarget) -> Self {
        Reply {
            text: text.into(),
            after: After::Transfer(target),
            lead: None,
        }
    }

    /// The same reply, carrying a confirmed lead.
    pub fn with_lead(mut self, lead: CapturedLead) -> Self {
        self.lead = Some(lead);
        self
    }
}

/// Splits a reply into clauses to synthesize one at a time, so the first audio goes out after
/// the first clause rather than the whole reply. Splits after `.`, `?`, `!`, `;` and after
/// commas once a clause has a few words (a lone "Hello," is too short to be worth a break).
pub fn clauses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for ch in text.chars() {
        current.push(ch);
        let words = current.split_whitespace().count();
        let boundary = matches!(ch, '.' | '?' | '!' | ';') || (ch == ',' && words >= 4);
        if boundary && !current.trim().is_empty() {
            out.push(current.trim().to_owned());
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

/// Whether the caller is wrapping up ("no, that's all, thanks", "okay, bye").
pub fn is_farewell(text: &str) -> bool {
    if text.contains('?') {
        return false;
    }
    const OPENINGS: &[&str] = &[
        "no",
        "nope",
        "no thanks",
        "no thank you",
        "that's all",
        "that is all",
        "that's it",
        "bye",
        "goodbye",
        "nothing else",
        "i'm good",
        "all good",
    ];
    let words = words(text);
    opens_with(&words, OPENINGS)
        || words
            .last()
            .is_some_and(|w| matches!(w.as_str(), "bye" | "goodbye"))
}

/// The words of a transcript, lower-cased, punctuation dropped, apostrophes kept ("That's" →
/// "that's"). Speech-to-text punctuates the same words differently from run to run ("No, that's
/// all" or "No. That's all."), so matching is on words, never on the raw text.
pub fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace('\u{2019}', "'")
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether `words` begin with one of `phrases` (each a space-separated run of whole words).
pub fn opens_with(words: &[String], phrases: &[&str]) -> bool {
    phrases.iter().any(|phrase| {
        let mut said = words.iter();
        phrase
            .split(' ')
            .all(|e| said.next().is_some_and(|w| w == e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_replies_into_clauses() {
        assert_eq!(
            clauses(
                "Hello, thanks for calling. We open at nine, and close at five on weekdays! Bye"
            ),
            vec![
                "Hello, thanks for calling.",
                "We open at nine,",
                "and close at five on weekdays!",
                "Bye"
            ]
        );
        assert_eq!(
            clauses("I'm sorry, I don't know the answer to that, let me take a message."),
            vec![
                "I'm sorry, I don't know the answer to that,",
                "let me take a message."
            ]
        );
    }

    #[test]
    fn recognises_farewells_but_not_questions() {
        assert!(is_farewell("No, that's all. Thanks!"));
        assert!(is_farewell("bye"));
        assert!(!is_farewell("No idea, when do you open?"));
        assert!(!is_farewell("Nobody told me the price"));
    }

    #[test]
    fn farewells_are_recognised_however_they_are_punctuated() {
        // Whisper writes the same words with a comma one run and a full stop the next.
        for text in [
            "No, that's all. Goodbye.",
            "No. That's all. Goodbye.",
            "No that's all goodbye",
            "NO! THAT\u{2019}S ALL.",
            "That's it, thanks.",
            "Okay, thanks, bye.",
            "Alright then. Goodbye.",
        ] {
            assert!(is_farewell(text), "{text}");
        }
        for text in ["Nothing", "Nobody answered", "Is that all, bye?"] {
            assert!(!is_farewell(text), "{text}");
        }
    }

    #[test]
    fn words_drop_punctuation_and_keep_apostrophes() {
        assert_eq!(
            words("No. That's all, 'thanks'!"),
            ["no", "that's", "all", "thanks"]
        );
        assert!(opens_with(&words("That is all."), &["that is all"]));
        assert!(!opens_with(&words("That is"), &["that is all"]));
        assert!(!opens_with(&words("Nobody"), &["no"]));
    }
}
