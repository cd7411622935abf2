//! LLM providers behind the streaming `LlmProvider` trait: OpenAI-compatible,
//! Anthropic and Dify adapters, the development echo provider, deadlines
//! (first-token, idle, total) and ordered failover.
