//! The three provider wire formats, as the fake server writes them.

use serde::Serialize;
use serde_json::{json, Value};

/// Which provider API a request came in on (decided by its path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireFormat {
    /// OpenAI Chat Completions: `POST /v1/chat/completions` (or `/chat/completions`).
    OpenAi,
    /// Anthropic Messages: `POST /v1/messages`.
    Anthropic,
    /// Dify: `POST /v1/chat-messages` (or `/chat-messages`).
    Dify,
}

/// Writes one reply's SSE events in one format.
#[derive(Debug, Clone)]
pub(crate) struct Renderer {
    pub format: WireFormat,
    pub model: String,
    pub usage: Option<(u64, u64)>,
    /// OpenAI: the client asked for `stream_options.include_usage`.
    pub include_usage: bool,
    pub dify_agent: bool,
}

const ID: &str = "fake-0001";

fn data(v: &Value) -> String {
    format!("data: {v}\n\n")
}

fn named(event: &str, v: &Value) -> String {
    format!("event: {event}\ndata: {v}\n\n")
}

/// An OpenAI `chat.completion.chunk`, serialized straight from borrowed fields: the
/// fake writes one per text delta, and every load test pays for it on the cores the
/// server under test runs on (docs/BENCHMARKS.md, twenty-third pass). Its fields are in
/// the order the provider writes them.
#[derive(Serialize)]
struct OpenAiChunk<'a> {
    id: &'a str,
    object: &'a str,
    created: u64,
    model: &'a str,
    choices: [OpenAiChoice<'a>; 1],
}

#[derive(Serialize)]
struct OpenAiChoice<'a> {
    index: u32,
    delta: OpenAiDelta<'a>,
    finish_reason: Option<&'a str>,
}

/// `{}`, `{"content": …}` or `{"role": …, "content": …}`.
#[derive(Serialize)]
struct OpenAiDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

impl Renderer {
    fn openai_chunk(&self, delta: OpenAiDelta<'_>, finish: Option<&str>) -> String {
        let chunk = OpenAiChunk {
            id: ID,
            object: "chat.completion.chunk",
            created: 0,
            model: &self.model,
            choices: [OpenAiChoice {
                index: 0,
                delta,
                finish_reason: finish,
            }],
        };
        match serde_json::to_string(&chunk) {
            Ok(json) => format!("data: {json}\n\n"),
            // Borrowed strings, numbers and options always serialize; should that
            // change, the client sees why.
            Err(e) => self.error(&format!("the fake cannot render a chunk: {e}")),
        }
    }

    /// What a real server sends right after the headers, before any text.
    pub fn preamble(&self) -> String {
        match self.format {
            WireFormat::OpenAi => {
                let delta = OpenAiDelta {
                    role: Some("assistant"),
                    content: Some(""),
                };
                self.openai_chunk(delta, None)
            }
            WireFormat::Anthropic => {
                let mut usage = json!({"output_tokens": 1});
                if let Some((prompt, _)) = self.usage {
                    usage["input_tokens"] = json!(prompt);
                }
                let start = json!({"type": "message_start", "message": {
                    "id": ID, "type": "message", "role": "assistant", "content": [],
                    "model": self.model, "stop_reason": null, "stop_sequence": null, "usage": usage,
                }});
                let block = json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}});
                format!(
                    "{}{}",
                    named("message_start", &start),
                    named("content_block_start", &block)
                )
            }
            WireFormat::Dify => String::new(),
        }
    }

    /// One text delta.
    pub fn text(&self, text: &str) -> String {
        match self.format {
            WireFormat::OpenAi => {
                let delta = OpenAiDelta {
                    role: None,
                    content: Some(text),
                };
                self.openai_chunk(delta, None)
            }
            WireFormat::Anthropic => named(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": text}}),
            ),
            WireFormat::Dify => {
                let event = if self.dify_agent {
                    "agent_message"
                } else {
                    "message"
                };
                data(&json!({"event": event, "task_id": ID, "message_id": ID,
                    "conversation_id": ID, "answer": text, "created_at": 0}))
            }
        }
    }

    /// A keep-alive.
    pub fn ping(&self) -> String {
        match self.format {
            WireFormat::OpenAi => ": ping\n\n".to_owned(),
            WireFormat::Anthropic => named("ping", &json!({"type": "ping"})),
            WireFormat::Dify => "event: ping\n\n".to_owned(),
        }
    }

    /// An in-stream error event.
    pub fn error(&self, message: &str) -> String {
        match self.format {
            WireFormat::OpenAi => {
                data(&json!({"error": {"message": message, "type": "server_error", "code": null}}))
            }
            WireFormat::Anthropic => named(
                "error",
                &json!({"type": "error", "error": {"type": "overloaded_error", "message": message}}),
            ),
            WireFormat::Dify => data(&json!({"event": "error", "task_id": ID, "message_id": ID,
                "status": 500, "code": "internal_server_error", "message": message})),
        }
    }

    /// The proper end of a reply, with usage when scripted.
    pub fn end(&self) -> String {
        match self.format {
            WireFormat::OpenAi => {
                let delta = OpenAiDelta {
                    role: None,
                    content: None,
                };
                let mut out = self.openai_chunk(delta, Some("stop"));
                if let (Some((prompt, completion)), true) = (self.usage, self.include_usage) {
                    out.push_str(&data(&json!({
                        "id": ID, "object": "chat.completion.chunk", "created": 0,
                        "model": self.model, "choices": [],
                        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                            "total_tokens": prompt + completion},
                    })));
                }
                out.push_str("data: [DONE]\n\n");
                out
            }
            WireFormat::Anthropic => {
                let mut delta = json!({"type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": null}});
                if let Some((_, completion)) = self.usage {
                    delta["usage"] = json!({"output_tokens": completion});
                }
                format!(
                    "{}{}{}",
                    named(
                        "content_block_stop",
                        &json!({"type": "content_block_stop", "index": 0})
                    ),
                    named("message_delta", &delta),
                    named("message_stop", &json!({"type": "message_stop"}))
                )
            }
            WireFormat::Dify => {
                let mut metadata = json!({"retriever_resources": []});
                if let Some((prompt, completion)) = self.usage {
                    metadata["usage"] = json!({"prompt_tokens": prompt,
                        "completion_tokens": completion, "total_tokens": prompt + completion});
                }
                data(
                    &json!({"event": "message_end", "task_id": ID, "message_id": ID,
                    "conversation_id": ID, "metadata": metadata}),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openai(usage: Option<(u64, u64)>) -> Renderer {
        Renderer {
            format: WireFormat::OpenAi,
            model: "gpt-\"fake\"".to_owned(),
            usage,
            include_usage: true,
            dify_agent: false,
        }
    }

    /// What a client parses from one `data:` event (or the events of `end`).
    fn events(sse: &str) -> Vec<Value> {
        sse.split("\n\n")
            .filter(|e| !e.is_empty() && *e != "data: [DONE]")
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
            .collect()
    }

    /// The chunk as the fake wrote it before the typed chunk, as a JSON tree.
    fn tree(model: &str, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": ID, "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    }

    #[test]
    fn openai_chunks_carry_what_the_json_tree_did() {
        let r = openai(None);
        for text in [
            "hello",
            "",
            "quote \" backslash \\ newline \n tab \t",
            "héllo ✓ 🚀",
        ] {
            assert_eq!(
                events(&r.text(text)),
                [tree(&r.model, json!({"content": text}), None)],
                "{text:?}"
            );
        }
        assert_eq!(
            events(&r.preamble()),
            [tree(
                &r.model,
                json!({"role": "assistant", "content": ""}),
                None
            )]
        );
        let end = r.end();
        assert!(end.ends_with("data: [DONE]\n\n"), "{end:?}");
        assert_eq!(events(&end), [tree(&r.model, json!({}), Some("stop"))]);
    }

    #[test]
    fn an_openai_chunk_is_one_sse_event_a_client_can_parse() {
        let chunk = openai(Some((3, 4))).text("line one\nline two");
        let body = chunk
            .strip_prefix("data: ")
            .and_then(|c| c.strip_suffix("\n\n"))
            .unwrap();
        assert!(!body.contains('\n'), "one data line: {chunk:?}");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["choices"][0]["delta"]["content"], "line one\nline two");
        assert_eq!(v["choices"][0]["finish_reason"], Value::Null);
        assert_eq!(v["model"], "gpt-\"fake\"");
    }
}
