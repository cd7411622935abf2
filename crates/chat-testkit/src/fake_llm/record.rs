//! What the fake server received, for assertions.

use axum::http::HeaderMap;
use serde_json::Value;

use super::WireFormat;

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The API it came in on.
    pub format: WireFormat,
    /// Request path.
    pub path: String,
    /// All request headers (tests assert credentials arrived; never log these).
    pub headers: HeaderMap,
    /// The JSON body (`Null` when it was not JSON).
    pub body: Value,
}

impl RecordedRequest {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The API key, from `x-api-key` (Anthropic) or `Authorization: Bearer`.
    pub fn api_key(&self) -> Option<&str> {
        self.header("x-api-key").or_else(|| {
            self.header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
        })
    }

    /// `model` from the body (OpenAI, Anthropic).
    pub fn model(&self) -> Option<&str> {
        self.body.get("model").and_then(Value::as_str)
    }

    /// The system prompt: OpenAI's `system` messages joined, Anthropic's top-level
    /// `system` (string or text blocks). Dify has none.
    pub fn system_prompt(&self) -> Option<String> {
        match self.format {
            WireFormat::OpenAi => {
                let parts: Vec<String> = self
                    .raw_messages()
                    .into_iter()
                    .filter(|(role, _)| role == "system")
                    .map(|(_, content)| content)
                    .collect();
                (!parts.is_empty()).then(|| parts.join("\n"))
            }
            WireFormat::Anthropic => match self.body.get("system")? {
                Value::String(s) => Some(s.clone()),
                Value::Array(blocks) => Some(
                    blocks
                        .iter()
                        .filter_map(|b| b.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                _ => None,
            },
            WireFormat::Dify => None,
        }
    }

    /// The conversation as (role, content), system messages excluded; Dify's `query`
    /// appears as one user turn.
    pub fn messages(&self) -> Vec<(String, String)> {
        match self.format {
            WireFormat::Dify => self
                .query()
                .map(|q| vec![("user".to_owned(), q.to_owned())])
                .unwrap_or_default(),
            _ => self
                .raw_messages()
                .into_iter()
                .filter(|(role, _)| role != "system")
                .collect(),
        }
    }

    /// Dify's `query`.
    pub fn query(&self) -> Option<&str> {
        self.body.get("query").and_then(Value::as_str)
    }

    /// OpenAI: whether the client asked for usage in the stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    fn raw_messages(&self) -> Vec<(String, String)> {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map(|msgs| {
                msgs.iter()
                    .map(|m| {
                        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
                        let content = match m.get("content") {
                            Some(Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => String::new(),
                        };
                        (role.to_owned(), content)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}
