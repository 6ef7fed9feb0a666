//! Screening: greet, ask who is calling and why, classify, act by label.
//!
//! - legit → "let me see if they're available" (the transfer itself is issue 6; until it
//!   exists the caller is asked for a message, and the stored action says `take_message`);
//! - marketing → a do-not-call request, then goodbye;
//! - spam → a polite goodbye;
//! - unknown → take a message.

use shared::domain::{CallOutcome, ScreeningLabel};

use super::{After, Reply};
use crate::agent::ScreeningAction;

/// The first words of a screened call.
pub const GREETING: &str =
    "Hello, this is a call assistant. May I ask who's calling, and what it's about?";

/// Where the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreeningState {
    /// Waiting for the caller to say who they are.
    AwaitingIntroduction,
    /// Waiting for a message.
    TakingMessage,
    /// Said goodbye.
    Done,
}

/// The screening dialogue.
#[derive(Debug, Clone)]
pub struct ScreeningFlow {
    /// Where it is.
    pub state: ScreeningState,
}

impl Default for ScreeningFlow {
    fn default() -> Self {
        Self::new()
    }
}

impl ScreeningFlow {
    /// A fresh call.
    pub fn new() -> Self {
        ScreeningFlow {
            state: ScreeningState::AwaitingIntroduction,
        }
    }

    /// The greeting.
    pub fn start(&self) -> Reply {
        Reply::listen(GREETING)
    }

    /// Whether the next caller utterance needs classifying.
    pub fn wants_verdict(&self) -> bool {
        self.state == ScreeningState::AwaitingIntroduction
    }

    /// The reply to the caller's introduction, given its label; and what that does.
    pub fn on_introduction(&mut self, label: ScreeningLabel) -> (Reply, ScreeningAction) {
        match label {
            ScreeningLabel::Legit => {
                self.state = ScreeningState::TakingMessage;
                (
                    Reply::listen(
                        "Thank you. Let me see if they're available. \
                         They can't come to the phone right now, so please leave a short message \
                         with your number, and I'll pass it on straight away.",
                    ),
                    // What actually happens to the caller until transfers exist (issue 6, which
                    // turns this into `Transfer` with a `<Dial>` to the owner).
                    ScreeningAction::TakeMessage,
                )
            }
            ScreeningLabel::Marketing => {
                self.state = ScreeningState::Done;
                (
                    Reply::hangup(
                        "Thank you, but we don't accept sales calls. \
                         Please add this number to your do-not-call list. Goodbye.",
                        CallOutcome::Rejected,
                    ),
                    ScreeningAction::EndCall,
                )
            }
            ScreeningLabel::Spam => {
                self.state = ScreeningState::Done;
                (
                    Reply::hangup("Thank you for calling. Goodbye.", CallOutcome::Rejected),
                    ScreeningAction::EndCall,
                )
            }
            ScreeningLabel::Unknown => {
                self.state = ScreeningState::TakingMessage;
                (
                    Reply::listen(
                        "Thank you. They aren't available right now. \
                         Please leave your name, your number and a short message.",
                    ),
                    ScreeningAction::TakeMessage,
                )
            }
        }
    }

    /// The reply to anything said after the introduction.
    pub fn on_caller(&mut self, _text: &str) -> Option<Reply> {
        match self.state {
            ScreeningState::TakingMessage => {
                self.state = ScreeningState::Done;
                Some(Reply::hangup(
                    "Thank you, I'll make sure they get your message. Goodbye.",
                    CallOutcome::MessageTaken,
                ))
            }
            ScreeningState::AwaitingIntroduction | ScreeningState::Done => None,
        }
    }

    /// Whether the flow has said goodbye.
    pub fn is_done(&self) -> bool {
        self.state == ScreeningState::Done
    }
}

/// What ends a call when the flow ends it, if anything.
pub fn outcome_of(reply: &Reply) -> Option<CallOutcome> {
    match reply.after {
        After::Hangup(o) => Some(o),
        After::Listen => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legit_callers_are_put_through_then_asked_for_a_message() {
        let mut flow = ScreeningFlow::new();
        let (reply, action) = flow.on_introduction(ScreeningLabel::Legit);
        assert!(reply.text.contains("see if they're available"));
        assert_eq!(action, ScreeningAction::TakeMessage);
        assert_eq!(reply.after, After::Listen);
        let bye = flow.on_caller("it's about tomorrow").unwrap();
        assert_eq!(bye.after, After::Hangup(CallOutcome::MessageTaken));
        assert!(flow.is_done());
    }

    #[test]
    fn marketing_gets_a_do_not_call_request_and_spam_a_polite_end() {
        let (reply, action) = ScreeningFlow::new().on_introduction(ScreeningLabel::Marketing);
        assert!(reply.text.contains("do-not-call"));
        assert_eq!(action, ScreeningAction::EndCall);
        assert_eq!(outcome_of(&reply), Some(CallOutcome::Rejected));
        let (reply, _) = ScreeningFlow::new().on_introduction(ScreeningLabel::Spam);
        assert_eq!(outcome_of(&reply), Some(CallOutcome::Rejected));
    }

    #[test]
    fn unknown_callers_leave_a_message() {
        let mut flow = ScreeningFlow::new();
        let (_, action) = flow.on_introduction(ScreeningLabel::Unknown);
        assert_eq!(action, ScreeningAction::TakeMessage);
        assert_eq!(
            flow.on_caller("call me back").map(|r| r.after),
            Some(After::Hangup(CallOutcome::MessageTaken))
        );
    }
}
