//! JWT validation for chatbox (PROTOCOL §1): turns a bearer token into `Claims`
//! (`user_id`, `name`, `roles`) under an algorithm allow-list, decides who is an admin,
//! and provides axum extractors that answer with the PROTOCOL §2 error bodies.
//! It does not know about sessions, routing or rate limits.
