//! What the AI texts a caller nobody answered: the [`SmsResponder`] seam and its first
//! implementation, [`KeywordResponder`] (knowledge-base answers by keyword overlap, otherwise lead
//! capture). The AI pipeline can swap in an embedding-based responder behind the same trait.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use uuid::Uuid;

/// One message of the thread, oldest first.
#[derive(Debug, Clone)]
pub struct ThreadMessage {
    /// `caller`, `owner`, `ai` or `system`.
    pub author: String,
    /// The text.
    pub body: String,
}

/// One knowledge-base entry.
#[derive(Debug, Clone)]
pub struct KbEntry {
    /// The question it answers.
    pub question: String,
    /// The answer.
    pub answer: String,
}

/// What a responder sees.
#[derive(Debug, Clone)]
pub struct ResponderInput {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The tenant's name, for the reply's wording.
    pub business: String,
    /// The thread so far, oldest first (the last caller message is the one to answer).
    pub history: Vec<ThreadMessage>,
    /// The tenant's enabled knowledge base.
    pub kb: Vec<KbEntry>,
}

/// A lead the caller gave in the thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadDraft {
    /// Their name, when they said it.
    pub name: Option<String>,
    /// Why they want a call back.
    pub reason: String,
}

/// The AI's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsReply {
    /// The text to send.
    pub text: String,
    /// A lead to store, if the caller gave one.
    pub lead: Option<LeadDraft>,
}

/// Writes the AI's SMS replies.
pub trait SmsResponder: Send + Sync + 'static {
    /// The reply to the last caller message of `input.history`.
    fn reply<'a>(
        &'a self,
        input: &'a ResponderInput,
    ) -> Pin<Box<dyn Future<Output = Result<SmsReply, String>> + Send + 'a>>;
}

/// The question that starts lead capture; also how the responder recognises that it asked.
pub const LEAD_PROMPT: &str =
    "Could you tell me your name and what you would like us to call you back about?";

/// Answers from the knowledge base when a question shares enough words with the caller's text;
/// otherwise asks for a name and callback reason, and turns the answer into a lead.
#[derive(Debug, Clone, Default)]
pub struct KeywordResponder;

impl SmsResponder for KeywordResponder {
    fn reply<'a>(
        &'a self,
        input: &'a ResponderInput,
    ) -> Pin<Box<dyn Future<Output = Result<SmsReply, String>> + Send + 'a>> {
        Box::pin(async move { Ok(keyword_reply(input)) })
    }
}

const STOPWORDS: &[&str] = &[
    "the", "and", "for", "you", "your", "are", "what", "when", "where", "how", "can", "could",
    "would", "does", "did", "have", "has", "with", "this", "that", "there", "from", "about",
    "please", "hi", "hello", "thanks", "thank", "our", "any", "will", "just", "want", "need",
    "like", "know", "tell", "who", "why", "which", "is", "it", "do", "to", "of", "in", "on", "at",
    "me", "my", "we", "us", "be", "am", "was", "were", "get", "hey",
];

/// Lower-cased content words, crudely stemmed (`opening` → `open`, `hours` → `hour`).
fn keywords(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.len() >= 3 && !STOPWORDS.contains(&w.as_str()))
        .map(|w| {
            for suffix in ["ing", "ed", "es", "s"] {
                if let Some(stem) = w.strip_suffix(suffix)
                    && stem.len() >= 3
                {
                    return stem.to_owned();
                }
            }
            w
        })
        .collect()
}

/// The entry whose question shares the most words with `text`, if it shares at least one and at
/// least a third of the question's words.
pub fn best_kb_match<'a>(text: &str, kb: &'a [KbEntry]) -> Option<&'a KbEntry> {
    let words = keywords(text);
    kb.iter()
        .filter_map(|entry| {
            let question = keywords(&entry.question);
            let overlap = question.intersection(&words).count();
            (overlap >= 1 && overlap * 3 >= question.len()).then_some((overlap, entry))
        })
        .max_by_key(|(overlap, _)| *overlap)
        .map(|(_, entry)| entry)
}

/// Reads "my name is Ann Lee, about my crown" as a lead.
pub fn parse_lead(text: &str) -> LeadDraft {
    // ASCII lower-casing keeps byte offsets, so positions in `lower` are positions in `text`.
    let lower = text.to_ascii_lowercase();
    for marker in [
        "my name is ",
        "this is ",
        "name's ",
        "i'm ",
        "i am ",
        "it's ",
    ] {
        if let Some(pos) = lower.find(marker) {
            let start = pos + marker.len();
            let rest = &text[start..];
            let end = rest
                .find(['.', ',', ';', '!', '?', '\n', '-'])
                .unwrap_or(rest.len());
            let name_words: Vec<&str> = rest[..end].split_whitespace().take(3).collect();
            let name_words: Vec<&str> = name_words
                .into_iter()
                .take_while(|w| {
                    !["and", "about", "calling", "regarding"].contains(&w.to_lowercase().as_str())
                })
                .collect();
            if name_words.is_empty() {
                continue;
            }
            let name = name_words.join(" ");
            let consumed = start
                + rest[..end]
                    .find(name_words[name_words.len() - 1])
                    .unwrap_or(0)
                + name_words[name_words.len() - 1].len();
            let before = text[..pos].trim();
            let after = text[consumed..].trim_start_matches(|c: char| !c.is_alphanumeric());
            let mut reason = format!("{before} {after}").trim().to_owned();
            for filler in [
                "and ",
                "i'm calling about ",
                "calling about ",
                "about ",
                "regarding ",
            ] {
                if reason.to_ascii_lowercase().starts_with(filler) {
                    reason = reason.get(filler.len()..).unwrap_or_default().to_owned();
                }
            }
            return LeadDraft {
                name: Some(name),
                reason: if reason.is_empty() {
                    text.trim().to_owned()
                } else {
                    reason
                },
            };
        }
    }
    LeadDraft {
        name: None,
        reason: text.trim().to_owned(),
    }
}

fn keyword_reply(input: &ResponderInput) -> SmsReply {
    let last_caller = input
        .history
        .iter()
        .rev()
        .find(|m| m.author == "caller")
        .map(|m| m.body.as_str())
        .unwrap_or_default();
    let asked_for_lead = input
        .history
        .iter()
        .rev()
        .find(|m| m.author == "ai")
        .is_some_and(|m| m.body.contains(LEAD_PROMPT));
    if asked_for_lead {
        let lead = parse_lead(last_caller);
        let thanks = match &lead.name {
            Some(name) => format!("Thank you, {name}."),
            None => "Thank you.".to_owned(),
        };
        return SmsReply {
            text: format!("{thanks} We will call you back as soon as we can."),
            lead: Some(lead),
        };
    }
    if let Some(entry) = best_kb_match(last_caller, &input.kb) {
        return SmsReply {
            text: entry.answer.clone(),
            lead: None,
        };
    }
    SmsReply {
        text: format!(
            "Thanks for your message to {}. {LEAD_PROMPT}",
            input.business
        ),
        lead: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(history: &[(&str, &str)]) -> ResponderInput {
        ResponderInput {
            tenant_id: Uuid::nil(),
            business: "Acme Dental".into(),
            history: history
                .iter()
                .map(|(a, b)| ThreadMessage {
                    author: (*a).into(),
                    body: (*b).into(),
                })
                .collect(),
            kb: vec![
                KbEntry {
                    question: "What are your opening hours?".into(),
                    answer: "We are open 9 to 5, Monday to Friday.".into(),
                },
                KbEntry {
                    question: "Do you take insurance?".into(),
                    answer: "Yes, most major plans.".into(),
                },
            ],
        }
    }

    #[test]
    fn answers_from_the_knowledge_base_by_shared_words() {
        let reply = keyword_reply(&input(&[("caller", "when are you open? what hours")]));
        assert_eq!(reply.text, "We are open 9 to 5, Monday to Friday.");
        let reply = keyword_reply(&input(&[("caller", "is my insurance accepted")]));
        assert_eq!(reply.text, "Yes, most major plans.");
    }

    #[test]
    fn unknown_questions_start_lead_capture_and_the_answer_is_a_lead() {
        let reply = keyword_reply(&input(&[("caller", "my tooth hurts")]));
        assert!(reply.text.contains(LEAD_PROMPT));
        assert_eq!(reply.lead, None);
        let reply = keyword_reply(&input(&[
            ("caller", "my tooth hurts"),
            ("ai", &reply.text),
            ("caller", "My name is Ann Lee, about a broken crown"),
        ]));
        assert_eq!(
            reply.lead,
            Some(LeadDraft {
                name: Some("Ann Lee".into()),
                reason: "a broken crown".into()
            })
        );
        assert!(reply.text.contains("Ann Lee"));
    }

    #[test]
    fn a_lead_without_a_name_keeps_the_whole_text_as_reason() {
        assert_eq!(
            parse_lead("need a cleaning next week"),
            LeadDraft {
                name: None,
                reason: "need a cleaning next week".into()
            }
        );
    }
}
