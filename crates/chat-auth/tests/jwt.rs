//! Token validation under PROTOCOL §1, including the usual JWT attacks.

// clippy.toml allows unwrap/expect in #[test] functions only; the helpers below are
// test code too, and a failing helper should stop the test just as loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chat_auth::{AuthError, Claims, JwtValidator, TokenIssuer, MAX_LEEWAY, MAX_TOKEN_BYTES};
use chat_config::{Config, JwtAlgorithm};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{json, Value};

const SECRET: &str = "k7Rp2Vx9Lm4Qw8Nz3Hc6Yb1Tf5Gd0JsUe";
const OTHER_SECRET: &str = "Wq3Zt8Pn5Kv2Rx7Lb4Hm9Jc6Yf1Gd0SaE";
const ALL_HMAC: [JwtAlgorithm; 3] = [
    JwtAlgorithm::HS256,
    JwtAlgorithm::HS384,
    JwtAlgorithm::HS512,
];

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn validator(require_exp: bool, leeway_secs: u64) -> JwtValidator {
    match JwtValidator::new(
        &secret(SECRET),
        &ALL_HMAC,
        require_exp,
        Duration::from_secs(leeway_secs),
    ) {
        Ok(v) => v,
        Err(e) => unreachable!("valid settings refused: {e}"),
    }
}

fn now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX)
}

fn sign_with(claims: &Value, alg: Algorithm, key: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap_or_default()
}

fn sign(claims: &Value) -> String {
    sign_with(claims, Algorithm::HS256, SECRET)
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn user_claims() -> Value {
    json!({"user_id": "u1", "name": "Uma", "roles": ["user"], "exp": now() + 3600})
}

fn refused_as_invalid_token(result: Result<Claims, AuthError>) -> AuthError {
    let err = result.expect_err("token must be refused");
    assert_eq!(err.http_status(), 401, "{err}");
    assert_eq!(err.code().as_str(), "INVALID_TOKEN", "{err}");
    err
}

#[test]
fn a_valid_token_yields_its_claims() {
    let raw = user_claims();
    let claims = validator(true, 0).validate(&sign(&raw)).unwrap();
    assert_eq!(
        claims,
        Claims {
            user_id: "u1".into(),
            name: "Uma".into(),
            roles: vec!["user".into()],
            expires_at: raw["exp"].as_u64(),
        }
    );
    assert!(!claims.is_admin());
}

#[test]
fn every_hmac_algorithm_is_accepted_when_allowed() {
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let token = sign_with(&user_claims(), alg, SECRET);
        assert!(validator(false, 0).validate(&token).is_ok(), "{alg:?}");
    }
}

#[test]
fn an_hmac_algorithm_outside_the_allow_list_is_refused() {
    let only_256 = JwtValidator::new(
        &secret(SECRET),
        &[JwtAlgorithm::HS256],
        false,
        Duration::ZERO,
    )
    .unwrap();
    let token = sign_with(&user_claims(), Algorithm::HS512, SECRET);
    let err = refused_as_invalid_token(only_256.validate(&token));
    assert!(err.to_string().contains("HS512"), "{err}");
}

#[test]
fn alg_none_is_refused() {
    for alg in ["none", "None", "NONE"] {
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "typ": "JWT"})),
            b64(&user_claims())
        );
        refused_as_invalid_token(validator(false, 0).validate(&token));
        // Even with a (meaningless) signature part.
        let token = format!("{token}c2ln");
        refused_as_invalid_token(validator(false, 0).validate(&token));
    }
}

#[test]
fn rs256_header_signed_with_the_hmac_secret_is_refused() {
    // The classic confusion attack: the attacker uses the server's (public) key
    // material as an HMAC secret and claims RS256. Here the header says RS256 and
    // the signature is a correct HMAC over it with the real secret.
    for alg in [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::PS256,
        Algorithm::EdDSA,
    ] {
        let header = b64(&json!({"alg": format!("{alg:?}"), "typ": "JWT"}));
        let signing_input = format!("{header}.{}", b64(&user_claims()));
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        let signature =
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key, Algorithm::HS256).unwrap();
        let token = format!("{signing_input}.{signature}");
        let err = refused_as_invalid_token(validator(false, 0).validate(&token));
        assert!(err.to_string().contains("not allowed"), "{alg:?}: {err}");
    }
}

#[test]
fn a_token_signed_with_another_key_is_refused() {
    let token = sign_with(&user_claims(), Algorithm::HS256, OTHER_SECRET);
    let err = refused_as_invalid_token(validator(false, 0).validate(&token));
    assert_eq!(
        err,
        AuthError::InvalidToken("signature does not match".into())
    );
}

#[test]
fn a_tampered_payload_is_refused() {
    let token = sign(&user_claims());
    let parts: Vec<&str> = token.split('.').collect();
    let forged = json!({"user_id": "u1", "roles": ["admin"], "exp": now() + 3600});
    let tampered = format!("{}.{}.{}", parts[0], b64(&forged), parts[2]);
    let err = refused_as_invalid_token(validator(false, 0).validate(&tampered));
    assert_eq!(
        err,
        AuthError::InvalidToken("signature does not match".into())
    );
    // Changing the first signature character (8 significant bits) is refused too.
    let mut sig = parts[2].to_owned();
    let first = if sig.starts_with('A') { "B" } else { "A" };
    sig.replace_range(..1, first);
    refused_as_invalid_token(
        validator(false, 0).validate(&format!("{}.{}.{sig}", parts[0], parts[1])),
    );
}

#[test]
fn an_expired_token_is_refused() {
    let token = sign(&json!({"user_id": "u1", "roles": [], "exp": now() - 3600}));
    let err = refused_as_invalid_token(validator(false, 30).validate(&token));
    assert_eq!(err, AuthError::Expired);
}

#[test]
fn leeway_tolerates_small_clock_skew() {
    let token = sign(&json!({"user_id": "u1", "roles": [], "exp": now() - 10}));
    assert!(validator(false, 60).validate(&token).is_ok());
    assert_eq!(
        validator(false, 0).validate(&token),
        Err(AuthError::Expired)
    );
}

#[test]
fn a_not_yet_valid_token_is_refused() {
    let token =
        sign(&json!({"user_id": "u1", "roles": [], "nbf": now() + 3600, "exp": now() + 7200}));
    let err = refused_as_invalid_token(validator(false, 30).validate(&token));
    assert_eq!(err, AuthError::NotYetValid);
    let token = sign(&json!({"user_id": "u1", "roles": [], "nbf": now() - 5}));
    assert!(validator(false, 0).validate(&token).is_ok());
}

#[test]
fn exp_is_required_only_when_configured() {
    let token = sign(&json!({"user_id": "u1", "roles": []}));
    assert!(validator(false, 0).validate(&token).is_ok());
    let err = refused_as_invalid_token(validator(true, 0).validate(&token));
    assert_eq!(err, AuthError::InvalidClaims("exp is required".into()));
}

#[test]
fn malformed_exp_is_refused() {
    let token = sign(&json!({"user_id": "u1", "roles": [], "exp": "tomorrow"}));
    refused_as_invalid_token(validator(false, 0).validate(&token));
}

#[test]
fn missing_or_bad_user_id_is_refused() {
    let cases = [
        (json!({"roles": []}), "user_id is required"),
        (
            json!({"user_id": "", "roles": []}),
            "user_id must not be empty",
        ),
        (
            json!({"user_id": "   ", "roles": []}),
            "user_id must not be empty",
        ),
        (
            json!({"user_id": "u".repeat(256), "roles": []}),
            "user_id must be at most 255 bytes, got 256",
        ),
        (
            json!({"user_id": "é".repeat(128), "roles": []}),
            "user_id must be at most 255 bytes, got 256",
        ),
        (
            json!({"user_id": "a\nb", "roles": []}),
            "user_id must not contain control characters",
        ),
        (
            json!({"user_id": 42, "roles": []}),
            "claims do not have the expected types",
        ),
        (json!({"user_id": null, "roles": []}), "user_id is required"),
    ];
    for (claims, reason) in cases {
        let err = refused_as_invalid_token(validator(false, 0).validate(&sign(&claims)));
        assert_eq!(err, AuthError::InvalidClaims(reason.into()), "{claims}");
    }
    let longest = json!({"user_id": "u".repeat(255), "roles": []});
    assert!(validator(false, 0).validate(&sign(&longest)).is_ok());
}

#[test]
fn missing_or_bad_roles_are_refused() {
    let cases = [
        (json!({"user_id": "u1"}), "roles is required"),
        (json!({"user_id": "u1", "roles": null}), "roles is required"),
        (
            json!({"user_id": "u1", "roles": "admin"}),
            "claims do not have the expected types",
        ),
        (
            json!({"user_id": "u1", "roles": [1, 2]}),
            "claims do not have the expected types",
        ),
    ];
    for (claims, reason) in cases {
        let err = refused_as_invalid_token(validator(false, 0).validate(&sign(&claims)));
        assert_eq!(err, AuthError::InvalidClaims(reason.into()), "{claims}");
    }
    let empty = validator(false, 0)
        .validate(&sign(&json!({"user_id": "u1", "roles": []})))
        .unwrap();
    assert!(empty.roles.is_empty());
}

#[test]
fn name_defaults_to_user_id_and_is_bounded() {
    let v = validator(false, 0);
    let c = v
        .validate(&sign(&json!({"user_id": "u1", "roles": []})))
        .unwrap();
    assert_eq!(c.name, "u1");
    let c = v
        .validate(&sign(&json!({"user_id": "u1", "name": "  ", "roles": []})))
        .unwrap();
    assert_eq!(c.name, "u1");
    let c = v
        .validate(&sign(
            &json!({"user_id": "u1", "name": "é".repeat(200), "roles": []}),
        ))
        .unwrap();
    assert_eq!(c.name, "é".repeat(127));
}

#[test]
fn unrelated_registered_claims_are_ignored() {
    let token = sign(&json!({
        "user_id": "u1", "roles": [], "aud": "some-other-service", "iss": "idp", "sub": "x",
        "iat": now(), "extra": {"nested": true},
    }));
    assert!(validator(false, 0).validate(&token).is_ok());
}

#[test]
fn garbage_and_oversized_tokens_are_refused() {
    let v = validator(false, 0);
    for token in [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "...",
        "e30.e30.e30",
        "Bearer x.y.z",
    ] {
        refused_as_invalid_token(v.validate(token));
    }
    let huge = format!(
        "{}.{}.sig",
        b64(&json!({"alg": "HS256"})),
        "A".repeat(MAX_TOKEN_BYTES)
    );
    let err = refused_as_invalid_token(v.validate(&huge));
    assert!(err.to_string().contains("longer than"), "{err}");
}

#[test]
fn admin_role_detection() {
    let with_roles = |roles: &[&str]| Claims {
        user_id: "u".into(),
        name: "u".into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        expires_at: None,
    };
    assert!(with_roles(&["admin"]).is_admin());
    assert!(with_roles(&["user", "chat_admin"]).is_admin());
    assert!(!with_roles(&[]).is_admin());
    assert!(!with_roles(&["user"]).is_admin());
    assert!(!with_roles(&["Admin", "ADMIN", "chat-admin", "administrator"]).is_admin());
}

#[test]
fn misconfigured_validators_are_refused() {
    let empty = JwtValidator::new(&secret(""), &ALL_HMAC, false, Duration::ZERO).unwrap_err();
    assert_eq!(empty.http_status(), 500);
    assert_eq!(empty.to_body().error, "internal error");
    assert!(JwtValidator::new(&secret(SECRET), &[], false, Duration::ZERO).is_err());
    assert!(TokenIssuer::new(&secret(""), JwtAlgorithm::HS256).is_err());
    let absurd = Duration::from_secs(100 * 365 * 24 * 3600);
    assert!(JwtValidator::new(&secret(SECRET), &ALL_HMAC, false, absurd).is_err());
    assert!(JwtValidator::new(&secret(SECRET), &ALL_HMAC, false, MAX_LEEWAY).is_ok());
}

#[test]
fn issued_tokens_validate_with_exp_required() {
    for alg in ALL_HMAC {
        let issuer = TokenIssuer::new(&secret(SECRET), alg).unwrap();
        let token = issuer
            .issue(
                "admin-1",
                Some("Alice"),
                &["chat_admin"],
                Duration::from_secs(600),
            )
            .unwrap();
        let claims = validator(true, 0).validate(&token).unwrap();
        assert_eq!(claims.user_id, "admin-1");
        assert_eq!(claims.name, "Alice");
        assert!(claims.is_admin());
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(format!("{:?}", header.alg), format!("{alg:?}"));
    }
    let issuer = TokenIssuer::new(&secret(SECRET), JwtAlgorithm::HS256).unwrap();
    let token = issuer
        .issue("u2", None, &[] as &[&str], Duration::from_secs(60))
        .unwrap();
    assert_eq!(validator(true, 0).validate(&token).unwrap().name, "u2");
    // Signed with another secret: refused by this validator.
    let stranger = TokenIssuer::new(&secret(OTHER_SECRET), JwtAlgorithm::HS256).unwrap();
    let token = stranger
        .issue("u2", None, &["admin"], Duration::from_secs(60))
        .unwrap();
    refused_as_invalid_token(validator(false, 0).validate(&token));
}

#[test]
fn issuer_refuses_bad_user_ids() {
    let issuer = TokenIssuer::new(&secret(SECRET), JwtAlgorithm::HS256).unwrap();
    for id in ["", " ", &"u".repeat(256)] {
        let err = issuer
            .issue(id, None, &["user"], Duration::from_secs(60))
            .unwrap_err();
        assert!(matches!(err, AuthError::InvalidClaims(_)), "{id:?}: {err}");
    }
}

#[test]
fn from_config_uses_the_configured_secret_and_rules() {
    let env: HashMap<&str, &str> = HashMap::from([("JWT_SECRET", SECRET)]);
    let config = Config::from_toml_str(
        "[auth]\nalgorithms = [\"HS384\"]\nrequire_exp = true\n",
        &env,
    )
    .unwrap();
    let v = JwtValidator::from_config(&config).unwrap();
    let good = sign_with(&user_claims(), Algorithm::HS384, SECRET);
    assert_eq!(v.validate(&good).unwrap().user_id, "u1");
    refused_as_invalid_token(v.validate(&sign(&user_claims())));
    let no_exp = sign_with(
        &json!({"user_id": "u1", "roles": []}),
        Algorithm::HS384,
        SECRET,
    );
    assert_eq!(
        v.validate(&no_exp),
        Err(AuthError::InvalidClaims("exp is required".into()))
    );
}

#[test]
fn debug_output_never_shows_the_secret() {
    let v = validator(false, 0);
    let issuer = TokenIssuer::new(&secret(SECRET), JwtAlgorithm::HS256).unwrap();
    let text = format!("{v:?} {issuer:?}");
    assert!(!text.contains(SECRET), "{text}");
}
