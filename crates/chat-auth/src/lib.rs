//! JWT validation for chatbox (PROTOCOL §1): [`JwtValidator`] turns a bearer token
//! into [`Claims`] (`user_id`, `name`, `roles`) under an HMAC-only algorithm
//! allow-list with `exp`/`nbf` enforcement, [`Claims::is_admin`] decides who is an
//! administrator, [`TokenIssuer`] mints tokens for the CLI and tests, the `bearer`
//! functions find the token in a header or a WebSocket `?token=` query (and redact
//! that query for logs), and the axum extractors [`AuthUser`], [`AuthAdmin`] and
//! [`WsAuthUser`] reject with the PROTOCOL §2 error bodies via [`AuthError`].
//! It does not know about sessions, routing or rate limits.

mod bearer;
mod claims;
mod error;
mod extract;
mod issuer;
mod validator;

pub use bearer::{
    bearer_from_headers, parse_bearer, redact_query, redacted_path_and_query,
    token_from_header_or_query, BearerToken, REDACTED, TOKEN_QUERY_PARAM,
};
pub use claims::{Claims, ADMIN_ROLES, MAX_NAME_BYTES, MAX_USER_ID_BYTES};
pub use error::AuthError;
pub use extract::{AuthAdmin, AuthUser, WsAuthUser};
pub use issuer::TokenIssuer;
pub use validator::{JwtValidator, MAX_LEEWAY, MAX_TOKEN_BYTES};
