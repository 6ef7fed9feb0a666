//! Sealing of tenants' provider API keys (`tenant_provider_settings.api_key_encrypted`): the
//! plaintext never reaches Postgres, its dumps or the API.
//!
//! XChaCha20-Poly1305 with a random 24-byte nonce stored in front of the ciphertext; the row's
//! tenant and kind are the associated data, so a sealed key copied to another row does not open.
//! The key is `CALLGATE_SEAL_KEY` (64 hex digits) or, when unset, SHA-256 of a fixed label and
//! `EDGE_SHARED_SECRET` (every node already has that secret; rotating it then needs keys re-entered).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Nonce length of XChaCha20.
const NONCE_LEN: usize = 24;

/// The sealing key.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

impl SealKey {
    /// From `CALLGATE_SEAL_KEY` (hex) when given and valid, else derived from the edge secret.
    pub fn from_config(seal_key_hex: Option<&str>, edge_shared_secret: &[u8]) -> SealKey {
        if let Some(hex) = seal_key_hex
            && let Some(key) = parse_hex32(hex)
        {
            return SealKey(key);
        }
        let mut hasher = Sha256::new();
        hasher.update(b"callgate provider key seal v1\0");
        hasher.update(edge_shared_secret);
        SealKey(hasher.finalize().into())
    }

    fn aad(tenant: Uuid, kind: &str) -> Vec<u8> {
        let mut aad = tenant.as_bytes().to_vec();
        aad.extend_from_slice(kind.as_bytes());
        aad
    }

    /// `nonce || ciphertext` of `plaintext` for the row (tenant, kind).
    pub fn seal(&self, tenant: Uuid, kind: &str, plaintext: &str) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError)?;
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let aad = Self::aad(tenant, kind);
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SealError)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plaintext of a sealed key of the row (tenant, kind).
    pub fn open(&self, tenant: Uuid, kind: &str, sealed: &[u8]) -> Result<String, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError)?;
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let aad = Self::aad(tenant, kind);
        let plain = cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError)?;
        String::from_utf8(plain).map_err(|_| SealError)
    }
}

/// A key that does not open (wrong key, wrong row, tampered) or could not be sealed.
#[derive(Debug, thiserror::Error)]
#[error("sealed key does not open")]
pub struct SealError;

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_key_opens_only_for_its_row_and_key() {
        let key = SealKey::from_config(None, b"edge secret");
        let tenant = Uuid::new_v4();
        let sealed = key.seal(tenant, "llm", "sk-live-123").unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"sk-live-123"));
        assert_eq!(key.open(tenant, "llm", &sealed).unwrap(), "sk-live-123");
        assert!(key.open(tenant, "stt", &sealed).is_err());
        assert!(key.open(Uuid::new_v4(), "llm", &sealed).is_err());
        let other = SealKey::from_config(Some(&"ab".repeat(32)), b"edge secret");
        assert!(other.open(tenant, "llm", &sealed).is_err());
    }
}
