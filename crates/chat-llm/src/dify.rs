//! Dify `/chat-messages` streaming (chat and agent apps).

use async_trait::async_trait;
use chat_config::ProviderSettings;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use url::Url;

use crate::error::truncate_body;
use crate::http::{endpoint_url, secret_header};
use crate::sse::{decode_stream, Decoded, SseDecoder};
use crate::{ChatRequest, EventStream, LlmError, LlmProvider, ProviderHttp, Role, SetupError};

/// The `user` sent to Dify when the request names no end user.
pub const DEFAULT_DIFY_USER: &str = "chatbox";

/// Streams from `POST {endpoint}/chat-messages` with `response_mode: streaming`.
///
/// Dify keeps conversation memory on its side (keyed by `conversation_id`) and owns
/// its own system prompt (the app's instructions). This adapter starts a fresh Dify
/// conversation per reply, so it folds the bounded history into `query` as a short
/// transcript; `system_prompt` is not sent (configure it in the Dify app).
#[derive(Debug)]
pub struct DifyProvider {
    id: String,
    name: String,
    url: Url,
    api_key: SecretString,
    http: ProviderHttp,
}

impl DifyProvider {
    /// Builds the adapter from `[[llm.providers]]` (api_key required; the endpoint is
    /// the API base, e.g. `https://api.dify.ai/v1`).
    pub fn new(settings: &ProviderSettings, http: ProviderHttp) -> Result<Self, SetupError> {
        let base = crate::setup::endpoint(settings)?;
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
            url: endpoint_url(&base, "/chat-messages"),
            api_key,
            http,
        })
    }

    /// The request body, exactly as sent.
    fn body<'a>(&self, request: &'a ChatRequest) -> Body<'a> {
        Body {
            inputs: Inputs {},
            query: query(request),
            response_mode: "streaming",
            user: request.user_id.as_deref().unwrap_or(DEFAULT_DIFY_USER),
        }
    }
}

/// `POST /chat-messages` in streaming mode.
#[derive(Debug, Serialize)]
struct Body<'a> {
    inputs: Inputs,
    query: String,
    response_mode: &'static str,
    user: &'a str,
}

/// The app's input variables: none (`{}`).
#[derive(Debug, Serialize)]
struct Inputs {}

/// The new message alone, or with the earlier turns as a transcript ahead of it.
fn query(request: &ChatRequest) -> String {
    let Some((last, history)) = request.messages.split_last() else {
        return String::new();
    };
    if history.is_empty() {
        return last.content.clone();
    }
    let mut q = String::from("Conversation so far:\n");
    for turn in history {
        let who = match turn.role {
            Role::User => "User",
            Role::Assistant => "Assistant",
        };
        q.push_str(who);
        q.push_str(": ");
        q.push_str(&turn.content);
        q.push('\n');
    }
    q.push_str("\nNew message:\n");
    q.push_str(&last.content);
    q
}

#[async_trait]
impl LlmProvider for DifyProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn stream(&self, request: ChatRequest) -> Result<EventStream, LlmError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            secret_header(&format!("Bearer {}", self.api_key.expose_secret()))?,
        );
        let body = self.body(&request);
        let response = self
            .http
            .post_stream(&self.id, &self.url, &headers, &body)
            .await?;
        Ok(decode_stream(
            response.bytes_stream(),
            DifyDecoder,
            request.prompt_chars(),
        ))
    }
}

/// Interprets Dify stream events (`data: {"event": …}` objects).
#[derive(Debug, Default)]
pub(crate) struct DifyDecoder;

impl SseDecoder for DifyDecoder {
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
        match value.get("event").and_then(Value::as_str).unwrap_or("") {
            "message" | "agent_message" => {
                if let Some(answer) = value.get("answer").and_then(Value::as_str) {
                    out.push(Decoded::Delta(answer.to_owned()));
                }
            }
            "message_end" => {
                if let Some(usage) = value.get("metadata").and_then(|m| m.get("usage")) {
                    if let Some(n) = usage.get("prompt_tokens").and_then(Value::as_u64) {
                        out.push(Decoded::PromptTokens(n));
                    }
                    if let Some(n) = usage.get("completion_tokens").and_then(Value::as_u64) {
                        out.push(Decoded::CompletionTokens(n));
                    }
                }
                out.push(Decoded::Finished);
            }
            "error" => return Err(stream_error(&value)),
            "message_replace" => {
                // Output moderation replaced the answer; text already streamed cannot
                // be taken back, so this is only logged.
                tracing::warn!("dify replaced a streamed answer (output moderation)");
            }
            // ping, agent_thought, message_file, workflow/node events, tts, …
            _ => {}
        }
        Ok(())
    }
}

/// `{"event":"error","status":429,"code":"…","message":"…"}`.
fn stream_error(value: &Value) -> LlmError {
    let status = value.get("status").and_then(Value::as_u64).unwrap_or(0);
    let code = value.get("code").and_then(Value::as_str).unwrap_or("");
    let message = truncate_body(value.get("message").and_then(Value::as_str).unwrap_or(code));
    match status {
        429 => LlmError::RateLimited { retry_after: None },
        401 | 403 => LlmError::Unauthorized(message),
        400 | 404 | 422 => LlmError::BadRequest(message),
        _ => LlmError::Unavailable(format!("provider reported {code}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChatTurn;

    fn decode(events: &[(&str, &str)]) -> (Vec<Decoded>, Result<(), LlmError>) {
        let mut d = DifyDecoder;
        let mut out = Vec::new();
        for (event, data) in events {
            if let Err(e) = d.decode(event, data, &mut out) {
                return (out, Err(e));
            }
        }
        (out, Ok(()))
    }

    #[test]
    fn answers_usage_and_end_are_decoded_and_pings_ignored() {
        let (out, r) = decode(&[
            ("ping", ""),
            ("message", r#"{"event":"ping"}"#),
            (
                "message",
                r#"{"event":"message","answer":"Hel","conversation_id":"c"}"#,
            ),
            ("message", r#"{"event":"agent_thought","thought":"hmm"}"#),
            ("message", r#"{"event":"agent_message","answer":"lo"}"#),
            (
                "message",
                r#"{"event":"message_end","metadata":{"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}}"#,
            ),
        ]);
        assert!(r.is_ok());
        assert_eq!(
            out,
            vec![
                Decoded::Delta("Hel".into()),
                Decoded::Delta("lo".into()),
                Decoded::PromptTokens(7),
                Decoded::CompletionTokens(2),
                Decoded::Finished
            ]
        );
    }

    #[test]
    fn error_events_surface_as_errors() {
        let (_, r) = decode(&[(
            "message",
            r#"{"event":"error","status":400,"code":"invalid_param","message":"bad query"}"#,
        )]);
        assert_eq!(r, Err(LlmError::BadRequest("bad query".into())));
        let (_, r) = decode(&[(
            "message",
            r#"{"event":"error","status":500,"code":"internal","message":"boom"}"#,
        )]);
        assert!(matches!(r, Err(LlmError::Unavailable(m)) if m.contains("boom")));
    }

    #[test]
    fn history_is_folded_into_the_query() {
        let r = ChatRequest {
            system_prompt: Some("ignored".into()),
            messages: vec![
                ChatTurn::user("hi"),
                ChatTurn::assistant("hello"),
                ChatTurn::user("and now?"),
            ],
            user_id: None,
        };
        assert_eq!(
            query(&r),
            "Conversation so far:\nUser: hi\nAssistant: hello\n\nNew message:\nand now?"
        );
        assert_eq!(query(&ChatRequest::single("only")), "only");
    }
}
