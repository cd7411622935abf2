//! Anthropic Messages API streaming.

use std::borrow::Cow;

use async_trait::async_trait;
use chat_config::ProviderSettings;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use url::Url;

use crate::error::truncate_body;
use crate::http::secret_header;
use crate::setup::required;
use crate::sse::{decode_stream, Decoded, SseDecoder};
use crate::{
    ChatRequest, ChatTurn, EventStream, LlmError, LlmProvider, ProviderHttp, Role, SetupError,
};

/// The API version this adapter speaks (`anthropic-version` header).
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `max_tokens` is mandatory for Anthropic; used when the provider sets none.
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u32 = 4096;

/// Streams from `POST {endpoint}/v1/messages` (the endpoint may be given with or
/// without `/v1`) with `x-api-key` and `anthropic-version`.
#[derive(Debug)]
pub struct AnthropicProvider {
    id: String,
    name: String,
    url: Url,
    model: String,
    max_tokens: u32,
    api_key: SecretString,
    http: ProviderHttp,
}

impl AnthropicProvider {
    /// Builds the adapter from `[[llm.providers]]` (model and api_key required).
    pub fn new(settings: &ProviderSettings, http: ProviderHttp) -> Result<Self, SetupError> {
        let base = crate::setup::endpoint(settings)?;
        required(settings, "model", &settings.model)?;
        let api_key = settings
            .api_key
            .clone()
            .filter(|k| !k.expose_secret().trim().is_empty())
            .ok_or_else(|| SetupError::Missing {
                id: settings.id.clone(),
                field: "api_key",
            })?;
        Ok(Self {
            id: settings.id.clone(),
            name: settings.name.clone(),
            url: messages_url(&base),
            model: settings.model.clone(),
            max_tokens: settings.max_tokens.unwrap_or(DEFAULT_ANTHROPIC_MAX_TOKENS),
            api_key,
            http,
        })
    }

    /// The request body, exactly as sent. Anthropic requires the conversation to
    /// start with a user turn and to alternate, so leading assistant turns are dropped
    /// and consecutive same-role turns are joined with a blank line.
    fn body<'a>(&'a self, request: &'a ChatRequest) -> Body<'a> {
        Body {
            model: &self.model,
            max_tokens: self.max_tokens,
            messages: alternate(&request.messages),
            stream: true,
            system: request.system_prompt.as_deref(),
            metadata: request
                .user_id
                .as_deref()
                .map(|user_id| Metadata { user_id }),
        }
    }
}

/// `POST /v1/messages` with `stream: true`.
#[derive(Debug, Serialize)]
struct Body<'a> {
    model: &'a str,
    max_tokens: u32,
    messages: Vec<Turn<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
}

/// A turn of [`alternate`]: borrowed, unless same-role neighbours were joined.
#[derive(Debug, Serialize)]
struct Turn<'a> {
    role: &'static str,
    content: Cow<'a, str>,
}

/// The end user, for Anthropic's abuse tracking.
#[derive(Debug, Serialize)]
struct Metadata<'a> {
    user_id: &'a str,
}

fn messages_url(base: &Url) -> Url {
    let path = base.path().trim_end_matches('/');
    let suffix = if path.ends_with("/v1/messages") {
        ""
    } else if path.ends_with("/v1") {
        "/messages"
    } else {
        "/v1/messages"
    };
    let mut url = base.clone();
    url.set_path(&format!("{path}{suffix}"));
    url
}

/// Leading assistant turns dropped, same-role neighbours merged.
fn alternate(turns: &[ChatTurn]) -> Vec<Turn<'_>> {
    let mut out: Vec<Turn<'_>> = Vec::with_capacity(turns.len());
    for turn in turns.iter().skip_while(|t| t.role != Role::User) {
        let role = turn.role.as_str();
        match out.last_mut() {
            Some(last) if last.role == role => {
                let content = last.content.to_mut();
                content.push_str("\n\n");
                content.push_str(&turn.content);
            }
            _ => out.push(Turn {
                role,
                content: Cow::Borrowed(&turn.content),
            }),
        }
    }
    out
}

#[async_trait]
impl LlmProvider for AnthropicProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn stream(&self, request: ChatRequest) -> Result<EventStream, LlmError> {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", secret_header(self.api_key.expose_secret())?);
        headers.insert(
            "anthropic-version",
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        let body = self.body(&request);
        let response = self
            .http
            .post_stream(&self.id, &self.url, &headers, &body)
            .await?;
        Ok(decode_stream(
            response.bytes_stream(),
            AnthropicDecoder,
            request.prompt_chars(),
        ))
    }
}

/// Interprets Messages streaming events (`message_start`, `content_block_delta`,
/// `message_delta`, `message_stop`, `ping`, `error`).
#[derive(Debug, Default)]
pub(crate) struct AnthropicDecoder;

impl SseDecoder for AnthropicDecoder {
    fn decode(&mut self, event: &str, data: &str, out: &mut Vec<Decoded>) -> Result<(), LlmError> {
        if event == "ping" {
            return Ok(());
        }
        let value: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                out.push(Decoded::Malformed(format!("not JSON: {e}")));
                return Ok(());
            }
        };
        let kind = value.get("type").and_then(Value::as_str).unwrap_or(event);
        match kind {
            "message_start" => {
                if let Some(usage) = value.get("message").and_then(|m| m.get("usage")) {
                    push_prompt_tokens(usage, out);
                }
            }
            "content_block_delta" => {
                let delta = value.get("delta");
                let is_text = delta
                    .and_then(|d| d.get("type"))
                    .and_then(Value::as_str)
                    .is_some_and(|t| t == "text_delta");
                if is_text {
                    if let Some(text) = delta.and_then(|d| d.get("text")).and_then(Value::as_str) {
                        out.push(Decoded::Delta(text.to_owned()));
                    }
                }
            }
            "message_delta" => {
                if let Some(usage) = value.get("usage") {
                    push_prompt_tokens(usage, out);
                    if let Some(n) = usage.get("output_tokens").and_then(Value::as_u64) {
                        out.push(Decoded::CompletionTokens(n));
                    }
                }
            }
            "message_stop" => out.push(Decoded::Finished),
            "error" => return Err(stream_error(value.get("error").unwrap_or(&value))),
            // content_block_start/stop, ping, and event types added later.
            _ => {}
        }
        Ok(())
    }
}

/// Prompt tokens are `input_tokens` plus any prompt-cache reads and writes.
fn push_prompt_tokens(usage: &Value, out: &mut Vec<Decoded>) {
    let Some(input) = usage.get("input_tokens").and_then(Value::as_u64) else {
        return;
    };
    let cached: u64 = ["cache_creation_input_tokens", "cache_read_input_tokens"]
        .iter()
        .filter_map(|k| usage.get(*k).and_then(Value::as_u64))
        .sum();
    out.push(Decoded::PromptTokens(input.saturating_add(cached)));
}

/// `{"type": "overloaded_error" | "rate_limit_error" | …, "message": …}`.
fn stream_error(error: &Value) -> LlmError {
    let kind = error.get("type").and_then(Value::as_str).unwrap_or("");
    let message = truncate_body(error.get("message").and_then(Value::as_str).unwrap_or(kind));
    match kind {
        "rate_limit_error" => LlmError::RateLimited { retry_after: None },
        "invalid_request_error" | "not_found_error" | "request_too_large" => {
            LlmError::BadRequest(message)
        }
        "authentication_error" | "permission_error" => LlmError::Unauthorized(message),
        _ => LlmError::Unavailable(format!("provider reported {kind}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(events: &[(&str, &str)]) -> (Vec<Decoded>, Result<(), LlmError>) {
        let mut d = AnthropicDecoder;
        let mut out = Vec::new();
        for (event, data) in events {
            if let Err(e) = d.decode(event, data, &mut out) {
                return (out, Err(e));
            }
        }
        (out, Ok(()))
    }

    #[test]
    fn a_full_stream_is_decoded_with_usage() {
        let (out, result) = decode(&[
            (
                "message_start",
                r#"{"type":"message_start","message":{"usage":{"input_tokens":25,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type": "ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]);
        assert!(result.is_ok());
        assert_eq!(
            out,
            vec![
                Decoded::PromptTokens(30),
                Decoded::Delta("Hello".into()),
                Decoded::CompletionTokens(15),
                Decoded::Finished
            ]
        );
    }

    #[test]
    fn error_events_are_typed() {
        let (_, r) = decode(&[(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )]);
        assert!(matches!(r, Err(LlmError::Unavailable(m)) if m.contains("Overloaded")));
        let (_, r) = decode(&[(
            "error",
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}"#,
        )]);
        assert_eq!(r, Err(LlmError::RateLimited { retry_after: None }));
    }

    #[test]
    fn conversation_is_made_to_alternate_starting_with_user() {
        let turns = [
            ChatTurn::assistant("greeting"),
            ChatTurn::user("a"),
            ChatTurn::user("b"),
            ChatTurn::assistant("c"),
            ChatTurn::user("d"),
        ];
        let out = alternate(&turns);
        let out: Vec<(&str, &str)> = out.iter().map(|t| (t.role, t.content.as_ref())).collect();
        assert_eq!(
            out,
            vec![("user", "a\n\nb"), ("assistant", "c"), ("user", "d")]
        );
    }

    #[test]
    fn messages_path_is_derived_from_any_base_form() {
        for base in [
            "https://api.anthropic.com",
            "https://api.anthropic.com/",
            "https://api.anthropic.com/v1",
            "https://api.anthropic.com/v1/messages",
        ] {
            assert_eq!(
                messages_url(&Url::parse(base).unwrap()).as_str(),
                "https://api.anthropic.com/v1/messages",
                "{base}"
            );
        }
    }
}
