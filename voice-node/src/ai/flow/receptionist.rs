//! The AI receptionist (also the forward-missed flow) as a pure state machine:
//!
//! ```text
//! GREETING → INTENT ─┬─ FAQ (knowledge-base answer; more questions loop here) ─┐
//!                    ├─ TRANSFER_ATTEMPT (department matched, business open)     │
//!                    └─ LEAD_CAPTURE (no answer, closed, or after a failed       │
//!                        transfer): name → callback number → reason → urgency    │
//!                      → CONFIRMATION (read back; corrections loop here)         │
//!                      → WRAP_UP ("anything else?") ←───────────────────────────┘
//!                      → ENDED
//! ```
//!
//! Input is typed: what the caller said plus the knowledge base's answer to it
//! ([`ReceptionistFlow::on_caller`]), or an action a language model chose
//! ([`ReceptionistFlow::apply`] with [`FlowAction`]). Either way the same transitions run, so a
//! cloud LLM that produces `Transfer{department}` or `CaptureLead{…}` still gets business hours,
//! the read-back and corrections for free. No I/O: the agent loads a [`ReceptionistSetup`] (the
//! tenant's departments, hours, the caller ID) and carries out each [`Reply`] (speak, transfer,
//! store the lead, hang up).

use shared::domain::CallOutcome;

use super::hours::Openness;
use super::lead::{
    CapturedLead, Urgency, is_no, is_yes, parse_name, parse_phone, parse_urgency, spoken_number,
};
use super::{Reply, TransferTarget, is_farewell};

/// The first words of a receptionist call.
pub const GREETING: &str = "Hello, thanks for calling. How can I help you today?";
/// The first words when the caller comes back from a transfer nobody answered.
pub const AFTER_FAILED_TRANSFER: &str = "Sorry, nobody could take your call. \
     Can I take your details so someone can call you back? What's your name?";
/// Questions answered before the agent wraps up.
const MAX_QUESTIONS: u32 = 5;

/// A transfer target of the tenant (`departments` row, enabled ones only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    /// "Sales"; also matched against the caller's words.
    pub name: String,
    /// E.164 or SIP URI.
    pub transfer_to: String,
    /// Words that route a caller here ("invoice", "refund").
    pub keywords: Vec<String>,
}

/// How the call reached the receptionist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Entry {
    /// A new call.
    #[default]
    Fresh,
    /// The edge sent the caller back after a transfer nobody answered: start at lead capture.
    AfterFailedTransfer,
}

/// What the flow knows about the tenant and the call, loaded by the agent before the greeting.
#[derive(Debug, Clone, Default)]
pub struct ReceptionistSetup {
    /// Enabled departments, in the tenant's order.
    pub departments: Vec<Department>,
    /// Who "a person" means when no department matches (the number's `owner_phone`).
    pub owner_phone: Option<String>,
    /// Open or closed now.
    pub openness: Openness,
    /// The caller's number, offered as the callback number.
    pub caller_id: Option<String>,
    /// Fresh call or back from a failed transfer.
    pub entry: Entry,
}

/// Where the conversation is (the issue's states, one to one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceptionistState {
    /// Before the greeting.
    Greeting,
    /// Listening for why they called.
    Intent,
    /// Answered a question from the knowledge base; listening for more.
    Faq,
    /// Putting the caller through; the dial decides what happens next.
    TransferAttempt,
    /// Taking the caller's details ([`Question`] says which).
    LeadCapture,
    /// Reading the details back; corrections stay here.
    Confirmation,
    /// "Anything else?"
    WrapUp,
    /// Said goodbye.
    Ended,
}

/// What the flow last asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    /// Nothing in particular.
    None,
    /// "What's your name?"
    Name,
    /// "Is 555… the best number?" (the caller ID).
    ConfirmCallerId,
    /// "What number should we call you back on?"
    CallbackNumber,
    /// "What's it about?"
    Reason,
    /// "Is it urgent?"
    Urgency,
    /// "I have Ann, 555…, about …, urgent. Is that right?"
    Readback,
    /// "What should I change?"
    WhichField,
}

/// An action a language model chose, fed to the same state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowAction {
    /// Put the caller through to the department named (or "owner").
    Transfer {
        /// Department name, matched case-insensitively.
        department: String,
    },
    /// End the call politely.
    EndCall,
    /// The caller's details as the model understood them; missing ones are asked for, then
    /// everything is read back for confirmation.
    CaptureLead {
        /// Name.
        name: Option<String>,
        /// Callback number.
        callback_number: Option<String>,
        /// Why they called.
        reason: Option<String>,
        /// How soon.
        urgency: Option<Urgency>,
    },
}

/// The details taken so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Draft {
    name: Option<String>,
    callback: Option<String>,
    reason: Option<String>,
    urgency: Option<Urgency>,
    /// The caller said the caller ID is not the number to use.
    caller_id_declined: bool,
}

/// The receptionist dialogue; see the module docs.
#[derive(Debug, Clone)]
pub struct ReceptionistFlow {
    /// Where it is.
    pub state: ReceptionistState,
    /// What it last asked.
    pub asking: Question,
    /// Tenant and call facts.
    setup: ReceptionistSetup,
    /// Lead details so far.
    draft: Draft,
    /// A field is being corrected: after its answer, read everything back again.
    correcting: bool,
    /// Knowledge-base answers given.
    answered: u32,
    /// The caller confirmed a lead (stored once).
    lead_confirmed: bool,
}

impl Default for ReceptionistFlow {
    fn default() -> Self {
        Self::new(ReceptionistSetup::default())
    }
}

impl ReceptionistFlow {
    /// A fresh call with the tenant's setup.
    pub fn new(setup: ReceptionistSetup) -> Self {
        ReceptionistFlow {
            state: ReceptionistState::Greeting,
            asking: Question::None,
            setup,
            draft: Draft::default(),
            correcting: false,
            answered: 0,
            lead_confirmed: false,
        }
    }

    /// GREETING → INTENT (or straight to LEAD_CAPTURE after a failed transfer).
    pub fn start(&mut self) -> Reply {
        match self.setup.entry {
            Entry::Fresh => {
                self.state = ReceptionistState::Intent;
                Reply::listen(GREETING)
            }
            Entry::AfterFailedTransfer => {
                self.state = ReceptionistState::LeadCapture;
                self.asking = Question::Name;
                Reply::listen(AFTER_FAILED_TRANSFER)
            }
        }
    }

    /// Whether the next utterance may be a question for the knowledge base.
    pub fn wants_answer(&self) -> bool {
        matches!(
            self.state,
            ReceptionistState::Intent | ReceptionistState::Faq | ReceptionistState::WrapUp
        )
    }

    /// Whether the caller is giving their details: a hang-up now still leaves a message.
    pub fn is_taking_details(&self) -> bool {
        matches!(
            self.state,
            ReceptionistState::LeadCapture | ReceptionistState::Confirmation
        )
    }

    /// Whether a lead was confirmed on this call.
    pub fn lead_confirmed(&self) -> bool {
        self.lead_confirmed
    }

    /// The reply to what the caller said; `kb_answer` is the knowledge base's answer to it (if
    /// one was similar enough). `None`: nothing to say (ended, or being transferred).
    pub fn on_caller(&mut self, text: &str, kb_answer: Option<&str>) -> Option<Reply> {
        match self.state {
            ReceptionistState::Greeting => {
                // The caller spoke over the greeting: treat it as their request.
                self.state = ReceptionistState::Intent;
                Some(self.on_request(text, kb_answer))
            }
            ReceptionistState::Intent | ReceptionistState::Faq | ReceptionistState::WrapUp => {
                Some(self.on_request(text, kb_answer))
            }
            ReceptionistState::LeadCapture => Some(self.on_detail(text)),
            ReceptionistState::Confirmation => Some(self.on_confirmation(text)),
            ReceptionistState::TransferAttempt | ReceptionistState::Ended => None,
        }
    }

    /// Runs an action chosen by a language model through the same transitions.
    pub fn apply(&mut self, action: FlowAction) -> Reply {
        match action {
            FlowAction::Transfer { department } => {
                let wanted = department.trim().to_lowercase();
                let target = self
                    .setup
                    .departments
                    .iter()
                    .find(|d| d.name.to_lowercase() == wanted)
                    .map(department_target)
                    .or_else(|| {
                        (wanted == "owner" || wanted == "the owner")
                            .then(|| self.owner_target())
                            .flatten()
                    });
                match target {
                    Some(target) => self.transfer_to(target, None),
                    None => self.begin_lead_capture(
                        &format!(
                            "I can't put you through to {} right now, \
                             but I can take your details and someone will call you back.",
                            department.trim()
                        ),
                        None,
                    ),
                }
            }
            FlowAction::EndCall => self.end(),
            FlowAction::CaptureLead {
                name,
                callback_number,
                reason,
                urgency,
            } => {
                if let Some(name) = name.as_deref().and_then(parse_name) {
                    self.draft.name = Some(name);
                }
                if let Some(number) = callback_number.as_deref().and_then(parse_phone) {
                    self.draft.callback = Some(number);
                }
                if let Some(reason) = reason
                    .map(|r| r.trim().to_owned())
                    .filter(|r| !r.is_empty())
                {
                    self.draft.reason = Some(reason);
                }
                if urgency.is_some() {
                    self.draft.urgency = urgency;
                }
                self.state = ReceptionistState::LeadCapture;
                self.next_question(String::new())
            }
        }
    }

    /// The transfer could not be started (no Twilio account, REST refused): take details
    /// instead.
    pub fn transfer_failed(&mut self) -> Reply {
        self.begin_lead_capture(
            "Sorry, I couldn't put you through. I can take your details and someone will \
             call you back.",
            None,
        )
    }

    /// INTENT / FAQ / WRAP_UP: a request.
    fn on_request(&mut self, text: &str, kb_answer: Option<&str>) -> Reply {
        if is_farewell(text) {
            return self.end();
        }
        if let Some(department) = match_department(&self.setup.departments, text) {
            let target = department_target(department);
            return self.transfer_to(target, Some(text));
        }
        if wants_a_person(text) {
            return match self
                .setup
                .departments
                .first()
                .map(department_target)
                .or_else(|| self.owner_target())
            {
                Some(target) => self.transfer_to(target, Some(text)),
                None => self.begin_lead_capture(
                    "Nobody can come to the phone right now, but I can take your details \
                     and someone will call you back.",
                    None,
                ),
            };
        }
        match kb_answer {
            Some(answer) => {
                self.answered += 1;
                if self.answered >= MAX_QUESTIONS {
                    self.state = ReceptionistState::Ended;
                    return Reply::hangup(
                        format!("{answer} Thank you for calling. Goodbye."),
                        self.final_outcome(),
                    );
                }
                self.state = ReceptionistState::Faq;
                Reply::listen(format!(
                    "{answer} Is there anything else I can help you with?"
                ))
            }
            None => self.begin_lead_capture(
                "I'm not sure about that, but I can take your details and someone will \
                 call you back.",
                Some(text),
            ),
        }
    }

    /// TRANSFER_ATTEMPT when open; LEAD_CAPTURE with the opening time when closed.
    fn transfer_to(&mut self, target: TransferTarget, request: Option<&str>) -> Reply {
        match self.setup.openness.clone() {
            Openness::Open => {
                self.state = ReceptionistState::TransferAttempt;
                self.asking = Question::None;
                Reply::transfer(
                    format!(
                        "Let me put you through to {}. One moment, please.",
                        target.department
                    ),
                    target,
                )
            }
            Openness::Closed { opens } => {
                let when = match opens {
                    Some(opens) => format!("We're closed right now; we open {opens}."),
                    None => "We're closed right now.".to_owned(),
                };
                self.begin_lead_capture(
                    &format!("{when} I can take your details and someone will call you back."),
                    request,
                )
            }
        }
    }

    /// Enters LEAD_CAPTURE after `preface`, keeping `reason` (the caller's request) if given.
    fn begin_lead_capture(&mut self, preface: &str, reason: Option<&str>) -> Reply {
        self.state = ReceptionistState::LeadCapture;
        if let Some(reason) = reason.map(clean_reason).filter(|r| !r.is_empty()) {
            self.draft.reason.get_or_insert(reason);
        }
        self.next_question(preface.to_owned())
    }

    /// Asks for the first missing detail, or reads everything back.
    fn next_question(&mut self, preface: String) -> Reply {
        let sep = if preface.is_empty() { "" } else { " " };
        let (question, text) = if self.correcting {
            self.correcting = false;
            (Question::Readback, self.readback())
        } else if self.draft.name.is_none() {
            (Question::Name, "What's your name?".to_owned())
        } else if self.draft.callback.is_none() {
            match (&self.setup.caller_id, self.draft.caller_id_declined) {
                (Some(caller_id), false) => (
                    Question::ConfirmCallerId,
                    format!(
                        "Is {} the best number to call you back on?",
                        spoken_number(caller_id)
                    ),
                ),
                _ => (
                    Question::CallbackNumber,
                    "What number should we call you back on?".to_owned(),
                ),
            }
        } else if self.draft.reason.is_none() {
            (Question::Reason, "And what is it about?".to_owned())
        } else if self.draft.urgency.is_none() {
            (Question::Urgency, "Is it urgent?".to_owned())
        } else {
            (Question::Readback, self.readback())
        };
        self.asking = question;
        if question == Question::Readback {
            self.state = ReceptionistState::Confirmation;
        }
        Reply::listen(format!("{preface}{sep}{text}"))
    }

    /// LEAD_CAPTURE: the answer to [`Self::asking`].
    fn on_detail(&mut self, text: &str) -> Reply {
        match self.asking {
            Question::Name => match parse_name(text) {
                Some(name) => {
                    self.draft.name = Some(name);
                    self.next_question(String::new())
                }
                None => Reply::listen("Sorry, I didn't catch your name. What's your name?"),
            },
            Question::ConfirmCallerId => {
                if let Some(number) = parse_phone(text) {
                    self.draft.callback = Some(number);
                } else if is_yes(text) {
                    self.draft.callback = self.setup.caller_id.clone();
                } else if is_no(text) || is_farewell(text) {
                    self.draft.caller_id_declined = true;
                } else {
                    return Reply::listen(
                        "Sorry, is the number you're calling from the best one? Yes or no?",
                    );
                }
                self.next_question(String::new())
            }
            Question::CallbackNumber => match parse_phone(text) {
                Some(number) => {
                    self.draft.callback = Some(number);
                    self.next_question(String::new())
                }
                None => Reply::listen(
                    "Sorry, I didn't catch that. Please say the number digit by digit.",
                ),
            },
            Question::Reason => {
                let reason = clean_reason(text);
                if reason.is_empty() {
                    return Reply::listen("Sorry, what is it about?");
                }
                self.draft.reason = Some(reason);
                self.next_question(String::new())
            }
            Question::Urgency => {
                let urgency = parse_urgency(text).unwrap_or(if is_yes(text) {
                    Urgency::High
                } else if is_no(text) {
                    Urgency::Low
                } else {
                    Urgency::Normal
                });
                self.draft.urgency = Some(urgency);
                self.next_question(String::new())
            }
            Question::None | Question::Readback | Question::WhichField => {
                self.next_question(String::new())
            }
        }
    }

    /// CONFIRMATION: yes → WRAP_UP with the lead; otherwise a correction.
    fn on_confirmation(&mut self, text: &str) -> Reply {
        if self.asking == Question::Readback && is_yes(text) && !is_no(text) {
            let lead = CapturedLead {
                name: self.draft.name.clone().unwrap_or_default(),
                callback_number: self.draft.callback.clone().unwrap_or_default(),
                reason: self.draft.reason.clone().unwrap_or_default(),
                urgency: self.draft.urgency.unwrap_or_default(),
            };
            self.lead_confirmed = true;
            self.state = ReceptionistState::WrapUp;
            self.asking = Question::None;
            return Reply::listen(format!(
                "Thank you, {}. I've passed your details on and someone will call you back. \
                 Is there anything else I can help you with?",
                lead.name
            ))
            .with_lead(lead);
        }
        if self.apply_correction(text) {
            self.asking = Question::Readback;
            return Reply::listen(format!("Thanks. {}", self.readback()));
        }
        if let Some(field) = field_named(text) {
            self.correcting = true;
            self.state = ReceptionistState::LeadCapture;
            self.asking = field;
            return Reply::listen(match field {
                Question::Name => "What's the right name?",
                Question::CallbackNumber => "What's the right number?",
                Question::Reason => "What is it about?",
                _ => "How urgent is it?",
            });
        }
        if is_no(text) || self.asking == Question::WhichField {
            self.asking = Question::WhichField;
            return Reply::listen(
                "Sorry about that. What should I change: your name, your number, \
                 the reason, or how urgent it is?",
            );
        }
        Reply::listen(format!(
            "Sorry, I didn't catch that. {} Please say yes or no.",
            self.readback()
        ))
    }

    /// A correction that carries its value ("no, the number is 555 0199", "it's not
    /// urgent", "my name is Bob"); `false` if none was recognised.
    fn apply_correction(&mut self, text: &str) -> bool {
        let lower = text.to_lowercase();
        if let Some(number) = parse_phone(text) {
            self.draft.callback = Some(number);
            return true;
        }
        if [
            "urgent",
            "emergency",
            "no rush",
            "whenever",
            "asap",
            "no hurry",
        ]
        .iter()
        .any(|w| lower.contains(w))
            && let Some(urgency) = parse_urgency(text)
        {
            self.draft.urgency = Some(urgency);
            return true;
        }
        let value_after = |markers: &[&str]| {
            markers.iter().find_map(|m| {
                lower
                    .find(m)
                    .map(|i| text[i + m.len()..].trim().trim_end_matches(['.', '!']))
                    .map(str::to_owned)
            })
        };
        let is_complaint = |v: &str| {
            let v = v.to_lowercase();
            v.is_empty()
                || ["wrong", "not right", "incorrect", "misspelled", "off"]
                    .iter()
                    .any(|w| v.starts_with(w))
        };
        if let Some(name) = value_after(&["name is ", "name's "]).filter(|v| !is_complaint(v)) {
            self.draft.name = Some(name);
            return true;
        }
        if let Some(reason) =
            value_after(&["it's about ", "it is about ", "reason is "]).filter(|v| !is_complaint(v))
        {
            self.draft.reason = Some(reason);
            return true;
        }
        // "No, it's Bob" / "Actually, I'm Ann": a name given without saying "name".
        let stripped = strip_disagreement(text);
        if stripped.len() < text.trim().len()
            && field_named(stripped).is_none()
            && let Some(name) = parse_name(stripped)
            && name.split_whitespace().count() <= 3
            && name.chars().next().is_some_and(char::is_uppercase)
        {
            self.draft.name = Some(name);
            return true;
        }
        false
    }

    /// "I have Ann, 5 5 5, 0 1 9 9, about a leaking roof, urgent. Is that right?"
    fn readback(&self) -> String {
        let number = self
            .draft
            .callback
            .as_deref()
            .map(spoken_number)
            .unwrap_or_else(|| "no number".into());
        format!(
            "I have {}, {}, about {}, {}. Is that right?",
            self.draft.name.as_deref().unwrap_or("no name"),
            number,
            self.draft.reason.as_deref().unwrap_or("your call"),
            self.draft.urgency.unwrap_or_default().spoken()
        )
    }

    /// ENDED with a goodbye.
    fn end(&mut self) -> Reply {
        self.state = ReceptionistState::Ended;
        self.asking = Question::None;
        Reply::hangup("Thank you for calling. Goodbye.", self.final_outcome())
    }

    /// A confirmed lead is a message taken; anything else a completed call.
    fn final_outcome(&self) -> CallOutcome {
        if self.lead_confirmed {
            CallOutcome::MessageTaken
        } else {
            CallOutcome::Completed
        }
    }

    fn owner_target(&self) -> Option<TransferTarget> {
        self.setup.owner_phone.as_ref().map(|to| TransferTarget {
            department: "someone".into(),
            to: to.clone(),
        })
    }
}

fn department_target(department: &Department) -> TransferTarget {
    TransferTarget {
        department: department.name.clone(),
        to: department.transfer_to.clone(),
    }
}

/// The department whose name or keywords the caller said most (ties: the tenant's order).
pub fn match_department<'a>(departments: &'a [Department], text: &str) -> Option<&'a Department> {
    let words: String = text
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let padded = format!(
        " {} ",
        words.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    let said = |phrase: &str| {
        let phrase = phrase.trim().to_lowercase();
        !phrase.is_empty() && padded.contains(&format!(" {phrase} "))
    };
    let mut best: Option<(&Department, usize)> = None;
    for department in departments {
        let score = usize::from(said(&department.name))
            + department.keywords.iter().filter(|k| said(k)).count();
        if score > 0 && best.is_none_or(|(_, s)| score > s) {
            best = Some((department, score));
        }
    }
    best.map(|(d, _)| d)
}

/// "Can I speak to someone?", "put me through to a person".
fn wants_a_person(text: &str) -> bool {
    let t = text.to_lowercase();
    let verbs = [
        "speak to",
        "speak with",
        "talk to",
        "talk with",
        "put me through",
        "transfer me",
        "connect me",
    ];
    let nouns = [
        "a person",
        "a human",
        "real person",
        "representative",
        "operator",
        "the owner",
    ];
    verbs.iter().any(|v| t.contains(v)) || nouns.iter().any(|n| t.contains(n))
}

/// Which detail the caller says is wrong ("the number is wrong", "my name").
fn field_named(text: &str) -> Option<Question> {
    let t = text.to_lowercase();
    if t.contains("number") || t.contains("phone") {
        Some(Question::CallbackNumber)
    } else if t.contains("name") {
        Some(Question::Name)
    } else if t.contains("urgen") || t.contains("priority") {
        Some(Question::Urgency)
    } else if t.contains("reason") || t.contains("about") {
        Some(Question::Reason)
    } else {
        None
    }
}

/// "No, it's Bob" → "it's Bob".
fn strip_disagreement(text: &str) -> &str {
    let trimmed = text.trim();
    let lower = trimmed.to_lowercase();
    for prefix in [
        "no,",
        "no ",
        "nope,",
        "actually,",
        "actually ",
        "not quite,",
    ] {
        if lower.starts_with(prefix) {
            return trimmed[prefix.len()..].trim();
        }
    }
    trimmed
}

/// The reason as it will be read back: without "it's about" and the final full stop.
fn clean_reason(text: &str) -> String {
    let trimmed = text.trim();
    let lower = trimmed.to_lowercase();
    let mut rest = trimmed;
    for prefix in [
        "it's about ",
        "it is about ",
        "i'm calling about ",
        "about ",
    ] {
        if lower.starts_with(prefix) {
            rest = &trimmed[prefix.len()..];
            break;
        }
    }
    rest.trim()
        .trim_end_matches(['.', '!', '?'])
        .trim()
        .to_owned()
}

#[cfg(test)]
#[path = "receptionist_tests.rs"]
mod tests;
