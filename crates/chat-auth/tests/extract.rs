//! The axum extractors through a real `Router`: status codes and exact PROTOCOL §2
//! bodies.

// clippy.toml allows unwrap/expect in #[test] functions only; the helpers below are
// test code too, and a failing helper should stop the test just as loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::FromRef;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use chat_auth::{
    bearer_from_headers, parse_bearer, redact_query, redacted_path_and_query,
    token_from_header_or_query, AuthAdmin, AuthError, AuthUser, Claims, JwtValidator, TokenIssuer,
    WsAuthUser,
};
use chat_config::JwtAlgorithm;
use http::{HeaderMap, HeaderValue, Uri};
use secrecy::SecretString;
use serde_json::{json, Value};
use tower::ServiceExt;

const SECRET: &str = "k7Rp2Vx9Lm4Qw8Nz3Hc6Yb1Tf5Gd0JsUe";

#[derive(Clone)]
struct AppState {
    validator: Arc<JwtValidator>,
}

impl FromRef<AppState> for Arc<JwtValidator> {
    fn from_ref(state: &AppState) -> Self {
        state.validator.clone()
    }
}

fn secret() -> SecretString {
    SecretString::from(SECRET.to_owned())
}

fn app() -> Router {
    let validator =
        JwtValidator::new(&secret(), &[JwtAlgorithm::HS256], true, Duration::ZERO).unwrap();
    Router::new()
        .route("/me", get(|AuthUser(c): AuthUser| async move { c.user_id }))
        .route(
            "/admin",
            get(|AuthAdmin(c): AuthAdmin| async move { format!("admin {}", c.name) }),
        )
        .route(
            "/ws",
            get(|WsAuthUser(c): WsAuthUser| async move { c.user_id }),
        )
        .route(
            "/cached",
            get(|AuthUser(_): AuthUser, Extension(c): Extension<Claims>| async move { c.user_id }),
        )
        .with_state(AppState {
            validator: Arc::new(validator),
        })
}

fn token(user: &str, roles: &[&str]) -> String {
    TokenIssuer::new(&secret(), JwtAlgorithm::HS256)
        .unwrap()
        .issue(user, None, roles, Duration::from_secs(300))
        .unwrap()
}

async fn call(uri: &str, auth: Option<&str>) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::get(uri);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let resp = app()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = to_bytes(resp.into_body(), 64 * 1024).await.unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn body(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn missing_header_is_401_unauthorized() {
    let (status, headers, text) = call("/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body(&text),
        json!({"error": "missing bearer token", "code": "UNAUTHORIZED"})
    );
    assert_eq!(headers.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
}

#[tokio::test]
async fn malformed_header_is_401_unauthorized() {
    let t = token("u1", &[]);
    for auth in [
        format!("bearer {t}"),
        format!("Basic {t}"),
        format!("Bearer{t}"),
        "Bearer ".to_owned(),
        "Bearer    ".to_owned(),
        format!("Bearer {t} extra"),
        t.clone(),
    ] {
        let (status, _, text) = call("/me", Some(&auth)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth}");
        assert_eq!(
            body(&text),
            json!({"error": "Authorization header must be \"Bearer <token>\"", "code": "UNAUTHORIZED"}),
            "{auth}"
        );
    }
}

#[tokio::test]
async fn bad_token_is_401_invalid_token() {
    let (status, _, text) = call("/me", Some("Bearer not.a.jwt")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body(&text),
        json!({"error": "invalid token: malformed token or unsupported algorithm", "code": "INVALID_TOKEN"})
    );
    let stranger = TokenIssuer::new(
        &SecretString::from("Wq3Zt8Pn5Kv2Rx7Lb4Hm9Jc6Yf1Gd0SaE".to_owned()),
        JwtAlgorithm::HS256,
    )
    .unwrap()
    .issue("u1", None, &["admin"], Duration::from_secs(60))
    .unwrap();
    let (status, _, text) = call("/admin", Some(&format!("Bearer {stranger}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body(&text),
        json!({"error": "invalid token: signature does not match", "code": "INVALID_TOKEN"})
    );
}

#[tokio::test]
async fn valid_user_token_is_200() {
    let (status, _, text) = call("/me", Some(&format!("Bearer {}", token("u1", &["user"])))).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "u1"));
}

#[tokio::test]
async fn non_admin_on_admin_route_is_403_forbidden() {
    let (status, _, text) = call(
        "/admin",
        Some(&format!("Bearer {}", token("u1", &["user"]))),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body(&text),
        json!({"error": "administrator role required", "code": "FORBIDDEN"})
    );
}

#[tokio::test]
async fn admin_route_without_token_is_401_not_403() {
    let (status, _, text) = call("/admin", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body(&text)["code"], "UNAUTHORIZED");
}

#[tokio::test]
async fn admin_token_on_admin_route_is_200() {
    for role in ["admin", "chat_admin"] {
        let (status, _, text) = call(
            "/admin",
            Some(&format!("Bearer {}", token("boss", &[role]))),
        )
        .await;
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::OK, "admin boss"),
            "{role}"
        );
    }
}

#[tokio::test]
async fn websocket_extractor_accepts_header_or_query() {
    let t = token("u7", &[]);
    let (status, _, text) = call(&format!("/ws?token={t}"), None).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "u7"));
    let (status, _, text) = call("/ws", Some(&format!("Bearer {t}"))).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "u7"));
    let (status, _, text) = call("/ws?other=1", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body(&text)["code"], "UNAUTHORIZED");
    let (status, _, text) = call("/ws?token=garbage", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body(&text)["code"], "INVALID_TOKEN");
    // A malformed header is not silently bypassed by a query token.
    let (status, _, text) = call(&format!("/ws?token={t}"), Some("Basic abc")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body(&text)["code"], "UNAUTHORIZED");
    // The HTTP extractor never reads the query.
    let (status, _, _) = call(&format!("/me?token={t}"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn validated_claims_are_left_in_request_extensions() {
    let (status, _, text) = call("/cached", Some(&format!("Bearer {}", token("u9", &[])))).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "u9"));
}

#[test]
fn bearer_parsing_rules() {
    assert_eq!(parse_bearer("Bearer abc").unwrap().expose(), "abc");
    assert_eq!(parse_bearer("Bearer  abc ").unwrap().expose(), "abc");
    for bad in [
        "bearer abc",
        "BEARER abc",
        "Bearer",
        "Bearer ",
        "Token abc",
        "Bearer a b",
    ] {
        assert_eq!(
            parse_bearer(bad),
            Err(AuthError::MalformedHeader),
            "{bad:?}"
        );
    }
    let mut headers = HeaderMap::new();
    assert_eq!(bearer_from_headers(&headers), Err(AuthError::MissingToken));
    headers.append(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer one"),
    );
    assert_eq!(bearer_from_headers(&headers).unwrap().expose(), "one");
    headers.append(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer two"),
    );
    assert_eq!(
        bearer_from_headers(&headers),
        Err(AuthError::MalformedHeader)
    );
    headers.clear();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
    );
    assert_eq!(
        bearer_from_headers(&headers),
        Err(AuthError::MalformedHeader)
    );
}

#[test]
fn query_tokens_are_decoded_and_never_debug_printed() {
    let headers = HeaderMap::new();
    let t = token_from_header_or_query(&headers, Some("a=1&token=x%2Ey&token=second")).unwrap();
    assert_eq!(t.expose(), "x.y");
    assert_eq!(format!("{t:?}"), "BearerToken(REDACTED)");
    assert_eq!(
        token_from_header_or_query(&headers, Some("token=")),
        Err(AuthError::MissingToken)
    );
    assert_eq!(
        token_from_header_or_query(&headers, None),
        Err(AuthError::MissingToken)
    );
}

#[test]
fn query_redaction_hides_every_token() {
    assert_eq!(redact_query("token=abc.def.ghi"), "token=REDACTED");
    assert_eq!(redact_query("a=1&token=abc&b=2"), "a=1&token=REDACTED&b=2");
    assert_eq!(
        redact_query("%74oken=abc&token&x"),
        "%74oken=REDACTED&token=REDACTED&x"
    );
    assert_eq!(redact_query("tokens=keep"), "tokens=keep");
    let uri: Uri = "/chatbox/ws?session=s1&token=eyJhbGciOi.xyz.sig"
        .parse()
        .unwrap();
    let logged = redacted_path_and_query(&uri);
    assert_eq!(logged, "/chatbox/ws?session=s1&token=REDACTED");
    assert!(!logged.contains("eyJ"));
    let uri: Uri = "/chatbox/healthz".parse().unwrap();
    assert_eq!(redacted_path_and_query(&uri), "/chatbox/healthz");
}

#[test]
fn auth_errors_know_status_code_and_hide_internals() {
    let cases = [
        (AuthError::MissingToken, 401, "UNAUTHORIZED"),
        (AuthError::MalformedHeader, 401, "UNAUTHORIZED"),
        (AuthError::InvalidToken("x".into()), 401, "INVALID_TOKEN"),
        (AuthError::Expired, 401, "INVALID_TOKEN"),
        (AuthError::NotYetValid, 401, "INVALID_TOKEN"),
        (AuthError::InvalidClaims("x".into()), 401, "INVALID_TOKEN"),
        (AuthError::Forbidden, 403, "FORBIDDEN"),
        (
            AuthError::Misconfigured("secret path /etc/x".into()),
            500,
            "INTERNAL_ERROR",
        ),
        (AuthError::Signing("x".into()), 500, "INTERNAL_ERROR"),
    ];
    for (err, status, code) in cases {
        assert_eq!(
            (err.http_status(), err.code().as_str()),
            (status, code),
            "{err}"
        );
        if status == 500 {
            assert_eq!(err.to_body().error, "internal error");
            assert_eq!(err.log_level(), tracing::Level::ERROR);
        } else {
            assert_eq!(err.to_body().error, err.to_string());
        }
    }
}
