//! docs/PROVIDERS.md stays true: every TOML example in it loads through `chat-config`
//! and builds a working provider registry.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;

use chat_config::Config;
use chat_llm::ProviderRegistry;

fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[tokio::test]
async fn every_provider_example_in_the_docs_loads_and_builds() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/PROVIDERS.md"
    ))
    .expect("docs/PROVIDERS.md");
    let blocks = toml_blocks(&doc);
    let (llm_blocks, provider_blocks): (Vec<_>, Vec<_>) = blocks
        .into_iter()
        .partition(|b| b.trim_start().starts_with("[llm]"));
    assert!(
        provider_blocks.len() >= 5,
        "openai, local, anthropic, dify, echo"
    );
    assert!(llm_blocks.len() >= 2, "timeouts, failover");
    let providers = provider_blocks.concat();
    let env: HashMap<&str, &str> = HashMap::from([
        (
            "LLM_PROVIDER_CLAUDE_API_KEY",
            "sk-ant-live-0123456789abcdef",
        ),
        ("LLM_PROVIDER_SUPPORT_BOT_API_KEY", "app-0123456789abcdef"),
        ("LLM_PROVIDER_1_API_KEY", "sk-live-0123456789abcdef"),
    ]);
    for llm in llm_blocks.iter().map(String::as_str).chain([""]) {
        let text = format!("{llm}\n{providers}");
        let config = Config::from_toml_str(&text, &env)
            .unwrap_or_else(|e| panic!("example does not load:\n{text}\n{e}"));
        let registry = ProviderRegistry::from_settings(&config.llm)
            .unwrap_or_else(|e| panic!("example does not build:\n{text}\n{e}"));
        assert_eq!(registry.models().len(), provider_blocks.len());
    }
}
