//! Who the caller is, as established by a valid token.

use serde::{Deserialize, Serialize};

/// Roles that make a caller an administrator (PROTOCOL §1).
pub const ADMIN_ROLES: [&str; 2] = ["admin", "chat_admin"];

/// The most bytes a `user_id` claim may have (PROTOCOL §1).
pub const MAX_USER_ID_BYTES: usize = 255;

/// The most bytes kept of the `name` claim; longer names are cut at a character
/// boundary rather than refused, so a verbose identity provider cannot lock a user out.
pub const MAX_NAME_BYTES: usize = 255;

/// The identity carried by a validated token. Only [`crate::JwtValidator::validate`]
/// produces it from a token, so holding one means the signature, algorithm, expiry
/// and claim rules all passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Stable user id (non-empty, at most [`MAX_USER_ID_BYTES`], no control characters).
    pub user_id: String,
    /// Display name; the `user_id` when the token has none.
    pub name: String,
    /// Roles as issued (may be empty).
    pub roles: Vec<String>,
    /// The token's `exp` (seconds since the Unix epoch), when it has one: a WebSocket
    /// opened with this token is closed when it expires.
    pub expires_at: Option<u64>,
}

impl Claims {
    /// Whether the caller holds `role` (exact, case-sensitive match).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the caller is an administrator: role `admin` or `chat_admin`.
    pub fn is_admin(&self) -> bool {
        ADMIN_ROLES.iter().any(|r| self.has_role(r))
    }
}

/// Checks a `user_id` claim: non-empty (not only whitespace), at most
/// [`MAX_USER_ID_BYTES`], no control characters (it reaches logs and database keys).
pub(crate) fn check_user_id(user_id: &str) -> Result<(), String> {
    if user_id.trim().is_empty() {
        return Err("user_id must not be empty".to_owned());
    }
    if user_id.len() > MAX_USER_ID_BYTES {
        return Err(format!(
            "user_id must be at most {MAX_USER_ID_BYTES} bytes, got {}",
            user_id.len()
        ));
    }
    if user_id.chars().any(char::is_control) {
        return Err("user_id must not contain control characters".to_owned());
    }
    Ok(())
}

/// Cuts `name` to at most [`MAX_NAME_BYTES`] at a character boundary.
pub(crate) fn bounded_name(name: &str) -> String {
    let mut end = name.len().min(MAX_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}
