//! Sentence embeddings: all-MiniLM-L6-v2 in candle, as sentence-transformers computes them
//! (BERT → mean over the attention mask → L2 normalisation), so cosine similarity is a dot
//! product. 384 dimensions, ~10–20 ms per sentence on one core.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

/// What the embedding columns' `embedding_model` says for vectors made here.
pub const EMBEDDING_MODEL: &str = "all-MiniLM-L6-v2";

/// Loading or running the model failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// Reading or running the network.
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
    /// Reading the tokenizer or tokenizing.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Reading `config.json`.
    #[error("config: {0}")]
    Config(String),
}

/// The loaded model; shared by every call (`Arc<Embedder>`), used from the inference pool.
pub struct Embedder {
    /// The network (read-only at inference).
    model: BertModel,
    /// WordPiece tokenizer, padding to the longest sentence of a batch.
    tokenizer: Tokenizer,
    /// CPU.
    device: Device,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads the model from a directory with `model.safetensors`, `config.json` and
    /// `tokenizer.json`.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let device = Device::Cpu;
        let config = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| EmbedError::Config(e.to_string()))?;
        let config: Config =
            serde_json::from_str(&config).map_err(|e| EmbedError::Config(e.to_string()))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: 256,
                ..TruncationParams::default()
            }))
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        // Read into memory rather than mmap: candle's mmap loader is `unsafe` (the workspace
        // forbids unsafe code) and 90 MB once per node is cheap.
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| EmbedError::Config(e.to_string()))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)?;
        let model = BertModel::load(vb, &config)?;
        Ok(Embedder {
            model,
            tokenizer,
            device,
        })
    }

    /// One normalised embedding.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        Ok(self.embed_batch(&[text])?.pop().unwrap_or_default())
    }

    /// Normalised embeddings of `texts`, in order.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let ids: Vec<Tensor> = encodings
            .iter()
            .map(|e| Tensor::new(e.get_ids(), &self.device))
            .collect::<Result<_, _>>()?;
        let masks: Vec<Tensor> = encodings
            .iter()
            .map(|e| Tensor::new(e.get_attention_mask(), &self.device))
            .collect::<Result<_, _>>()?;
        let ids = Tensor::stack(&ids, 0)?;
        let mask = Tensor::stack(&masks, 0)?;
        let token_types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &token_types, Some(&mask))?;
        // Mean over real tokens only (padding masked out).
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        let normalised = mean.broadcast_div(&norm)?;
        Ok(normalised.to_vec2::<f32>()?)
    }
}

/// Cosine similarity of two normalised vectors (their dot product).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
