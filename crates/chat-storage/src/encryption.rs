//! AES-256-GCM encryption at rest of message content and session names, with key ids
//! so keys can rotate.
//!
//! Formats a stored value can have:
//! - `enc:v1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>` — written by this service.
//!   The prefix cannot collide with a legacy value: standard base64 has no `:`.
//! - `<base64(nonce ‖ ciphertext ‖ tag)>` — legacy Go service, key = the 32 raw bytes
//!   of `ENCRYPTION_KEY`, no key id: every configured key is tried.
//! - plain text — written while no key was configured.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;

use crate::error::StoreError;

/// Prefix of values written with a key id (format version 1).
pub const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Encrypts new values with the current key and decrypts values written with any
/// configured key (current or previous), in every format the collection may hold.
#[derive(Clone)]
pub struct Encryptor {
    /// `(key id, cipher)`, the current key first; empty = encryption off.
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key ids only: key material never reaches a log.
        f.debug_struct("Encryptor")
            .field(
                "key_ids",
                &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Encryptor {
    /// Builds from `(key id, key)` pairs, the current key first (the shape of
    /// `chat_config::Config::encryption_keys`). An empty list turns encryption off.
    /// Key ids must be non-empty and free of `:` so the prefix stays unambiguous.
    pub fn new(keys: Vec<(String, [u8; 32])>) -> Result<Self, StoreError> {
        let mut ciphers = Vec::with_capacity(keys.len());
        for (id, key) in keys {
            if id.is_empty() || id.contains(':') || id.chars().any(char::is_whitespace) {
                return Err(StoreError::Open(format!(
                    "encryption key id {id:?} must be non-empty without ':' or spaces"
                )));
            }
            if ciphers
                .iter()
                .any(|(other, _): &(String, Aes256Gcm)| *other == id)
            {
                return Err(StoreError::Open(format!(
                    "duplicate encryption key id {id:?}"
                )));
            }
            ciphers.push((id, Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key))));
        }
        Ok(Self { keys: ciphers })
    }

    /// No encryption: values are stored as plain text.
    pub fn disabled() -> Self {
        Self { keys: Vec::new() }
    }

    /// The encryptor for a validated configuration.
    pub fn from_config(config: &chat_config::Config) -> Result<Self, StoreError> {
        Self::new(config.encryption_keys())
    }

    /// True when new values are encrypted.
    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The id new values are written with.
    pub fn current_key_id(&self) -> Option<&str> {
        self.keys.first().map(|(id, _)| id.as_str())
    }

    /// The stored form of `plain`: `enc:v1:<id>:<base64>` with the current key and a
    /// fresh random nonce, or `plain` itself when encryption is off.
    pub fn encrypt(&self, plain: &str) -> Result<String, StoreError> {
        let Some((id, cipher)) = self.keys.first() else {
            return Ok(plain.to_owned());
        };
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .map_err(|_| StoreError::Rejected("encryption failed".to_owned()))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{id}:{}", STANDARD.encode(blob)))
    }

    /// The plain text of a stored value in any supported format.
    ///
    /// An unprefixed value is legacy ciphertext when it is base64 of at least a nonce
    /// and a tag and some key opens it; when no key is configured, or the value is not
    /// such base64, it is plain text written without encryption. Unprefixed base64 that
    /// no configured key opens is an error (a missing key must not pass silently).
    pub fn decrypt(&self, stored: &str) -> Result<String, StoreError> {
        if let Some(rest) = stored.strip_prefix(PREFIX) {
            let (id, body) = rest
                .split_once(':')
                .ok_or_else(|| StoreError::Decrypt("malformed key id prefix".to_owned()))?;
            let cipher = self
                .keys
                .iter()
                .find(|(known, _)| known == id)
                .map(|(_, c)| c)
                .ok_or_else(|| StoreError::Decrypt(format!("unknown encryption key id {id:?}")))?;
            let blob = STANDARD
                .decode(body)
                .map_err(|_| StoreError::Decrypt("invalid base64".to_owned()))?;
            return open(cipher, &blob).ok_or_else(|| {
                StoreError::Decrypt(format!("authentication failed with key {id:?}"))
            });
        }
        if self.keys.is_empty() {
            return Ok(stored.to_owned());
        }
        let Some(blob) = STANDARD
            .decode(stored)
            .ok()
            .filter(|b| b.len() >= NONCE_LEN + TAG_LEN)
        else {
            return Ok(stored.to_owned());
        };
        self.keys
            .iter()
            .find_map(|(_, cipher)| open(cipher, &blob))
            .ok_or_else(|| {
                StoreError::Decrypt("legacy value opens with no configured key".to_owned())
            })
    }
}

fn open(cipher: &Aes256Gcm, blob: &[u8]) -> Option<String> {
    if blob.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let plain = cipher.decrypt(Nonce::from_slice(nonce), sealed).ok()?;
    String::from_utf8(plain).ok()
}

/// Encrypts like the legacy Go service (no key id): base64(nonce ‖ ciphertext ‖ tag).
/// Used by tests and migration tooling to produce legacy values.
pub fn legacy_encrypt(key: &[u8; 32], plain: &str) -> String {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut blob = nonce.to_vec();
    // Encryption with a valid 32-byte key and 12-byte nonce cannot fail for inputs
    // below GCM's 64 GiB limit; an empty result marks the impossible case.
    blob.extend(
        cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .unwrap_or_default(),
    );
    STANDARD.encode(blob)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = *b"0123456789abcdef0123456789abcdef";
    const B: [u8; 32] = *b"fedcba9876543210fedcba9876543210";

    fn enc(keys: &[(&str, [u8; 32])]) -> Encryptor {
        Encryptor::new(keys.iter().map(|(i, k)| ((*i).to_owned(), *k)).collect()).unwrap()
    }

    #[test]
    fn round_trips_with_a_key_id_prefix() {
        let e = enc(&[("k1", A)]);
        let stored = e.encrypt("hello wörld").unwrap();
        assert!(stored.starts_with("enc:v1:k1:"));
        assert!(!stored.contains("hello"));
        assert_eq!(e.decrypt(&stored).unwrap(), "hello wörld");
    }

    #[test]
    fn each_encryption_uses_a_fresh_nonce() {
        let e = enc(&[("k1", A)]);
        assert_ne!(e.encrypt("same").unwrap(), e.encrypt("same").unwrap());
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = enc(&[("a", A)]);
        let written_with_a = old.encrypt("before rotation").unwrap();
        let rotated = enc(&[("b", B), ("a", A)]);
        let written_with_b = rotated.encrypt("after rotation").unwrap();
        assert!(written_with_b.starts_with("enc:v1:b:"));
        assert_eq!(rotated.decrypt(&written_with_a).unwrap(), "before rotation");
        assert_eq!(rotated.decrypt(&written_with_b).unwrap(), "after rotation");
        // Dropping key a makes its values unreadable, loudly.
        let only_b = enc(&[("b", B)]);
        assert!(matches!(
            only_b.decrypt(&written_with_a),
            Err(StoreError::Decrypt(_))
        ));
    }

    #[test]
    fn legacy_unprefixed_values_decrypt_with_any_configured_key() {
        let legacy = legacy_encrypt(&A, "legacy text");
        assert!(!legacy.contains(':'));
        assert_eq!(enc(&[("a", A)]).decrypt(&legacy).unwrap(), "legacy text");
        assert_eq!(
            enc(&[("b", B), ("a", A)]).decrypt(&legacy).unwrap(),
            "legacy text"
        );
        assert!(matches!(
            enc(&[("b", B)]).decrypt(&legacy),
            Err(StoreError::Decrypt(_))
        ));
    }

    #[test]
    fn plaintext_passes_through_without_keys_and_as_legacy_plain_text() {
        let off = Encryptor::disabled();
        assert!(!off.is_enabled());
        assert_eq!(off.encrypt("plain").unwrap(), "plain");
        assert_eq!(off.decrypt("plain").unwrap(), "plain");
        // Written before a key was configured: not base64, so plain text.
        assert_eq!(
            enc(&[("a", A)]).decrypt("Hello, world!").unwrap(),
            "Hello, world!"
        );
    }

    #[test]
    fn tampered_ciphertext_is_rejected() {
        let e = enc(&[("k1", A)]);
        let mut stored = e.encrypt("secret").unwrap();
        let last = stored.pop().unwrap();
        stored.push(if last == 'A' { 'B' } else { 'A' });
        assert!(e.decrypt(&stored).is_err());
    }

    #[test]
    fn prefixed_values_need_a_key() {
        let stored = enc(&[("k1", A)]).encrypt("x").unwrap();
        assert!(matches!(
            Encryptor::disabled().decrypt(&stored),
            Err(StoreError::Decrypt(_))
        ));
    }

    #[test]
    fn key_ids_must_be_unambiguous() {
        assert!(Encryptor::new(vec![("a:b".into(), A)]).is_err());
        assert!(Encryptor::new(vec![(String::new(), A)]).is_err());
        assert!(Encryptor::new(vec![("a".into(), A), ("a".into(), B)]).is_err());
    }

    #[test]
    fn debug_output_hides_keys() {
        let text = format!("{:?}", enc(&[("k1", A)]));
        assert!(text.contains("k1"));
        assert!(!text.contains("0123456789abcdef"));
    }
}
