//! Minting tokens, for the CLI (`chat-server token ...`), development sign-in links
//! and tests. Production tokens normally come from the identity provider.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_config::JwtAlgorithm;
use jsonwebtoken::{EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::claims::check_user_id;
use crate::error::AuthError;
use crate::validator::to_jwt_algorithm;

#[derive(Serialize)]
struct IssuedClaims<'a> {
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    roles: Vec<&'a str>,
    iat: u64,
    exp: u64,
}

/// Signs PROTOCOL §1 tokens with the shared HMAC secret. Every token it issues
/// carries `iat` and `exp`, so it is accepted even where `exp` is required.
pub struct TokenIssuer {
    key: EncodingKey,
    algorithm: JwtAlgorithm,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// An issuer signing with `secret` under `algorithm`; an empty secret is refused.
    pub fn new(secret: &SecretString, algorithm: JwtAlgorithm) -> Result<Self, AuthError> {
        let secret = secret.expose_secret();
        if secret.is_empty() {
            return Err(AuthError::Misconfigured(
                "the JWT secret is empty".to_owned(),
            ));
        }
        Ok(Self {
            key: EncodingKey::from_secret(secret.as_bytes()),
            algorithm,
        })
    }

    /// A token for `user_id` with `roles`, valid for `ttl` from now. `name` is
    /// omitted when `None` (validators then use the `user_id`). The `user_id` must
    /// satisfy the same rules the validator enforces ([`AuthError::InvalidClaims`]).
    pub fn issue<R: AsRef<str>>(
        &self,
        user_id: &str,
        name: Option<&str>,
        roles: &[R],
        ttl: Duration,
    ) -> Result<String, AuthError> {
        check_user_id(user_id).map_err(AuthError::InvalidClaims)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| AuthError::Signing(format!("system clock before 1970: {e}")))?
            .as_secs();
        let claims = IssuedClaims {
            user_id,
            name,
            roles: roles.iter().map(AsRef::as_ref).collect(),
            iat: now,
            exp: now.saturating_add(ttl.as_secs()),
        };
        let header = Header::new(to_jwt_algorithm(self.algorithm));
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| AuthError::Signing(e.to_string()))
    }
}
