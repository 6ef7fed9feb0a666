//! Receptionist (also the forward-missed flow): greet, answer FAQs from the knowledge base,
//! otherwise take a message.

use shared::domain::CallOutcome;

use super::{Reply, is_farewell};
use crate::ai::kb::NO_ANSWER;

/// The first words of a receptionist call.
pub const GREETING: &str = "Hello, thanks for calling. How can I help you today?";
/// Questions answered before the agent wraps up.
const MAX_QUESTIONS: u32 = 5;

/// Where the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceptionistState {
    /// Listening for a question.
    Answering,
    /// Waiting for a message.
    TakingMessage,
    /// Said goodbye.
    Done,
}

/// The receptionist dialogue.
#[derive(Debug, Clone)]
pub struct ReceptionistFlow {
    /// Where it is.
    pub state: ReceptionistState,
    /// Questions answered so far.
    answered: u32,
}

impl Default for ReceptionistFlow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReceptionistFlow {
    /// A fresh call.
    pub fn new() -> Self {
        ReceptionistFlow {
            state: ReceptionistState::Answering,
            answered: 0,
        }
    }

    /// The greeting.
    pub fn start(&self) -> Reply {
        Reply::listen(GREETING)
    }

    /// Whether the next utterance is a question for the knowledge base.
    pub fn wants_answer(&self) -> bool {
        self.state == ReceptionistState::Answering
    }

    /// The reply to what the caller said; `kb_answer` is the knowledge base's answer to it (if
    /// one was similar enough).
    pub fn on_caller(&mut self, text: &str, kb_answer: Option<&str>) -> Option<Reply> {
        match self.state {
            ReceptionistState::Answering if is_farewell(text) && self.answered > 0 => {
                self.state = ReceptionistState::Done;
                Some(Reply::hangup(
                    "Thank you for calling. Goodbye.",
                    CallOutcome::Completed,
                ))
            }
            ReceptionistState::Answering => match kb_answer {
                Some(answer) => {
                    self.answered += 1;
                    if self.answered >= MAX_QUESTIONS {
                        self.state = ReceptionistState::Done;
                        return Some(Reply::hangup(
                            format!("{answer} Thank you for calling. Goodbye."),
                            CallOutcome::Completed,
                        ));
                    }
                    Some(Reply::listen(format!(
                        "{answer} Is there anything else I can help you with?"
                    )))
                }
                None => {
                    self.state = ReceptionistState::TakingMessage;
                    Some(Reply::listen(format!(
                        "{NO_ANSWER} Please say your name, your number and your message."
                    )))
                }
            },
            ReceptionistState::TakingMessage => {
                self.state = ReceptionistState::Done;
                Some(Reply::hangup(
                    "Thank you, I've taken your message and someone will call you back. Goodbye.",
                    CallOutcome::MessageTaken,
                ))
            }
            ReceptionistState::Done => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::flow::After;

    #[test]
    fn answers_from_the_kb_then_wraps_up_on_farewell() {
        let mut flow = ReceptionistFlow::new();
        let r = flow
            .on_caller("when do you open?", Some("We open at nine."))
            .unwrap();
        assert!(r.text.starts_with("We open at nine."));
        assert_eq!(r.after, After::Listen);
        let r = flow.on_caller("no, that's all", None).unwrap();
        assert_eq!(r.after, After::Hangup(CallOutcome::Completed));
    }

    #[test]
    fn takes_a_message_when_the_kb_has_no_answer() {
        let mut flow = ReceptionistFlow::new();
        let r = flow.on_caller("can you fix my roof?", None).unwrap();
        assert!(r.text.contains("I don't know"));
        assert_eq!(flow.state, ReceptionistState::TakingMessage);
        let r = flow.on_caller("it's Ann, 555 0100", None).unwrap();
        assert_eq!(r.after, After::Hangup(CallOutcome::MessageTaken));
    }
}
