//! The browser UI (`web/` at the repository root), compiled into the binary so that the
//! binary alone serves a working chat: no file is read from disk at run time.
//!
//! [`router`] is meant to be nested at `{prefix}/ui`: the pages derive the path prefix
//! from `location.pathname` (everything before `/ui/`), so this module never needs to
//! know it. Every response carries a strict Content-Security-Policy (scripts and styles
//! only from this origin, no inline code, network only to this origin over HTTP and
//! WebSocket) and an `ETag` with `Cache-Control: no-cache`: the asset names carry no
//! content hash, so browsers must revalidate, and a 304 keeps that cheap.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file of `web/`.
struct Asset {
    /// Path relative to `web/` (`index.html`, `assets/chat.js`).
    path: &'static str,
    /// `Content-Type` header value.
    content_type: &'static str,
    /// The file's bytes, embedded at compile time.
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/", $path)),
        }
    };
}

/// Every file the UI consists of. A test checks that this table and the `web/`
/// directory list the same files, so a new asset cannot be forgotten here.
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("sessions.html", HTML),
    asset!("admin.html", HTML),
    asset!("shared.html", HTML),
    asset!("assets/style.css", CSS),
    asset!("assets/favicon.svg", SVG),
    asset!("assets/common.js", JS),
    asset!("assets/markdown.js", JS),
    asset!("assets/render.js", JS),
    asset!("assets/socket.js", JS),
    asset!("assets/chat.js", JS),
    asset!("assets/sessions.js", JS),
    asset!("assets/admin.js", JS),
    asset!("assets/shared.js", JS),
];

/// Longest share token the shared page accepts in its path; the API issues 32 hex.
const MAX_SHARE_TOKEN_LEN: usize = 128;

/// Longest `Host` header copied into the CSP's WebSocket sources.
const MAX_HOST_LEN: usize = 255;

/// The UI's routes, relative to where they are nested:
/// `/` chat, `/sessions`, `/admin`, `/shared/{token}`, `/assets/{file}`.
/// Anything else under the mount point is a 404 that still carries the CSP.
///
/// Nest it **with a trailing slash**, `.nest("/ui/", web::router())`, so the chat
/// page is at `{prefix}/ui/` as documented: axum maps an inner `/` to exactly the
/// nest path, so `.nest("/ui", …)` serves it at `{prefix}/ui` only (and
/// `{prefix}/ui/` is then a 404). The chat page works at either spelling because it
/// carries a relative `<base href>` naming its directory, so its relative links
/// resolve the same way; a redirect to the root must name the spelling that is mounted.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(chat_page))
        .route("/sessions", get(sessions_page))
        .route("/admin", get(admin_page))
        .route("/shared/{token}", get(shared_page))
        .route("/assets/{*file}", get(asset_file))
        // A route rather than a fallback: nested fallbacks do not survive a second
        // level of nesting (`{prefix}` then `/ui/`), routes do.
        .route("/{*rest}", get(unknown))
}

async fn chat_page(OriginalUri(original): OriginalUri, request_headers: HeaderMap) -> Response {
    let Some(asset) = find("index.html") else {
        return not_found(&request_headers);
    };
    // `{prefix}/ui` and `{prefix}/ui/` both mean the UI directory. The base stays
    // relative (`ui/` resolves against `…/ui`), so a reverse proxy that serves the
    // app under another prefix than the one the server sees still gets working links.
    let base = match original.path().rsplit('/').next() {
        Some(last) if !last.is_empty() => format!("{last}/"),
        _ => "./".to_owned(),
    };
    let page = String::from_utf8_lossy(asset.body).replacen(
        BASE_PLACEHOLDER,
        &format!("<base href=\"{}\">", escape_attribute(&base)),
        1,
    );
    respond(page.into_bytes().into(), HTML, &request_headers)
}

/// The `<base>` element of `index.html` that [`chat_page`] fills in.
const BASE_PLACEHOLDER: &str = "<base href=\"./\">";

/// Escapes a value for a double-quoted HTML attribute.
fn escape_attribute(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

async fn sessions_page(request_headers: HeaderMap) -> Response {
    serve("sessions.html", &request_headers)
}

async fn admin_page(request_headers: HeaderMap) -> Response {
    serve("admin.html", &request_headers)
}

async fn shared_page(Path(token): Path<String>, request_headers: HeaderMap) -> Response {
    let well_formed = !token.is_empty()
        && token.len() <= MAX_SHARE_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if well_formed {
        serve("shared.html", &request_headers)
    } else {
        not_found(&request_headers)
    }
}

async fn asset_file(Path(file): Path<String>, request_headers: HeaderMap) -> Response {
    // Only the files in the table exist: there is no path to traverse.
    serve(&format!("assets/{file}"), &request_headers)
}

async fn unknown(request_headers: HeaderMap) -> Response {
    not_found(&request_headers)
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// `"<hash>"` of a body. SipHash with fixed keys is deterministic within one binary,
/// which is all an ETag needs; the bodies are small and embedded, so hashing per
/// request costs microseconds.
fn etag(body: &[u8]) -> HeaderValue {
    use std::hash::{Hash, Hasher};
    #[allow(deprecated)] // SipHasher: fixed keys, fine for an ETag.
    let mut hasher = std::hash::SipHasher::new();
    body.hash(&mut hasher);
    HeaderValue::from_str(&format!("\"{:016x}\"", hasher.finish()))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

fn serve(path: &str, request_headers: &HeaderMap) -> Response {
    match find(path) {
        Some(asset) => respond(
            Bytes::from_static(asset.body),
            asset.content_type,
            request_headers,
        ),
        None => not_found(request_headers),
    }
}

/// A 200 with the body, or a 304 when the client's `If-None-Match` names its ETag.
fn respond(body: Bytes, content_type: &'static str, request_headers: &HeaderMap) -> Response {
    let tag = etag(&body);
    let fresh = request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|candidate| {
            let candidate = candidate.trim();
            candidate == "*" || candidate.trim_start_matches("W/").as_bytes() == tag.as_bytes()
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = body.into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, tag);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, csp(request_headers));
    response
}

fn not_found(request_headers: &HeaderMap) -> Response {
    let mut response = (StatusCode::NOT_FOUND, "not found").into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, csp(request_headers));
    response
}

/// The policy every UI response carries. `connect-src` names the WebSocket schemes of
/// this host explicitly (older browsers do not let `'self'` cover `ws:`); the host is
/// taken from the request only when it is a plain `host[:port]`, so a forged `Host`
/// header cannot add directives.
fn csp(request_headers: &HeaderMap) -> HeaderValue {
    let host = request_headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= MAX_HOST_LEN
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        });
    let connect = match host {
        Some(host) => format!("'self' ws://{host} wss://{host}"),
        None => "'self'".to_owned(),
    };
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         font-src 'self'; connect-src {connect}; manifest-src 'self'; base-uri 'self'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| {
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             base-uri 'self'; frame-ancestors 'none'",
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get_with(app: Router, uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = Request::get(uri).header("host", "127.0.0.1:8080");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        app.oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    /// Mounted the way the server mounts it.
    fn app() -> Router {
        Router::new().nest("/chatbox", Router::new().nest("/ui/", router()))
    }

    async fn body_text(response: Response) -> String {
        let bytes = to_bytes(response.into_body(), 4 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn header(response: &Response, name: header::HeaderName) -> &str {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    #[tokio::test]
    async fn every_page_route_serves_its_html_page() {
        for (uri, marker) in [
            ("/chatbox/ui/", "assets/chat.js"),
            ("/chatbox/ui/sessions", "assets/sessions.js"),
            ("/chatbox/ui/admin", "assets/admin.js"),
            (
                "/chatbox/ui/shared/0123456789abcdef0123456789abcdef",
                "../assets/shared.js",
            ),
        ] {
            let response = get_with(app(), uri, &[]).await;
            assert_eq!(response.status(), StatusCode::OK, "{uri}");
            assert_eq!(header(&response, header::CONTENT_TYPE), HTML, "{uri}");
            let body = body_text(response).await;
            assert!(body.contains(marker), "{uri} loads {marker}");
        }
    }

    #[tokio::test]
    async fn the_chat_page_names_its_directory_as_base_under_either_nesting() {
        let with_slash = get_with(app(), "/chatbox/ui/", &[]).await;
        assert!(body_text(with_slash).await.contains(r#"<base href="./">"#));
        let without = Router::new().nest("/chatbox", Router::new().nest("/ui", router()));
        let response = get_with(without, "/chatbox/ui", &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(body_text(response).await.contains(r#"<base href="ui/">"#));
    }

    #[test]
    fn attribute_values_are_escaped() {
        assert_eq!(
            escape_attribute(r#"/a"b<c>&'"#),
            "/a&quot;b&lt;c&gt;&amp;&#39;"
        );
    }

    #[tokio::test]
    async fn assets_have_their_content_types() {
        for (uri, content_type) in [
            ("/chatbox/ui/assets/style.css", CSS),
            ("/chatbox/ui/assets/chat.js", JS),
            ("/chatbox/ui/assets/markdown.js", JS),
            ("/chatbox/ui/assets/favicon.svg", SVG),
        ] {
            let response = get_with(app(), uri, &[]).await;
            assert_eq!(response.status(), StatusCode::OK, "{uri}");
            assert_eq!(header(&response, header::CONTENT_TYPE), content_type);
            assert_eq!(header(&response, header::CACHE_CONTROL), "no-cache");
            assert!(!body_text(response).await.is_empty());
        }
    }

    #[tokio::test]
    async fn unknown_assets_and_pages_are_404_with_the_policy() {
        for uri in [
            "/chatbox/ui/assets/nope.js",
            "/chatbox/ui/assets/../index.html",
            "/chatbox/ui/assets/%2e%2e/Cargo.toml",
            "/chatbox/ui/index.html.bak",
            "/chatbox/ui/tests/package.json",
            "/chatbox/ui/shared/bad%20token",
            "/chatbox/ui/shared/",
        ] {
            let response = get_with(app(), uri, &[]).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
            let policy = header(&response, header::CONTENT_SECURITY_POLICY);
            assert!(policy.contains("default-src 'none'"), "{uri}: {policy:?}");
        }
    }

    #[tokio::test]
    async fn pages_carry_a_strict_content_security_policy() {
        let response = get_with(app(), "/chatbox/ui/", &[]).await;
        let policy = header(&response, header::CONTENT_SECURITY_POLICY);
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(!policy.contains("unsafe-eval"), "{policy}");
        assert!(
            policy.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"),
            "{policy}"
        );
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    }

    #[tokio::test]
    async fn a_forged_host_cannot_add_policy_directives() {
        let app = app();
        let request = Request::get("/chatbox/ui/")
            .header("host", "evil; script-src *")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let policy = header(&response, header::CONTENT_SECURITY_POLICY);
        assert!(policy.contains("connect-src 'self';"), "{policy}");
        assert!(!policy.contains("evil"), "{policy}");
    }

    #[tokio::test]
    async fn a_matching_etag_gets_not_modified() {
        let first = get_with(app(), "/chatbox/ui/assets/chat.js", &[]).await;
        let tag = header(&first, header::ETAG).to_owned();
        assert!(tag.starts_with('"') && tag.len() > 2, "{tag}");
        let again = get_with(
            app(),
            "/chatbox/ui/assets/chat.js",
            &[("if-none-match", &tag)],
        )
        .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(body_text(again).await.is_empty());
        let other = get_with(
            app(),
            "/chatbox/ui/assets/chat.js",
            &[("if-none-match", "\"x\"")],
        )
        .await;
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[test]
    fn no_page_contains_inline_script_or_style() {
        for asset in ASSETS.iter().filter(|a| a.content_type == HTML) {
            let text = std::str::from_utf8(asset.body).unwrap();
            for (i, _) in text.match_indices("<script") {
                let tag_end = text[i..].find('>').map(|e| i + e).unwrap();
                assert!(
                    text[i..tag_end].contains("src="),
                    "{}: inline script at byte {i}",
                    asset.path
                );
            }
            assert!(!text.contains("<style"), "{}: inline style", asset.path);
            assert!(!text.contains(" style="), "{}: style attribute", asset.path);
            let lower = text.to_ascii_lowercase();
            for (i, _) in lower.match_indices(" on") {
                let name: String = lower[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                let after = lower[i + 1 + name.len()..].trim_start();
                assert!(
                    !after.starts_with('='),
                    "{}: inline event handler {name}",
                    asset.path
                );
            }
        }
    }

    #[test]
    fn the_asset_table_lists_exactly_the_files_of_web() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
        let mut on_disk = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let relative = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                if relative == "tests" || relative.starts_with("tests/") || relative == "README.md"
                {
                    continue; // the browser tests and docs are not part of the UI
                }
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    on_disk.push(relative);
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }
}
