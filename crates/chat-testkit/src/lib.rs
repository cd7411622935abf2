//! Test-only tooling, never a dependency of shipped code: a fake LLM provider
//! server speaking the OpenAI, Anthropic and Dify streaming formats, a launcher for a
//! MongoDB-wire test server, and a small WebSocket test client.

pub mod fake_llm;
pub mod mongo;
pub mod ws_client;
