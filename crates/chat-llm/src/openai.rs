//! OpenAI Chat Completions streaming, which also covers OpenAI-compatible servers
//! (vLLM, llama.cpp, Ollama, LiteLLM, …).

use async_trait::async_trait;
use chat_config::ProviderSettings;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use url::Url;

use crate::http::{endpoint_url, secret_header};
use crate::sse::{decode_stream, Decoded, SseDecoder};
use crate::{ChatRequest, EventStream, LlmError, LlmProvider, ProviderHttp, SetupError};

/// Streams from `POST {endpoint}/chat/completions` with `stream: true` and
/// `stream_options.include_usage`. The key is sent as `Authorization: Bearer` and may
/// be absent (local servers such as Ollama need none).
#[derive(Debug)]
pub struct OpenAiProvider {
    id: String,
    name: String,
    url: Url,
    model: String,
    max_tokens: Option<u32>,
    api_key: Option<SecretString>,
    http: ProviderHttp,
}

impl OpenAiProvider {
    /// Builds the adapter from `[[llm.providers]]`; the endpoint is validated again
    /// (https, or http to an internal host) so no code path can bypass the rule.
    pub fn new(settings: &ProviderSettings, http: ProviderHttp) -> Result<Self, SetupError> {
        let base = crate::setup::endpoint(settings)?;
        Ok(Self {
            id: settings.id.clone(),
            name: settings.name.clone(),
            url: endpoint_url(&base, "/chat/completions"),
            model: settings.model.clone(),
            max_tokens: settings.max_tokens,
            api_key: settings.api_key.clone(),
            http,
        })
    }

    /// The request body, exactly as sent, borrowed from `request`.
    fn body<'a>(&'a self, request: &'a ChatRequest) -> Body<'a> {
        let system = request.system_prompt.as_deref().map(|content| Turn {
            role: "system",
            content,
        });
        let turns = request.messages.iter().map(|t| Turn {
            role: t.role.as_str(),
            content: &t.content,
        });
        Body {
            model: &self.model,
            messages: system.into_iter().chain(turns).collect(),
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
            max_tokens: self.max_tokens,
            user: request.user_id.as_deref(),
        }
    }
}

/// `POST /chat/completions` with `stream: true`.
#[derive(Debug, Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<Turn<'a>>,
    stream: bool,
    stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
}

/// One entry of `messages`.
#[derive(Debug, Serialize)]
struct Turn<'a> {
    role: &'static str,
    content: &'a str,
}

/// Asks for the usage chunk at the end of the stream.
#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[async_trait]
impl LlmProvider for OpenAiProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn stream(&self, request: ChatRequest) -> Result<EventStream, LlmError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.api_key {
            headers.insert(
                AUTHORIZATION,
                secret_header(&format!("Bearer {}", key.expose_secret()))?,
            );
        }
        let body = self.body(&request);
        let response = self
            .http
            .post_stream(&self.id, &self.url, &headers, &body)
            .await?;
        Ok(decode_stream(
            response.bytes_stream(),
            OpenAiDecoder::default(),
            request.prompt_chars(),
        ))
    }
}

/// Interprets `chat.completion.chunk` events.
#[derive(Debug, Default)]
pub(crate) struct OpenAiDecoder {
    saw_finish_reason: bool,
}

/// The common chunk — text deltas and nothing else — decoded without building a
/// `serde_json::Value` tree (every other field is skipped unread).
#[derive(serde::Deserialize)]
struct DeltaChunk<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<DeltaChoice<'a>>>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    usage: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct DeltaChoice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    finish_reason: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
}

impl OpenAiDecoder {
    /// Decodes a plain delta chunk; `false` (nothing decoded) for anything else —
    /// errors, usage, unexpected shapes — which the general path then handles.
    fn decode_delta(&mut self, data: &str, out: &mut Vec<Decoded>) -> bool {
        let Ok(chunk) = serde_json::from_str::<DeltaChunk<'_>>(data) else {
            return false;
        };
        if chunk.error.is_some() || chunk.usage.is_some() {
            return false;
        }
        for choice in chunk.choices.unwrap_or_default() {
            if choice.index.unwrap_or(0) != 0 {
                continue;
            }
            if let Some(text) = choice.delta.and_then(|d| d.content) {
                out.push(Decoded::Delta(text.into_owned()));
            }
            if choice.finish_reason.is_some() {
                self.saw_finish_reason = true;
            }
        }
        true
    }
}

impl SseDecoder for OpenAiDecoder {
    fn decode(&mut self, event: &str, data: &str, out: &mut Vec<Decoded>) -> Result<(), LlmError> {
        let data = data.trim();
        if data == "[DONE]" {
            out.push(Decoded::Finished);
            return Ok(());
        }
        if event != "error" && self.decode_delta(data, out) {
            return Ok(());
        }
        self.decode_general(event, data, out)
    }

    fn complete_at_eof(&self) -> bool {
        self.saw_finish_reason
    }
}

impl OpenAiDecoder {
    /// Any chunk, through a `serde_json::Value` (errors, usage, odd shapes).
    fn decode_general(
        &mut self,
        event: &str,
        data: &str,
        out: &mut Vec<Decoded>,
    ) -> Result<(), LlmError> {
        let chunk: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) if event == "error" => {
                return Err(LlmError::Unavailable(format!(
                    "provider reported: {}",
                    crate::error::truncate_body(data)
                )))
            }
            Err(e) => {
                out.push(Decoded::Malformed(format!("not JSON: {e}")));
                return Ok(());
            }
        };
        if event == "error" && chunk.get("error").is_none() {
            return Err(in_stream_error(&chunk));
        }
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            return Err(in_stream_error(error));
        }
        // `choices` may be missing, null or empty (the usage chunk); tolerate all.
        if let Some(choices) = chunk.get("choices").and_then(Value::as_array) {
            for choice in choices {
                if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                    continue;
                }
                if let Some(text) = choice
                    .get("delta")
                    .and_then(|d| d.get("content"))
                    .and_then(Value::as_str)
                {
                    out.push(Decoded::Delta(text.to_owned()));
                }
                if choice.get("finish_reason").is_some_and(|r| !r.is_null()) {
                    self.saw_finish_reason = true;
                }
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            if let Some(n) = usage.get("prompt_tokens").and_then(Value::as_u64) {
                out.push(Decoded::PromptTokens(n));
            }
            if let Some(n) = usage.get("completion_tokens").and_then(Value::as_u64) {
                out.push(Decoded::CompletionTokens(n));
            }
        }
        Ok(())
    }
}

/// `{"error": {"message", "type", "code"}}` sent inside a stream (vLLM, LiteLLM, …).
fn in_stream_error(error: &Value) -> LlmError {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| error.to_string(), str::to_owned);
    let kind = error
        .get("type")
        .or_else(|| error.get("code"))
        .map(|v| v.to_string())
        .unwrap_or_default();
    let message = crate::error::truncate_body(&message);
    if kind.contains("rate_limit") {
        LlmError::RateLimited { retry_after: None }
    } else {
        LlmError::Unavailable(format!("provider reported: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(lines: &[&str]) -> (Vec<Decoded>, Result<(), LlmError>, OpenAiDecoder) {
        let mut d = OpenAiDecoder::default();
        let mut out = Vec::new();
        let mut result = Ok(());
        for line in lines {
            result = d.decode("message", line, &mut out);
            if result.is_err() {
                break;
            }
        }
        (out, result, d)
    }

    #[test]
    fn the_body_leaves_out_options_that_are_not_set() {
        let body = Body {
            model: "m",
            messages: vec![Turn {
                role: "user",
                content: "hi \"there\"",
            }],
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
            max_tokens: None,
            user: None,
        };
        let sent: Value = serde_json::from_slice(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({
                "model": "m",
                "messages": [{"role": "user", "content": "hi \"there\""}],
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
    }

    #[test]
    fn real_world_chunks_decode_the_same_on_the_fast_and_the_general_path() {
        let chunks = [
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"a \"quoted\" \u00e9 line\n"},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"choices":[{"index":1,"delta":{"content":"other choice"}},{"index":0,"delta":{"content":null}}]}"#,
            r#"{"choices":null}"#,
            r#"{"choices":[{"delta":{"content":"no index"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":["not","text"]}}]}"#,
        ];
        for chunk in chunks {
            let mut fast = OpenAiDecoder::default();
            let mut fast_out = Vec::new();
            let took_fast = fast.decode_delta(chunk, &mut fast_out);
            let mut general = OpenAiDecoder::default();
            let mut general_out = Vec::new();
            let result = general.decode_general("message", chunk, &mut general_out);
            assert!(result.is_ok(), "{chunk}");
            if took_fast {
                assert_eq!(
                    format!("{fast_out:?}"),
                    format!("{general_out:?}"),
                    "{chunk}"
                );
                assert_eq!(fast.saw_finish_reason, general.saw_finish_reason, "{chunk}");
            }
        }
        // The unexpected shape is left to the general path, which tolerates it.
        let mut d = OpenAiDecoder::default();
        assert!(!d.decode_delta(chunks[4], &mut Vec::new()));
        assert!(d.decode_delta(chunks[0], &mut Vec::new()));
    }

    #[test]
    fn deltas_usage_and_done_are_decoded() {
        let (out, result, _) = decode(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#,
            "[DONE]",
        ]);
        assert!(result.is_ok());
        assert_eq!(
            out,
            vec![
                Decoded::Delta(String::new()),
                Decoded::Delta("Hi".into()),
                Decoded::PromptTokens(12),
                Decoded::CompletionTokens(3),
                Decoded::Finished
            ]
        );
    }

    #[test]
    fn null_or_missing_choices_are_tolerated() {
        let (out, result, _) = decode(&[
            r#"{"choices":null,"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            r#"{"id":"x"}"#,
            r#"{"choices":[{"delta":{"content":null}}]}"#,
        ]);
        assert!(result.is_ok());
        assert_eq!(
            out,
            vec![Decoded::PromptTokens(1), Decoded::CompletionTokens(2)]
        );
    }

    #[test]
    fn finish_reason_makes_a_missing_done_acceptable() {
        let (_, _, d) =
            decode(&[r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#]);
        assert!(d.complete_at_eof());
        let (_, _, d) = decode(&[r#"{"choices":[{"index":0,"delta":{"content":"x"}}]}"#]);
        assert!(!d.complete_at_eof());
    }

    #[test]
    fn in_stream_errors_end_the_reply() {
        let (_, result, _) =
            decode(&[r#"{"error":{"message":"model overloaded","type":"server_error"}}"#]);
        assert!(matches!(result, Err(LlmError::Unavailable(m)) if m.contains("overloaded")));
        let (_, result, _) =
            decode(&[r#"{"error":{"message":"slow down","type":"rate_limit_exceeded"}}"#]);
        assert_eq!(result, Err(LlmError::RateLimited { retry_after: None }));
    }

    #[test]
    fn sse_error_events_end_the_reply() {
        let mut d = OpenAiDecoder::default();
        let mut out = Vec::new();
        let r = d.decode("error", r#"{"message":"upstream failed"}"#, &mut out);
        assert!(matches!(r, Err(LlmError::Unavailable(m)) if m.contains("upstream failed")));
        let r = d.decode("error", "plain text failure", &mut out);
        assert!(matches!(r, Err(LlmError::Unavailable(m)) if m.contains("plain text failure")));
    }

    #[test]
    fn garbage_is_reported_as_malformed() {
        let (out, result, _) = decode(&["{not json"]);
        assert!(result.is_ok());
        assert!(matches!(out.as_slice(), [Decoded::Malformed(_)]));
    }
}
