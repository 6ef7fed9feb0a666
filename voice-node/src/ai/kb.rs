//! FAQ answers from a tenant's knowledge base (`kb_entries`), by embedding similarity.
//!
//! The caller's question is compared with each entry's question (cosine of MiniLM embeddings);
//! the best entry answers if it is similar enough, otherwise the agent says it does not know and
//! takes a message — a wrong answer read out confidently is worse than none. Entry embeddings
//! are stored in the row (`embedding`, `embedding_model`) the first time they are computed, so
//! later calls only embed the caller's question.

use sqlx::PgPool;
use uuid::Uuid;

use super::embed::{EMBEDDING_MODEL, EmbedError, Embedder, cosine};

/// Below this similarity the KB does not answer. all-MiniLM-L6-v2 puts paraphrases of the same
/// question at 0.6–0.9 and different questions on the same topic at 0.3–0.5.
pub const ANSWER_THRESHOLD: f32 = 0.55;

/// What the agent says when the KB has no good answer.
pub const NO_ANSWER: &str = "I'm sorry, I don't know the answer to that. Let me take a message and someone will get back to you.";

/// One entry with its question's embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct KbEntry {
    /// The question it answers.
    pub question: String,
    /// The answer, spoken as is.
    pub answer: String,
    /// Normalised embedding of `question`.
    pub embedding: Vec<f32>,
}

/// The best entry for a question, with its similarity.
#[derive(Debug, Clone, PartialEq)]
pub struct KbMatch<'a> {
    /// The entry.
    pub entry: &'a KbEntry,
    /// Cosine similarity, 0–1.
    pub similarity: f32,
}

/// A tenant's knowledge base, in memory for the call.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeBase {
    /// Enabled entries.
    entries: Vec<KbEntry>,
}

/// Loading the KB failed.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// Reading or writing rows.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Embedding.
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

impl KnowledgeBase {
    /// A KB from entries already embedded.
    pub fn new(entries: Vec<KbEntry>) -> Self {
        KnowledgeBase { entries }
    }

    /// Embeds `(question, answer)` pairs (tests, tools).
    pub fn from_pairs(embedder: &Embedder, pairs: &[(&str, &str)]) -> Result<Self, EmbedError> {
        let questions: Vec<&str> = pairs.iter().map(|(q, _)| *q).collect();
        let vectors = embedder.embed_batch(&questions)?;
        Ok(KnowledgeBase {
            entries: pairs
                .iter()
                .zip(vectors)
                .map(|((q, a), embedding)| KbEntry {
                    question: (*q).to_owned(),
                    answer: (*a).to_owned(),
                    embedding,
                })
                .collect(),
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the KB is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most similar entry, whatever its similarity.
    pub fn nearest(&self, query: &[f32]) -> Option<KbMatch<'_>> {
        self.entries
            .iter()
            .map(|entry| KbMatch {
                entry,
                similarity: cosine(query, &entry.embedding),
            })
            .max_by(|a, b| a.similarity.total_cmp(&b.similarity))
    }

    /// The entry that answers `query`, if one is similar enough ([`ANSWER_THRESHOLD`]).
    pub fn answer(&self, query: &[f32]) -> Option<KbMatch<'_>> {
        self.nearest(query)
            .filter(|m| m.similarity >= ANSWER_THRESHOLD)
    }
}

/// A row as read.
#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    question: String,
    answer: String,
    embedding: Option<Vec<f32>>,
    embedding_model: Option<String>,
}

/// Loads a tenant's enabled entries, embedding (and storing) those not yet embedded with this
/// model. Blocking model work runs in `embed` (give it the inference pool).
pub async fn load_for_tenant<F, Fut>(
    pool: &PgPool,
    tenant_id: Uuid,
    embed: F,
) -> Result<KnowledgeBase, KbError>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<Vec<Vec<f32>>, EmbedError>>,
{
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, question, answer, embedding, embedding_model FROM kb_entries
         WHERE tenant_id = $1 AND enabled ORDER BY created_at, id",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await?;
    let stale: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.embedding.as_ref().is_none_or(Vec::is_empty)
                || r.embedding_model.as_deref() != Some(EMBEDDING_MODEL)
        })
        .map(|(i, _)| i)
        .collect();
    let fresh = if stale.is_empty() {
        Vec::new()
    } else {
        embed(stale.iter().map(|&i| rows[i].question.clone()).collect()).await?
    };
    let mut entries: Vec<KbEntry> = rows
        .iter()
        .map(|r| KbEntry {
            question: r.question.clone(),
            answer: r.answer.clone(),
            embedding: r.embedding.clone().unwrap_or_default(),
        })
        .collect();
    for (&i, vector) in stale.iter().zip(fresh) {
        // Best effort: a failed cache write only means embedding again next call.
        let stored =
            sqlx::query("UPDATE kb_entries SET embedding = $2, embedding_model = $3 WHERE id = $1")
                .bind(rows[i].id)
                .bind(&vector)
                .bind(EMBEDDING_MODEL)
                .execute(pool)
                .await;
        if let Err(err) = stored {
            tracing::warn!(error = %err, "could not store a KB entry's embedding");
        }
        entries[i].embedding = vector;
    }
    Ok(KnowledgeBase::new(entries))
}
