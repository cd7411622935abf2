//! `POST /uploads` (multipart `file`) and `GET /uploads/{file_id}`.
//!
//! Files are written under `uploads.dir` with a random 32-hex id; a sidecar
//! `<id>.json` keeps the MIME type and the owner. Size and type limits are enforced
//! while streaming, so an oversized upload never sits in memory. The download URL is
//! a capability (unguessable id) because `<img>`/`<audio>` elements cannot send an
//! `Authorization` header.

use axum::body::Body;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat_auth::AuthUser;
use chat_protocol::{ApiErrorCode, UploadResponse};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    mime_type: String,
    size: u64,
    user_id: String,
}

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())
}

/// Stores one uploaded file.
pub async fn upload(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    mut multipart: Multipart,
) -> ApiResult<Json<UploadResponse>> {
    let settings = &state.config.uploads;
    let max = settings.max_file_size as u64;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(&e, max))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let mime = field
            .content_type()
            .map(|m| m.split(';').next().unwrap_or(m).trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !settings
            .allowed_mime_types
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&mime))
        {
            return Err(ApiError::bad_request(format!(
                "file: type {mime:?} is not allowed (allowed: {})",
                settings.allowed_mime_types.join(", ")
            )));
        }
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let id = hex::encode(bytes);
        tokio::fs::create_dir_all(&settings.dir)
            .await
            .map_err(|e| internal("cannot create the upload directory", e))?;
        let path = settings.dir.join(&id);
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| internal("cannot store the upload", e))?;
        let mut size: u64 = 0;
        loop {
            let chunk = match field.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    drop(file);
                    let _ = tokio::fs::remove_file(&path).await;
                    return Err(multipart_error(&e, max));
                }
            };
            size += chunk.len() as u64;
            if size > max {
                drop(file);
                let _ = tokio::fs::remove_file(&path).await;
                return Err(ApiError::new(
                    ApiErrorCode::PayloadTooLarge,
                    format!("file: larger than the limit of {max} bytes"),
                ));
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| internal("cannot store the upload", e))?;
        }
        file.flush()
            .await
            .map_err(|e| internal("cannot store the upload", e))?;
        let sidecar = Sidecar {
            mime_type: mime.clone(),
            size,
            user_id: claims.user_id.clone(),
        };
        let json =
            serde_json::to_vec(&sidecar).map_err(|e| internal("cannot store the upload", e))?;
        tokio::fs::write(settings.dir.join(format!("{id}.json")), json)
            .await
            .map_err(|e| internal("cannot store the upload", e))?;
        let file_url = format!(
            "{}{}",
            state.public_base,
            state.config.route(&format!("/uploads/{id}"))
        );
        return Ok(Json(UploadResponse {
            file_id: id,
            file_url,
            size,
            mime_type: mime,
        }));
    }
    Err(ApiError::bad_request(
        "file: the multipart field \"file\" is required",
    ))
}

/// 413 when the body hit the size limit (the body limit stops reading before the
/// field is complete), else 400 naming the field.
fn multipart_error(e: &axum::extract::multipart::MultipartError, max: u64) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ApiErrorCode::PayloadTooLarge,
            format!("file: larger than the limit of {max} bytes"),
        )
    } else {
        ApiError::bad_request(format!("file: invalid multipart body: {}", e.body_text()))
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "{what}");
    ApiError::new(ApiErrorCode::InternalError, what.to_owned())
}

/// Serves a stored upload with its recorded type (never sniffed, never inline HTML).
pub async fn download(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if !valid_id(&id) {
        return ApiError::new(ApiErrorCode::NotFound, "file not found").into_response();
    }
    let dir = &state.config.uploads.dir;
    let Ok(meta) = tokio::fs::read(dir.join(format!("{id}.json"))).await else {
        return ApiError::new(ApiErrorCode::NotFound, "file not found").into_response();
    };
    let Ok(sidecar) = serde_json::from_slice::<Sidecar>(&meta) else {
        return ApiError::new(ApiErrorCode::NotFound, "file not found").into_response();
    };
    let Ok(file) = tokio::fs::File::open(dir.join(&id)).await else {
        return ApiError::new(ApiErrorCode::NotFound, "file not found").into_response();
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&sidecar.mime_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    response
}
