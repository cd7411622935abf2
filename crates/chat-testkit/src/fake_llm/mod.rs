//! A fake LLM provider over real HTTP, speaking the OpenAI Chat Completions,
//! Anthropic Messages and Dify `/chat-messages` streaming formats, with scriptable
//! misbehaviour (delays, hangs, HTTP errors, malformed lines, disconnects) for tests
//! and benchmarks of `chat-llm` and everything above it.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use chat_testkit::fake_llm::{FakeLlmServer, Script};
//! let server = FakeLlmServer::start(Script::reply(["Hel", "lo"]).usage(3, 2)).await?;
//! // configure a provider with endpoint = server.openai_endpoint(), then:
//! assert_eq!(server.open_streams(), 0);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod record;
mod script;
mod server;
mod wire;

pub use record::RecordedRequest;
pub use script::{Script, Step};
pub use server::{FakeLlmHandle, FakeLlmServer, MAX_RECORDED_REQUESTS};
pub use wire::WireFormat;
