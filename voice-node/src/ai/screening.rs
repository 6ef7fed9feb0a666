//! The screening classifier: who is calling and why → legit / marketing / spam / unknown, with
//! a one-line intent, a confidence and a rationale for the tenant's admins.
//!
//! Offline and deterministic: the caller's opening is embedded with MiniLM and compared with
//! labelled example sentences (the built-in `data/screening_examples.jsonl`, extended per tenant
//! from the `screening_examples` table); the nearest examples vote, weighted by similarity. A
//! few explicit rules catch the phrases robocalls and pitches give themselves away with ("press
//! one", "extended warranty", "this is an automated …"), which a nearest-neighbour vote can miss
//! when the rest of the sentence sounds like an ordinary call.

use serde::Deserialize;
use shared::domain::ScreeningLabel;

use super::embed::{EmbedError, Embedder, cosine};

/// The built-in examples, one JSON object a line: `{"label", "intent", "text"}`.
pub const BUILTIN_EXAMPLES: &str = include_str!("../../data/screening_examples.jsonl");

/// Neighbours that vote.
const K: usize = 5;
/// From this similarity on, the nearest example counts twice in the vote.
const NEAR_DUPLICATE: f32 = 0.6;
/// Below this best similarity nothing known is close: `unknown`.
const MIN_SIMILARITY: f32 = 0.25;

/// One labelled sentence.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Example {
    /// Its label.
    pub label: ScreeningLabel,
    /// The one-line intent a call like it gets.
    #[serde(default)]
    pub intent: String,
    /// What a caller said.
    pub text: String,
}

/// Parses examples in the JSON-lines format (blank lines and `#` comments skipped).
pub fn parse_examples(jsonl: &str) -> Result<Vec<Example>, serde_json::Error> {
    jsonl
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(serde_json::from_str)
        .collect()
}

/// What the classifier concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The label.
    pub label: ScreeningLabel,
    /// One line for the inbox.
    pub intent: String,
    /// 0–1.
    pub confidence: f32,
    /// Why, for admins (never spoken).
    pub rationale: String,
}

/// A phrase that decides the label by itself.
struct Rule {
    /// Lower-case substring of the normalised transcript.
    phrase: &'static str,
    label: ScreeningLabel,
    intent: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        phrase: "press one",
        label: ScreeningLabel::Spam,
        intent: "robocall asking to press a key",
    },
    Rule {
        phrase: "press 1",
        label: ScreeningLabel::Spam,
        intent: "robocall asking to press a key",
    },
    Rule {
        phrase: "extended warranty",
        label: ScreeningLabel::Spam,
        intent: "warranty robocall",
    },
    Rule {
        phrase: "vehicle warranty",
        label: ScreeningLabel::Spam,
        intent: "warranty robocall",
    },
    Rule {
        phrase: "car's warranty",
        label: ScreeningLabel::Spam,
        intent: "warranty robocall",
    },
    Rule {
        phrase: "this is an automated",
        label: ScreeningLabel::Spam,
        intent: "automated robocall",
    },
    Rule {
        phrase: "this is a recorded",
        label: ScreeningLabel::Spam,
        intent: "automated robocall",
    },
    Rule {
        phrase: "social security number",
        label: ScreeningLabel::Spam,
        intent: "government impersonation scam",
    },
    Rule {
        phrase: "gift card",
        label: ScreeningLabel::Spam,
        intent: "gift-card payment scam",
    },
    Rule {
        phrase: "warrant for your arrest",
        label: ScreeningLabel::Spam,
        intent: "police impersonation scam",
    },
    Rule {
        phrase: "final notice",
        label: ScreeningLabel::Spam,
        intent: "final-notice robocall",
    },
    Rule {
        phrase: "you have won",
        label: ScreeningLabel::Spam,
        intent: "prize scam",
    },
    Rule {
        phrase: "you've won",
        label: ScreeningLabel::Spam,
        intent: "prize scam",
    },
    Rule {
        phrase: "you have been selected",
        label: ScreeningLabel::Spam,
        intent: "prize scam",
    },
    Rule {
        phrase: "not trying to sell",
        label: ScreeningLabel::Marketing,
        intent: "sales pitch",
    },
    Rule {
        phrase: "special offer",
        label: ScreeningLabel::Marketing,
        intent: "sales offer",
    },
    Rule {
        phrase: "limited time offer",
        label: ScreeningLabel::Marketing,
        intent: "sales offer",
    },
    Rule {
        phrase: "free quote",
        label: ScreeningLabel::Marketing,
        intent: "quote offer",
    },
];

fn normalise(text: &str) -> String {
    let lower = text.to_lowercase().replace('’', "'");
    let cleaned: String = lower
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Examples with their embeddings, ready to classify against.
#[derive(Debug, Clone)]
pub struct ScreeningClassifier {
    /// Each example and its normalised embedding.
    examples: Vec<(Example, Vec<f32>)>,
}

impl ScreeningClassifier {
    /// Embeds `examples` (a batch per 32).
    pub fn build(embedder: &Embedder, examples: Vec<Example>) -> Result<Self, EmbedError> {
        let mut embedded = Vec::with_capacity(examples.len());
        for chunk in examples.chunks(32) {
            let texts: Vec<&str> = chunk.iter().map(|e| e.text.as_str()).collect();
            let vectors = embedder.embed_batch(&texts)?;
            embedded.extend(chunk.iter().cloned().zip(vectors));
        }
        Ok(ScreeningClassifier { examples: embedded })
    }

    /// The built-in examples only.
    pub fn builtin(embedder: &Embedder) -> Result<Self, EmbedError> {
        let examples = parse_examples(BUILTIN_EXAMPLES)
            .map_err(|e| EmbedError::Config(format!("data/screening_examples.jsonl: {e}")))?;
        Self::build(embedder, examples)
    }

    /// A copy with a tenant's own examples added (already embedded).
    pub fn with_extra(&self, extra: Vec<(Example, Vec<f32>)>) -> Self {
        let mut examples = self.examples.clone();
        examples.extend(extra);
        ScreeningClassifier { examples }
    }

    /// How many examples vote.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Classifies a caller's words.
    pub fn classify(&self, embedder: &Embedder, text: &str) -> Result<Verdict, EmbedError> {
        let norm = normalise(text);
        if norm.split(' ').filter(|w| !w.is_empty()).count() < 2 {
            return Ok(Verdict {
                label: ScreeningLabel::Unknown,
                intent: "caller gave no reason".into(),
                confidence: 0.9,
                rationale: "the caller said (almost) nothing".into(),
            });
        }
        let query = embedder.embed(text)?;
        Ok(self.classify_embedded(&norm, &query))
    }

    /// Classifies from the normalised text and its embedding (no model call).
    pub fn classify_embedded(&self, norm: &str, query: &[f32]) -> Verdict {
        let mut scored: Vec<(f32, &Example)> = self
            .examples
            .iter()
            .map(|(ex, v)| (cosine(query, v), ex))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let nearest = scored.first().copied();

        if let Some(rule) = RULES.iter().find(|r| norm.contains(r.phrase)) {
            let near = nearest.map_or(String::new(), |(s, ex)| {
                format!(
                    "; nearest example ({:.2}, {}): \"{}\"",
                    s, ex.label, ex.text
                )
            });
            return Verdict {
                label: rule.label,
                intent: rule.intent.into(),
                confidence: 0.9,
                rationale: format!("rule: the caller said \"{}\"{near}", rule.phrase),
            };
        }

        let Some((best, best_ex)) = nearest else {
            return Verdict {
                label: ScreeningLabel::Unknown,
                intent: "no examples to compare with".into(),
                confidence: 0.0,
                rationale: "the classifier has no examples".into(),
            };
        };
        if best < MIN_SIMILARITY {
            return Verdict {
                label: ScreeningLabel::Unknown,
                intent: "unclear reason for calling".into(),
                confidence: 0.5,
                rationale: format!(
                    "nothing known is close (best similarity {best:.2}, \"{}\")",
                    best_ex.text
                ),
            };
        }
        // Similarity-weighted vote of the K nearest.
        let mut votes = [0f32; 4];
        let slot = |l: ScreeningLabel| {
            ScreeningLabel::ALL
                .iter()
                .position(|x| *x == l)
                .unwrap_or(3)
        };
        for (s, ex) in scored.iter().take(K) {
            votes[slot(ex.label)] += s.max(0.0);
        }
        // A near-paraphrase of one example outweighs loosely similar ones of a bigger class.
        if best >= NEAR_DUPLICATE {
            votes[slot(best_ex.label)] += best;
        }
        let total: f32 = votes.iter().sum::<f32>().max(f32::EPSILON);
        let (winner, weight) = votes
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, w)| (ScreeningLabel::ALL[i], *w))
            .unwrap_or((ScreeningLabel::Unknown, 0.0));
        let intent_ex = scored
            .iter()
            .find(|(_, ex)| ex.label == winner)
            .map_or(best_ex, |(_, ex)| *ex);
        // Share of the vote, damped when even the best match is only loosely similar.
        let confidence = (weight / total) * (best / 0.6).min(1.0);
        Verdict {
            label: winner,
            intent: intent_ex.intent.clone(),
            confidence: confidence.clamp(0.0, 1.0),
            rationale: format!(
                "{:.0}% of the vote of the {K} nearest examples; closest ({best:.2}): \"{}\"",
                100.0 * weight / total,
                best_ex.text
            ),
        }
    }
}

/// `id, text, label, intent, embedding, embedding_model` of a `screening_examples` row.
type ExampleRow = (
    uuid::Uuid,
    String,
    String,
    String,
    Option<Vec<f32>>,
    Option<String>,
);

/// A tenant's own examples (`screening_examples` rows with its id), embedded: stored
/// embeddings of this model are reused, the others computed with `embed` (and stored back).
pub async fn load_tenant_examples<F, Fut>(
    db: &sqlx::PgPool,
    tenant_id: uuid::Uuid,
    embed: F,
) -> Result<Vec<(Example, Vec<f32>)>, sqlx::Error>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<Vec<Vec<f32>>, EmbedError>>,
{
    let rows: Vec<ExampleRow> = sqlx::query_as(
        "SELECT id, text, label, intent, embedding, embedding_model FROM screening_examples
             WHERE tenant_id = $1 ORDER BY created_at, id",
    )
    .bind(tenant_id)
    .fetch_all(db)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut missing = Vec::new();
    for (id, text, label, intent, embedding, model) in rows {
        let Ok(label) = label.parse::<ScreeningLabel>() else {
            continue;
        };
        let example = Example {
            label,
            intent,
            text,
        };
        match embedding {
            Some(v) if !v.is_empty() && model.as_deref() == Some(super::embed::EMBEDDING_MODEL) => {
                out.push((example, v));
            }
            _ => missing.push((id, example)),
        }
    }
    if !missing.is_empty() {
        let texts = missing.iter().map(|(_, e)| e.text.clone()).collect();
        match embed(texts).await {
            Ok(vectors) => {
                for ((id, example), vector) in missing.into_iter().zip(vectors) {
                    let stored = sqlx::query(
                        "UPDATE screening_examples SET embedding = $2, embedding_model = $3 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(&vector)
                    .bind(super::embed::EMBEDDING_MODEL)
                    .execute(db)
                    .await;
                    if let Err(err) = stored {
                        tracing::warn!(error = %err, "could not store a screening example's embedding");
                    }
                    out.push((example, vector));
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not embed the tenant's screening examples")
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_examples_parse_and_cover_every_label() {
        let examples = parse_examples(BUILTIN_EXAMPLES).unwrap();
        assert!(examples.len() >= 60);
        for label in ScreeningLabel::ALL {
            assert!(examples.iter().any(|e| e.label == *label), "{label}");
        }
    }

    #[test]
    fn rules_win_over_neighbours() {
        let ex = Example {
            label: ScreeningLabel::Legit,
            intent: "appointment".into(),
            text: "x".into(),
        };
        let c = ScreeningClassifier {
            examples: vec![(ex, vec![1.0, 0.0])],
        };
        let v = c.classify_embedded(
            &normalise("Hi, about your appointment. Press ONE to confirm!"),
            &[1.0, 0.0],
        );
        assert_eq!(v.label, ScreeningLabel::Spam);
        assert!(v.rationale.contains("press one"));
    }
}
