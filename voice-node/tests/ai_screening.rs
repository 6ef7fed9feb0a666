//! Screening accuracy on caller openings written for this test — none of them is in
//! `data/screening_examples.jsonl` — and the embedder against an independent reference.

mod ai_support;

use std::time::Instant;

use shared::domain::ScreeningLabel;
use voice_node::ai::screening::{BUILTIN_EXAMPLES, parse_examples};

use ScreeningLabel::{Legit, Marketing, Spam, Unknown};

/// Held-out caller openings and the label a careful human would give.
const HELD_OUT: &[(ScreeningLabel, &str)] = &[
    (
        Legit,
        "Hi, it's Doctor Green's surgery, just reminding you of your check-up on Monday at nine.",
    ),
    (
        Legit,
        "Hello, this is Kim from the dentist, we had a cancellation and can see you earlier if you like.",
    ),
    (
        Legit,
        "Hey, it's your brother, I'm at the airport, can you pick me up?",
    ),
    (
        Legit,
        "Hi, this is the moving company, our truck will arrive at your house around two.",
    ),
    (
        Legit,
        "Hello, I'm calling from your daughter's school, she forgot her lunch today.",
    ),
    (
        Legit,
        "Hi, it's Paul from accounting, I need your signature on the expense report.",
    ),
    (
        Legit,
        "Good morning, I'm the electrician you booked, I'm on my way to your place now.",
    ),
    (
        Legit,
        "Hi, I ordered a cake from you last week and wanted to check it will be ready Saturday.",
    ),
    (
        Legit,
        "This is the hotel front desk, you left your phone charger in your room.",
    ),
    (
        Legit,
        "Hi, it's Emma, we met at the conference, you asked me to call about the partnership.",
    ),
    (
        Legit,
        "Hello, the parts for your washing machine arrived, we can install them on Wednesday.",
    ),
    (
        Legit,
        "Hi, I'm a customer, my order hasn't arrived yet and I wanted to ask where it is.",
    ),
    (
        Legit,
        "Hey, it's Grandpa, just calling to say happy birthday.",
    ),
    (
        Legit,
        "Hello, this is the veterinary clinic, it's time for your dog's annual vaccination.",
    ),
    (
        Marketing,
        "Hi there, we install solar panels and can cut your power bill in half, do you own your home?",
    ),
    (
        Marketing,
        "Hello, I'm calling from Prime Insurance, would you like a quick comparison on your car insurance?",
    ),
    (
        Marketing,
        "Hi, I work with an SEO agency and we can get your business more reviews online.",
    ),
    (
        Marketing,
        "Good afternoon, we're offering a free trial of our payroll software for small companies.",
    ),
    (
        Marketing,
        "Hi, this is a courtesy call from Evergreen Lawn Care, we're booking spring treatments in your area.",
    ),
    (
        Marketing,
        "Hello, would you be interested in a free home security system evaluation this week?",
    ),
    (
        Marketing,
        "Hi, I'm with a wine club and we'd love to send you three bottles at half price.",
    ),
    (
        Marketing,
        "Hello, we buy houses in any condition for cash, have you thought about selling?",
    ),
    (
        Marketing,
        "Hi, I'm calling to let you know about our new business phone plans with unlimited minutes.",
    ),
    (
        Marketing,
        "Hello, this is the Red Cross blood drive, we're asking neighbors to donate next week.",
    ),
    (
        Marketing,
        "Hi, we're updating listings in the local business directory, can I confirm your details for a premium listing?",
    ),
    (
        Marketing,
        "Hi, I'm not trying to sell you anything, I just want to share how our investment seminar helped others.",
    ),
    (
        Spam,
        "This is an urgent message from the tax office, a warrant has been issued in your name.",
    ),
    (
        Spam,
        "Your Amazon account has been compromised, press one to speak to our fraud department.",
    ),
    (
        Spam,
        "We are calling about your vehicle's extended warranty, this is your final courtesy call.",
    ),
    (
        Spam,
        "Congratulations, you've won a thousand dollar Walmart gift card, press one to claim.",
    ),
    (
        Spam,
        "This is Apple support, your iCloud has been hacked, please stay on the line.",
    ),
    (
        Spam,
        "Your social security number will be suspended today, call us back immediately.",
    ),
    (
        Spam,
        "This is an automated message from your electricity provider, your account is past due.",
    ),
    (
        Spam,
        "Hi grandma, it's me, I had a car accident and I need money wired right now.",
    ),
    (
        Spam,
        "You are pre-approved for a fifty thousand dollar loan, no credit check needed, press one.",
    ),
    (
        Spam,
        "Your computer is sending error messages to our servers, we need remote access to fix it.",
    ),
    (
        Spam,
        "Final notice, your student loans are in default, call now to avoid wage garnishment.",
    ),
    (
        Spam,
        "You have been chosen to receive a free medical alert device at no cost, press one now.",
    ),
    (Unknown, "Hello? Hello?"),
    (Unknown, "Yeah, is Mark around?"),
    (Unknown, "I need to talk to the owner, it's private."),
    (Unknown, "Sorry, wrong number."),
    (Unknown, "Can you just put me through please?"),
    (Unknown, "Who am I speaking with?"),
];

#[test]
fn screening_accuracy_on_held_out_openings_is_at_least_90_percent() {
    let models = ai_support::models();
    let builtin: Vec<String> = parse_examples(BUILTIN_EXAMPLES)
        .unwrap()
        .into_iter()
        .map(|e| e.text.to_lowercase())
        .collect();
    assert!(HELD_OUT.len() >= 40);
    for (_, text) in HELD_OUT {
        assert!(
            !builtin.contains(&text.to_lowercase()),
            "held-out sentence is in the examples: {text}"
        );
    }

    let labels = ScreeningLabel::ALL;
    let idx = |l: ScreeningLabel| labels.iter().position(|x| *x == l).unwrap();
    let mut confusion = [[0u32; 4]; 4];
    let mut misses = Vec::new();
    let t0 = Instant::now();
    for (want, text) in HELD_OUT {
        let v = models.classifier.classify(&models.embedder, text).unwrap();
        confusion[idx(*want)][idx(v.label)] += 1;
        if v.label != *want {
            misses.push(format!(
                "  {want} → {} ({:.2}): {text}\n    {}",
                v.label, v.confidence, v.rationale
            ));
        }
        assert!((0.0..=1.0).contains(&v.confidence));
        assert!(!v.intent.is_empty() && !v.rationale.is_empty());
    }
    let per = t0.elapsed() / HELD_OUT.len() as u32;
    let correct: u32 = (0..4).map(|i| confusion[i][i]).sum();
    let accuracy = f64::from(correct) / HELD_OUT.len() as f64;

    println!(
        "screening: {correct}/{} = {:.1}% ({per:?} per opening)",
        HELD_OUT.len(),
        100.0 * accuracy
    );
    println!("confusion matrix (rows: expected, columns: predicted)");
    println!(
        "{:>10} {:>6} {:>9} {:>6} {:>8}",
        "", "legit", "marketing", "spam", "unknown"
    );
    for (i, l) in labels.iter().enumerate() {
        let r = confusion[i];
        println!(
            "{:>10} {:>6} {:>9} {:>6} {:>8}",
            l.as_str(),
            r[0],
            r[1],
            r[2],
            r[3]
        );
    }
    for m in &misses {
        println!("{m}");
    }
    assert!(
        accuracy >= 0.9,
        "accuracy {:.1}% below 90%",
        100.0 * accuracy
    );
}

#[test]
fn embeddings_match_the_sentence_transformers_reference() {
    let models = ai_support::models();
    // First dims of all-MiniLM-L6-v2 for this sentence, from an independent numpy
    // implementation (reference/offline_ai.md §4).
    let v = models
        .embedder
        .embed("Hi, this is Dana from Acme Dental calling about your appointment tomorrow.")
        .unwrap();
    assert_eq!(v.len(), 384);
    let want = [-0.11756f32, -0.01271, -0.02004, 0.00849, -0.10678];
    for (i, (got, want)) in v.iter().zip(want).enumerate() {
        assert!((got - want).abs() < 1e-4, "dim {i}: {got} vs {want}");
    }
    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);

    let t0 = Instant::now();
    for _ in 0..10 {
        models
            .embedder
            .embed("What time do you open on Saturday?")
            .unwrap();
    }
    println!("embedding: {:?} per sentence", t0.elapsed() / 10);
}
