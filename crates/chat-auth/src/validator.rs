//! Verifying tokens under the PROTOCOL §1 rules.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use chat_config::{Config, JwtAlgorithm};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::claims::{bounded_name, check_user_id, Claims};
use crate::error::AuthError;

/// Tokens longer than this are refused before any decoding work: real tokens are a
/// few hundred bytes, and this bounds the cost an anonymous caller can impose.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The largest clock-skew allowance accepted. Skew between healthy hosts is seconds;
/// a larger leeway would keep expired tokens alive, and an absurd one would overflow
/// the time arithmetic of the JWT library.
pub const MAX_LEEWAY: Duration = Duration::from_secs(600);

/// The claims as they arrive; presence is checked after decoding so each missing
/// claim gets its own message. Unknown claims (`iat`, `sub`, `aud`, ...) are ignored.
#[derive(Deserialize)]
struct RawClaims {
    user_id: Option<String>,
    name: Option<String>,
    roles: Option<Vec<String>>,
    /// Checked by `jsonwebtoken`; kept so long-lived connections can end on time.
    exp: Option<u64>,
}

/// Maps the crate's HMAC algorithm names to `jsonwebtoken`'s. Only HMAC exists in
/// [`JwtAlgorithm`], so an RS/ES/EdDSA or `none` token can never be accepted here:
/// no algorithm-confusion attack can turn the shared secret into a "public key".
pub(crate) fn to_jwt_algorithm(alg: JwtAlgorithm) -> Algorithm {
    match alg {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
    }
}

/// Validates bearer tokens: HMAC signature with the configured secret, algorithm in
/// the allow-list, `exp` enforced when present (and required when configured),
/// `nbf` honoured, both with the configured leeway; then the claims of PROTOCOL §1.
/// Cheap to share behind an `Arc` (the extractors take `Arc<JwtValidator>`).
pub struct JwtValidator {
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtValidator")
            .field("algorithms", &self.validation.algorithms)
            .field(
                "require_exp",
                &self.validation.required_spec_claims.contains("exp"),
            )
            .field("leeway_secs", &self.validation.leeway)
            .finish_non_exhaustive()
    }
}

impl JwtValidator {
    /// A validator for HMAC tokens signed with `secret`. Refuses an empty secret, an
    /// empty algorithm list and a leeway over [`MAX_LEEWAY`]
    /// ([`AuthError::Misconfigured`]): they would make every token forgeable,
    /// unusable, or valid long after it expired. `leeway` is applied in whole seconds.
    pub fn new(
        secret: &SecretString,
        algorithms: &[JwtAlgorithm],
        require_exp: bool,
        leeway: Duration,
    ) -> Result<Self, AuthError> {
        let secret = secret.expose_secret();
        if secret.is_empty() {
            return Err(AuthError::Misconfigured(
                "the JWT secret is empty".to_owned(),
            ));
        }
        if algorithms.is_empty() {
            return Err(AuthError::Misconfigured(
                "no JWT algorithm is allowed".to_owned(),
            ));
        }
        if leeway > MAX_LEEWAY {
            return Err(AuthError::Misconfigured(format!(
                "the JWT leeway must be at most {} seconds",
                MAX_LEEWAY.as_secs()
            )));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = algorithms.iter().copied().map(to_jwt_algorithm).collect();
        validation.required_spec_claims = if require_exp {
            HashSet::from(["exp".to_owned()])
        } else {
            HashSet::new()
        };
        validation.leeway = leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // No audience is configured; tokens from an identity provider that sets
        // `aud` for this service must still be accepted.
        validation.validate_aud = false;
        Ok(Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        })
    }

    /// A validator from the service configuration (`auth.algorithms`,
    /// `auth.leeway`, [`Config::jwt_secret`], [`Config::require_exp`]).
    pub fn from_config(config: &Config) -> Result<Self, AuthError> {
        Self::new(
            config.jwt_secret(),
            &config.auth.algorithms,
            config.require_exp(),
            config.auth.leeway,
        )
    }

    /// Verifies `token` and returns its claims, or why it is refused.
    pub fn validate(&self, token: &str) -> Result<Claims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidToken(format!(
                "token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        // Classify the header first: an unknown `alg` such as `none` fails here.
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            AuthError::InvalidToken("malformed token or unsupported algorithm".to_owned())
        })?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(AuthError::InvalidToken(format!(
                "algorithm {:?} is not allowed",
                header.alg
            )));
        }
        let data = jsonwebtoken::decode::<RawClaims>(token, &self.key, &self.validation)
            .map_err(|e| map_jwt_error(e.kind()))?;
        let raw = data.claims;

        let user_id = raw
            .user_id
            .ok_or_else(|| AuthError::InvalidClaims("user_id is required".to_owned()))?;
        check_user_id(&user_id).map_err(AuthError::InvalidClaims)?;
        let roles = raw
            .roles
            .ok_or_else(|| AuthError::InvalidClaims("roles is required".to_owned()))?;
        let name = match raw.name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => bounded_name(n),
            _ => user_id.clone(),
        };
        Ok(Claims {
            user_id,
            name,
            roles,
            expires_at: raw.exp,
        })
    }
}

fn map_jwt_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidSignature => {
            AuthError::InvalidToken("signature does not match".to_owned())
        }
        ErrorKind::InvalidAlgorithm => {
            AuthError::InvalidToken("algorithm is not allowed".to_owned())
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthError::InvalidClaims(format!("{claim} is required"))
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            AuthError::InvalidClaims(format!("{claim} has the wrong format"))
        }
        ErrorKind::Json(_) => {
            AuthError::InvalidClaims("claims do not have the expected types".to_owned())
        }
        _ => AuthError::InvalidToken("malformed token".to_owned()),
    }
}
