//! Screening: greet, ask who is calling and why, classify, act by the tenant's policy.
//!
//! The policy (`screening_policies`, [`ScreeningPolicy`]) maps each label to an action:
//! - transfer → "please hold", then the call is put through to the owner (`<Dial>` over REST);
//!   without an owner phone the caller is asked for a message instead;
//! - take a message → ask for name, number and message;
//! - end the call → marketing hears a do-not-call request, everyone else a polite goodbye.
//!
//! Defaults: legit → transfer, unknown → take a message, marketing and spam → end the call.
//! A verdict below the label's `min_confidence` is treated as unknown. Callers on the tenant's
//! allow list skip all of it and are put straight through.

use shared::domain::{CallOutcome, ScreeningLabel};

use super::{After, Reply, TransferTarget};
use crate::agent::ScreeningAction;

/// The first words of a screened call.
pub const GREETING: &str =
    "Hello, this is a call assistant. May I ask who's calling, and what it's about?";

/// What the tenant wants done per label.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScreeningPolicy {
    /// (label, action, min_confidence) overrides; labels not listed use [`default_action`].
    rules: Vec<(ScreeningLabel, ScreeningAction, f32)>,
}

/// The node's default per label.
pub const fn default_action(label: ScreeningLabel) -> ScreeningAction {
    match label {
        ScreeningLabel::Legit => ScreeningAction::Transfer,
        ScreeningLabel::Unknown => ScreeningAction::TakeMessage,
        ScreeningLabel::Marketing | ScreeningLabel::Spam => ScreeningAction::EndCall,
    }
}

impl ScreeningPolicy {
    /// A policy from the tenant's rows.
    pub fn new(rules: Vec<(ScreeningLabel, ScreeningAction, f32)>) -> Self {
        ScreeningPolicy { rules }
    }

    /// The label that counts (unknown below the label's minimum confidence) and its action.
    pub fn decide(
        &self,
        label: ScreeningLabel,
        confidence: f32,
    ) -> (ScreeningLabel, ScreeningAction) {
        let rule = |l: ScreeningLabel| self.rules.iter().find(|(r, _, _)| *r == l);
        let label = match rule(label) {
            Some((_, _, min)) if confidence < *min => ScreeningLabel::Unknown,
            _ => label,
        };
        let action = rule(label).map_or_else(|| default_action(label), |(_, a, _)| *a);
        (label, action)
    }
}

/// What the flow knows before the greeting.
#[derive(Debug, Clone, Default)]
pub struct ScreeningSetup {
    /// The tenant's policy.
    pub policy: ScreeningPolicy,
    /// Where legit callers are put through (the number's `owner_phone`).
    pub owner_phone: Option<String>,
    /// The caller is on the tenant's allow list (a contact added in the dashboard).
    pub allow_listed: bool,
}

/// Where the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreeningState {
    /// Waiting for the caller to say who they are.
    AwaitingIntroduction,
    /// Putting the caller through.
    Transferring,
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
    /// Policy, owner, allow list.
    setup: ScreeningSetup,
}

impl Default for ScreeningFlow {
    fn default() -> Self {
        Self::new(ScreeningSetup::default())
    }
}

impl ScreeningFlow {
    /// A fresh call.
    pub fn new(setup: ScreeningSetup) -> Self {
        ScreeningFlow {
            state: ScreeningState::AwaitingIntroduction,
            setup,
        }
    }

    fn owner(&self) -> Option<TransferTarget> {
        self.setup.owner_phone.as_ref().map(|to| TransferTarget {
            department: "the owner".into(),
            to: to.clone(),
        })
    }

    /// The greeting; an allow-listed caller is put straight through.
    pub fn start(&mut self) -> Reply {
        if self.setup.allow_listed
            && let Some(owner) = self.owner()
        {
            self.state = ScreeningState::Transferring;
            return Reply::transfer("Hello, putting you through now.", owner);
        }
        Reply::listen(GREETING)
    }

    /// Whether the caller was put through without screening.
    pub fn skipped_screening(&self) -> bool {
        self.setup.allow_listed && self.state == ScreeningState::Transferring
    }

    /// Whether the next caller utterance needs classifying.
    pub fn wants_verdict(&self) -> bool {
        self.state == ScreeningState::AwaitingIntroduction
    }

    /// The reply to the caller's introduction, given its verdict; and what that does.
    pub fn on_introduction(
        &mut self,
        label: ScreeningLabel,
        confidence: f32,
    ) -> (Reply, ScreeningAction) {
        let (label, action) = self.setup.policy.decide(label, confidence);
        match action {
            ScreeningAction::Transfer => match self.owner() {
                Some(owner) => {
                    self.state = ScreeningState::Transferring;
                    (
                        Reply::transfer("Thank you. Please hold while I put you through.", owner),
                        ScreeningAction::Transfer,
                    )
                }
                // Nobody to transfer to: what really happens is a message.
                None => self.take_message(),
            },
            ScreeningAction::TakeMessage => self.take_message(),
            ScreeningAction::EndCall => {
                self.state = ScreeningState::Done;
                let text = if label == ScreeningLabel::Marketing {
                    "Thank you, but we don't accept sales calls. \
                     Please add this number to your do-not-call list. Goodbye."
                } else {
                    "Thank you for calling. Goodbye."
                };
                (
                    Reply::hangup(text, CallOutcome::Rejected),
                    ScreeningAction::EndCall,
                )
            }
        }
    }

    fn take_message(&mut self) -> (Reply, ScreeningAction) {
        self.state = ScreeningState::TakingMessage;
        (
            Reply::listen(
                "Thank you. They aren't available right now. \
                 Please leave your name, your number and a short message.",
            ),
            ScreeningAction::TakeMessage,
        )
    }

    /// The transfer could not be started: take a message instead.
    pub fn transfer_failed(&mut self) -> Reply {
        self.state = ScreeningState::TakingMessage;
        Reply::listen(
            "Sorry, I couldn't put you through. \
             Please leave your name, your number and a short message.",
        )
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
            ScreeningState::AwaitingIntroduction
            | ScreeningState::Transferring
            | ScreeningState::Done => None,
        }
    }

    /// Whether the flow has said goodbye.
    pub fn is_done(&self) -> bool {
        self.state == ScreeningState::Done
    }
}

/// What ends a call when the flow ends it, if anything.
pub fn outcome_of(reply: &Reply) -> Option<CallOutcome> {
    match &reply.after {
        After::Hangup(o) => Some(*o),
        After::Listen | After::Transfer(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_owner() -> ScreeningSetup {
        ScreeningSetup {
            owner_phone: Some("+15550009999".into()),
            ..ScreeningSetup::default()
        }
    }

    #[test]
    fn legit_callers_are_transferred_to_the_owner_by_default() {
        let mut flow = ScreeningFlow::new(with_owner());
        assert_eq!(flow.start().text, GREETING);
        let (reply, action) = flow.on_introduction(ScreeningLabel::Legit, 0.9);
        assert_eq!(action, ScreeningAction::Transfer);
        assert_eq!(
            reply.after,
            After::Transfer(TransferTarget {
                department: "the owner".into(),
                to: "+15550009999".into()
            })
        );
        assert_eq!(flow.state, ScreeningState::Transferring);
        assert_eq!(flow.on_caller("hello?"), None);
    }

    #[test]
    fn without_an_owner_phone_legit_callers_leave_a_message() {
        let mut flow = ScreeningFlow::default();
        let (reply, action) = flow.on_introduction(ScreeningLabel::Legit, 0.9);
        assert_eq!(action, ScreeningAction::TakeMessage);
        assert_eq!(reply.after, After::Listen);
        let bye = flow.on_caller("it's about tomorrow").unwrap();
        assert_eq!(bye.after, After::Hangup(CallOutcome::MessageTaken));
        assert!(flow.is_done());
    }

    #[test]
    fn a_failed_transfer_takes_a_message() {
        let mut flow = ScreeningFlow::new(with_owner());
        flow.on_introduction(ScreeningLabel::Legit, 0.9);
        let r = flow.transfer_failed();
        assert_eq!(flow.state, ScreeningState::TakingMessage);
        assert!(r.text.contains("leave your name"));
    }

    #[test]
    fn marketing_gets_a_do_not_call_request_and_spam_a_polite_end() {
        let (reply, action) =
            ScreeningFlow::new(with_owner()).on_introduction(ScreeningLabel::Marketing, 0.9);
        assert!(reply.text.contains("do-not-call"));
        assert_eq!(action, ScreeningAction::EndCall);
        assert_eq!(outcome_of(&reply), Some(CallOutcome::Rejected));
        let (reply, _) =
            ScreeningFlow::new(with_owner()).on_introduction(ScreeningLabel::Spam, 0.9);
        assert_eq!(outcome_of(&reply), Some(CallOutcome::Rejected));
        assert!(!reply.text.contains("do-not-call"));
    }

    #[test]
    fn unknown_callers_leave_a_message() {
        let mut flow = ScreeningFlow::new(with_owner());
        let (_, action) = flow.on_introduction(ScreeningLabel::Unknown, 0.9);
        assert_eq!(action, ScreeningAction::TakeMessage);
        assert_eq!(
            flow.on_caller("call me back").map(|r| r.after),
            Some(After::Hangup(CallOutcome::MessageTaken))
        );
    }

    #[test]
    fn the_tenants_policy_and_minimum_confidence_decide() {
        let policy = ScreeningPolicy::new(vec![
            (ScreeningLabel::Legit, ScreeningAction::TakeMessage, 0.0),
            (ScreeningLabel::Marketing, ScreeningAction::EndCall, 0.8),
        ]);
        assert_eq!(
            policy.decide(ScreeningLabel::Legit, 0.9),
            (ScreeningLabel::Legit, ScreeningAction::TakeMessage)
        );
        // Unsure marketing counts as unknown, whose default is a message.
        assert_eq!(
            policy.decide(ScreeningLabel::Marketing, 0.5),
            (ScreeningLabel::Unknown, ScreeningAction::TakeMessage)
        );
        assert_eq!(
            policy.decide(ScreeningLabel::Spam, 0.5),
            (ScreeningLabel::Spam, ScreeningAction::EndCall)
        );
    }

    #[test]
    fn allow_listed_callers_are_put_straight_through() {
        let mut flow = ScreeningFlow::new(ScreeningSetup {
            allow_listed: true,
            ..with_owner()
        });
        let reply = flow.start();
        assert!(matches!(reply.after, After::Transfer(ref t) if t.to == "+15550009999"));
        assert!(flow.skipped_screening());
        assert!(!flow.wants_verdict());
    }
}
