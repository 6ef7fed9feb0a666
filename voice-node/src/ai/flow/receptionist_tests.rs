//! One test per transition of the receptionist state machine.

use super::*;
use crate::ai::flow::After;

fn departments() -> Vec<Department> {
    vec![
        Department {
            name: "Sales".into(),
            transfer_to: "+15550001111".into(),
            keywords: vec!["quote".into(), "pricing".into()],
        },
        Department {
            name: "Billing".into(),
            transfer_to: "sip:billing@example.com".into(),
            keywords: vec!["invoice".into(), "refund".into()],
        },
    ]
}

fn open_setup() -> ReceptionistSetup {
    ReceptionistSetup {
        departments: departments(),
        owner_phone: Some("+15550009999".into()),
        openness: Openness::Open,
        caller_id: Some("+14155550100".into()),
        entry: Entry::Fresh,
    }
}

fn started(setup: ReceptionistSetup) -> ReceptionistFlow {
    let mut flow = ReceptionistFlow::new(setup);
    flow.start();
    flow
}

fn say(flow: &mut ReceptionistFlow, text: &str) -> Reply {
    flow.on_caller(text, None)
        .unwrap_or_else(|| panic!("no reply to {text:?} in {:?}", flow.state))
}

/// Drives a flow from INTENT through lead capture to the read-back.
fn to_confirmation(flow: &mut ReceptionistFlow) -> Reply {
    say(flow, "Can you fix a leaking roof?");
    assert_eq!(flow.state, ReceptionistState::LeadCapture);
    say(flow, "My name is Ann.");
    say(flow, "Yes");
    say(flow, "Yes, very urgent")
}

#[test]
fn greeting_goes_to_intent() {
    let mut flow = ReceptionistFlow::new(open_setup());
    assert_eq!(flow.state, ReceptionistState::Greeting);
    let reply = flow.start();
    assert_eq!(reply.text, GREETING);
    assert_eq!(reply.after, After::Listen);
    assert_eq!(flow.state, ReceptionistState::Intent);
    assert!(flow.wants_answer());
}

#[test]
fn a_failed_transfer_starts_at_lead_capture() {
    let mut flow = ReceptionistFlow::new(ReceptionistSetup {
        entry: Entry::AfterFailedTransfer,
        ..open_setup()
    });
    let reply = flow.start();
    assert!(reply.text.starts_with("Sorry, nobody could take your call"));
    assert_eq!(flow.state, ReceptionistState::LeadCapture);
    assert_eq!(flow.asking, Question::Name);
    assert!(!flow.wants_answer());
}

#[test]
fn intent_to_faq_and_farewell_ends_completed() {
    let mut flow = started(open_setup());
    let reply = flow
        .on_caller("when do you open?", Some("We open at nine."))
        .unwrap();
    assert_eq!(
        reply.text,
        "We open at nine. Is there anything else I can help you with?"
    );
    assert_eq!(flow.state, ReceptionistState::Faq);
    let reply = flow
        .on_caller("where are you?", Some("Main Street."))
        .unwrap();
    assert!(reply.text.starts_with("Main Street."));
    assert_eq!(flow.state, ReceptionistState::Faq);
    let bye = say(&mut flow, "No, that's all, thanks");
    assert_eq!(bye.after, After::Hangup(CallOutcome::Completed));
    assert_eq!(flow.state, ReceptionistState::Ended);
    assert_eq!(flow.on_caller("hello?", None), None);
}

#[test]
fn faq_wraps_up_after_the_question_limit() {
    let mut flow = started(open_setup());
    for _ in 0..MAX_QUESTIONS - 1 {
        let r = flow.on_caller("question", Some("Answer.")).unwrap();
        assert_eq!(r.after, After::Listen);
    }
    let r = flow.on_caller("question", Some("Answer.")).unwrap();
    assert_eq!(r.after, After::Hangup(CallOutcome::Completed));
    assert_eq!(flow.state, ReceptionistState::Ended);
}

#[test]
fn intent_to_transfer_attempt_by_department_keyword_when_open() {
    let mut flow = started(open_setup());
    let reply = say(&mut flow, "Hi, I have a question about my invoice");
    assert_eq!(
        reply.after,
        After::Transfer(TransferTarget {
            department: "Billing".into(),
            to: "sip:billing@example.com".into()
        })
    );
    assert!(reply.text.contains("put you through to Billing"));
    assert_eq!(flow.state, ReceptionistState::TransferAttempt);
    // While the call is being transferred the agent says nothing more.
    assert_eq!(flow.on_caller("hello?", None), None);
}

#[test]
fn department_names_match_too_and_the_best_match_wins() {
    let depts = departments();
    assert_eq!(
        match_department(&depts, "Put me through to sales please").map(|d| d.name.as_str()),
        Some("Sales")
    );
    assert_eq!(
        match_department(&depts, "pricing for a refund on an invoice").map(|d| d.name.as_str()),
        Some("Billing")
    );
    assert_eq!(match_department(&depts, "wholesales"), None);
}

#[test]
fn asking_for_a_person_transfers_to_the_first_department_or_the_owner() {
    let mut flow = started(open_setup());
    let reply = say(&mut flow, "Can I speak to a real person?");
    assert!(matches!(reply.after, After::Transfer(t) if t.to == "+15550001111"));
    let mut flow = started(ReceptionistSetup {
        departments: Vec::new(),
        ..open_setup()
    });
    let reply = say(&mut flow, "Can I talk to someone?");
    assert!(matches!(reply.after, After::Transfer(t) if t.to == "+15550009999"));
    let mut flow = started(ReceptionistSetup {
        departments: Vec::new(),
        owner_phone: None,
        ..open_setup()
    });
    let reply = say(&mut flow, "Can I talk to someone?");
    assert_eq!(reply.after, After::Listen);
    assert_eq!(flow.state, ReceptionistState::LeadCapture);
}

#[test]
fn closed_business_hours_skip_the_transfer_and_say_when_they_open() {
    let mut flow = started(ReceptionistSetup {
        openness: Openness::Closed {
            opens: Some("tomorrow at 9 AM".into()),
        },
        ..open_setup()
    });
    let reply = say(&mut flow, "I need a quote");
    assert_eq!(reply.after, After::Listen);
    assert!(
        reply
            .text
            .starts_with("We're closed right now; we open tomorrow at 9 AM."),
        "{}",
        reply.text
    );
    assert!(reply.text.ends_with("What's your name?"));
    assert_eq!(flow.state, ReceptionistState::LeadCapture);
}

#[test]
fn unanswered_question_to_lead_capture_keeps_it_as_the_reason() {
    let mut flow = started(open_setup());
    let reply = say(&mut flow, "Can you fix a leaking roof?");
    assert!(reply.text.contains("take your details"));
    assert_eq!(flow.asking, Question::Name);
    let reply = say(&mut flow, "My name is Ann.");
    // The caller ID is offered, read digit by digit.
    assert_eq!(flow.asking, Question::ConfirmCallerId);
    assert!(
        reply.text.contains("4 1 5, 5 5 5, 0 1 0 0"),
        "{}",
        reply.text
    );
    let reply = say(&mut flow, "Yes");
    // The reason is known already: urgency next.
    assert_eq!(flow.asking, Question::Urgency);
    assert_eq!(reply.text, "Is it urgent?");
    let reply = say(&mut flow, "Yes, very urgent");
    assert_eq!(flow.state, ReceptionistState::Confirmation);
    assert_eq!(
        reply.text,
        "I have Ann, 4 1 5, 5 5 5, 0 1 0 0, about Can you fix a leaking roof, urgent. \
         Is that right?"
    );
}

#[test]
fn lead_capture_asks_every_field_without_a_caller_id() {
    let mut flow = ReceptionistFlow::new(ReceptionistSetup {
        caller_id: None,
        entry: Entry::AfterFailedTransfer,
        ..open_setup()
    });
    flow.start();
    let r = say(&mut flow, "It's Bob Smith");
    assert_eq!(r.text, "What number should we call you back on?");
    let r = say(&mut flow, "call me at twelve");
    assert!(r.text.contains("digit by digit"));
    assert_eq!(flow.asking, Question::CallbackNumber);
    say(&mut flow, "555 0199");
    assert_eq!(flow.asking, Question::Reason);
    say(&mut flow, "It's about my order.");
    assert_eq!(flow.asking, Question::Urgency);
    let r = say(&mut flow, "no rush");
    assert_eq!(
        r.text,
        "I have Bob Smith, 5 5 5, 0 1 9 9, about my order, not urgent. Is that right?"
    );
}

#[test]
fn declining_the_caller_id_asks_for_another_number() {
    let mut flow = ReceptionistFlow::new(ReceptionistSetup {
        entry: Entry::AfterFailedTransfer,
        ..open_setup()
    });
    flow.start();
    say(&mut flow, "Ann");
    let r = say(&mut flow, "No");
    assert_eq!(r.text, "What number should we call you back on?");
    let mut flow = ReceptionistFlow::new(ReceptionistSetup {
        entry: Entry::AfterFailedTransfer,
        ..open_setup()
    });
    flow.start();
    say(&mut flow, "Ann");
    // A number in the answer is taken directly.
    say(&mut flow, "No, use 555 123 4567");
    assert_eq!(flow.asking, Question::Reason);
}

#[test]
fn confirmation_yes_goes_to_wrap_up_with_the_lead_then_ends_message_taken() {
    let mut flow = started(open_setup());
    to_confirmation(&mut flow);
    let reply = say(&mut flow, "Yes, that's right");
    assert_eq!(flow.state, ReceptionistState::WrapUp);
    assert_eq!(
        reply.lead,
        Some(CapturedLead {
            name: "Ann".into(),
            callback_number: "+14155550100".into(),
            reason: "Can you fix a leaking roof".into(),
            urgency: Urgency::High,
        })
    );
    assert!(reply.text.contains("anything else"));
    assert!(flow.lead_confirmed());
    let bye = say(&mut flow, "No thanks");
    assert_eq!(bye.after, After::Hangup(CallOutcome::MessageTaken));
    assert_eq!(bye.lead, None, "the lead is handed over once");
    assert_eq!(flow.state, ReceptionistState::Ended);
}

#[test]
fn wrap_up_can_answer_another_question() {
    let mut flow = started(open_setup());
    to_confirmation(&mut flow);
    say(&mut flow, "yes");
    let r = flow
        .on_caller("when do you open?", Some("We open at nine."))
        .unwrap();
    assert!(r.text.starts_with("We open at nine."));
    assert_eq!(flow.state, ReceptionistState::Faq);
}

#[test]
fn confirmation_corrections_with_a_value_are_read_back() {
    let mut flow = started(open_setup());
    to_confirmation(&mut flow);
    let r = say(&mut flow, "No, the number is 555 0199");
    assert_eq!(flow.state, ReceptionistState::Confirmation);
    assert!(r.text.contains("5 5 5, 0 1 9 9"), "{}", r.text);
    let r = say(&mut flow, "Actually it's not urgent");
    assert!(r.text.contains("not urgent"), "{}", r.text);
    let r = say(&mut flow, "No, my name is Anne Lee");
    assert!(r.text.starts_with("Thanks. I have Anne Lee,"), "{}", r.text);
    let r = say(&mut flow, "No, it's about a broken gutter.");
    assert!(r.text.contains("about a broken gutter,"), "{}", r.text);
    let r = say(&mut flow, "yes");
    let lead = r.lead.expect("confirmed");
    assert_eq!(lead.callback_number, "5550199");
    assert_eq!(lead.urgency, Urgency::Low);
    assert_eq!(lead.name, "Anne Lee");
    assert_eq!(lead.reason, "a broken gutter");
}

#[test]
fn confirmation_no_asks_what_to_change_then_reads_back_again() {
    let mut flow = started(open_setup());
    to_confirmation(&mut flow);
    let r = say(&mut flow, "No");
    assert_eq!(flow.asking, Question::WhichField);
    assert!(r.text.contains("What should I change"));
    let r = say(&mut flow, "The name");
    assert_eq!(flow.state, ReceptionistState::LeadCapture);
    assert_eq!(flow.asking, Question::Name);
    assert_eq!(r.text, "What's the right name?");
    let r = say(&mut flow, "Bob");
    // Back to the read-back, not on through the other questions.
    assert_eq!(flow.state, ReceptionistState::Confirmation);
    assert!(r.text.starts_with("I have Bob,"), "{}", r.text);
    // "the number is wrong" names the field without a value.
    say(&mut flow, "The number is wrong");
    assert_eq!(flow.asking, Question::CallbackNumber);
    let r = say(&mut flow, "415 555 0123");
    assert!(r.text.contains("4 1 5, 5 5 5, 0 1 2 3"), "{}", r.text);
    assert!(say(&mut flow, "correct").lead.is_some());
}

#[test]
fn llm_actions_run_through_the_same_machine() {
    // Transfer to a named department.
    let mut flow = started(open_setup());
    let r = flow.apply(FlowAction::Transfer {
        department: "sales".into(),
    });
    assert!(matches!(r.after, After::Transfer(t) if t.department == "Sales"));
    // An unknown department falls back to lead capture.
    let mut flow = started(open_setup());
    let r = flow.apply(FlowAction::Transfer {
        department: "Legal".into(),
    });
    assert!(r.text.starts_with("I can't put you through to Legal"));
    assert_eq!(flow.state, ReceptionistState::LeadCapture);
    // Closed hours apply to the model's transfers too.
    let mut flow = started(ReceptionistSetup {
        openness: Openness::Closed { opens: None },
        ..open_setup()
    });
    let r = flow.apply(FlowAction::Transfer {
        department: "owner".into(),
    });
    assert!(r.text.starts_with("We're closed right now."));
    // A complete lead still goes through the read-back.
    let mut flow = started(open_setup());
    let r = flow.apply(FlowAction::CaptureLead {
        name: Some("Ann".into()),
        callback_number: Some("+1 415 555 0100".into()),
        reason: Some("a quote for a fence".into()),
        urgency: Some(Urgency::Normal),
    });
    assert_eq!(flow.state, ReceptionistState::Confirmation);
    assert_eq!(
        r.text,
        "I have Ann, 4 1 5, 5 5 5, 0 1 0 0, about a quote for a fence, normal priority. \
         Is that right?"
    );
    assert!(say(&mut flow, "yes").lead.is_some());
    // A partial one asks for what is missing.
    let mut flow = started(open_setup());
    let r = flow.apply(FlowAction::CaptureLead {
        name: Some("Ann".into()),
        callback_number: None,
        reason: None,
        urgency: None,
    });
    assert_eq!(flow.asking, Question::ConfirmCallerId);
    assert!(r.text.starts_with("Is 4 1 5"));
    // End the call.
    let r = flow.apply(FlowAction::EndCall);
    assert_eq!(r.after, After::Hangup(CallOutcome::Completed));
    assert_eq!(flow.state, ReceptionistState::Ended);
}

#[test]
fn a_transfer_that_cannot_start_takes_details_instead() {
    let mut flow = started(open_setup());
    say(&mut flow, "I need a quote");
    assert_eq!(flow.state, ReceptionistState::TransferAttempt);
    let r = flow.transfer_failed();
    assert_eq!(flow.state, ReceptionistState::LeadCapture);
    assert!(r.text.ends_with("What's your name?"));
    assert!(flow.is_taking_details());
}
