//! The configured providers, the model selector list, and failover.

use std::collections::HashSet;
use std::sync::Arc;

use chat_config::{LlmSettings, ProviderKind, ProviderSettings};
use futures::StreamExt;

use crate::{
    AnthropicProvider, ChatRequest, Deadlines, DifyProvider, EchoProvider, EventStream, LlmError,
    LlmProvider, ModelInfo, OpenAiProvider, ProviderHttp, RetryPolicy, SetupError,
};

/// Every configured provider, in selector order, plus the default, the fallback order
/// and the deadlines. Built once at start and shared (`Arc`) by all sessions; all
/// HTTP adapters share one pooled client.
pub struct ProviderRegistry {
    /// Selector order: the default first, then the others as configured.
    providers: Vec<Arc<dyn LlmProvider>>,
    fallback: Vec<String>,
    deadlines: Deadlines,
}

impl std::fmt::Debug for ProviderRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderRegistry")
            .field("models", &self.models())
            .field("fallback", &self.fallback)
            .field("deadlines", &self.deadlines)
            .finish()
    }
}

impl ProviderRegistry {
    /// Builds every adapter from `[llm]` with the default retry policy.
    pub fn from_settings(settings: &LlmSettings) -> Result<Self, SetupError> {
        let http = ProviderHttp::new(RetryPolicy::default())
            .map_err(|e| SetupError::HttpClient(e.to_string()))?;
        Self::from_settings_with(settings, http)
    }

    /// Builds every adapter from `[llm]` on the given shared HTTP client.
    pub fn from_settings_with(
        settings: &LlmSettings,
        http: ProviderHttp,
    ) -> Result<Self, SetupError> {
        let providers = settings
            .providers
            .iter()
            .map(|p| build_provider(p, &http))
            .collect::<Result<Vec<_>, _>>()?;
        let default = settings.default_provider.clone();
        Self::new(
            providers,
            default,
            settings.fallback.clone(),
            Deadlines::from_settings(settings),
        )
    }

    /// Assembles a registry from ready providers (tests, embedders). `default` names
    /// the provider new sessions use (the first when `None`); `fallback` lists the ids
    /// tried, in order, when the selected provider fails before its first token.
    pub fn new(
        providers: Vec<Arc<dyn LlmProvider>>,
        default: Option<String>,
        fallback: Vec<String>,
        deadlines: Deadlines,
    ) -> Result<Self, SetupError> {
        if providers.is_empty() {
            return Err(SetupError::NoProviders);
        }
        let mut ids = HashSet::new();
        for p in &providers {
            if !ids.insert(p.id().to_owned()) {
                return Err(SetupError::DuplicateId(p.id().to_owned()));
            }
        }
        let mut providers = providers;
        if let Some(default) = default {
            let index = providers.iter().position(|p| p.id() == default).ok_or(
                SetupError::UnknownProvider {
                    field: "llm.default_provider",
                    id: default,
                },
            )?;
            let p = providers.remove(index);
            providers.insert(0, p);
        }
        if let Some(unknown) = fallback.iter().find(|id| !ids.contains(id.as_str())) {
            return Err(SetupError::UnknownProvider {
                field: "llm.fallback",
                id: unknown.clone(),
            });
        }
        Ok(Self {
            providers,
            fallback,
            deadlines,
        })
    }

    /// The model selector list: stable order, the default first.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.providers
            .iter()
            .map(|p| ModelInfo {
                id: p.id().to_owned(),
                name: p.name().to_owned(),
            })
            .collect()
    }

    /// True when `id` names a configured provider (validating `model_select`).
    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// The provider with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<dyn LlmProvider>> {
        self.providers.iter().find(|p| p.id() == id)
    }

    /// The default provider's id.
    pub fn default_id(&self) -> &str {
        self.providers.first().map_or("", |p| p.id())
    }

    /// The deadlines applied to every reply.
    pub fn deadlines(&self) -> Deadlines {
        self.deadlines
    }

    /// The fallback order as configured.
    pub fn fallback(&self) -> &[String] {
        &self.fallback
    }

    /// The provider ids tried, in order, for a reply with `selected`: the selected one
    /// (the default when `None` or unknown — e.g. a stored session whose model was
    /// removed from the config), then the fallback list without repeats.
    /// `Some("")` means the default, like `None`.
    pub fn attempt_order(&self, selected: Option<&str>) -> Vec<&str> {
        let first = selected
            .and_then(|id| self.get(id))
            .map_or_else(|| self.default_id(), |p| p.id());
        let mut order = vec![first];
        for id in &self.fallback {
            if !order.contains(&id.as_str()) {
                order.push(id);
            }
        }
        order
    }

    /// Streams a reply, with deadlines and failover.
    ///
    /// Each attempt gets the full deadlines, measured from its own start. An attempt
    /// that fails or misses its first-token deadline before delivering its first text
    /// hands over to the next provider in [`Self::attempt_order`]; the last attempt is
    /// never cut short by failover (its own deadlines still apply). Once text has been
    /// delivered there is no failover: later errors end the stream.
    ///
    /// Returns the id of the provider that answered and its stream, whose first item
    /// has already been received (and is yielded first).
    #[tracing::instrument(name = "llm_reply", skip_all, fields(selected = selected.unwrap_or("")))]
    pub async fn stream_with_failover(
        &self,
        selected: Option<&str>,
        request: ChatRequest,
    ) -> Result<(String, EventStream), LlmError> {
        // A session's stored model id is "" when it uses the default.
        let selected = selected.filter(|id| !id.is_empty());
        if let Some(id) = selected.filter(|id| !self.contains(id)) {
            tracing::warn!(
                provider = id,
                default = self.default_id(),
                "unknown provider selected; using the default"
            );
        }
        let order = self.attempt_order(selected);
        let mut last_error = LlmError::Unavailable("no provider configured".to_owned());
        for (i, id) in order.iter().enumerate() {
            let Some(provider) = self.get(id) else {
                continue;
            };
            let is_last = i + 1 == order.len();
            let outcome = self.attempt(provider.as_ref(), request.clone()).await;
            // Labels are provider ids from the configuration: bounded cardinality.
            let label = match &outcome {
                Ok(_) => "ok",
                Err(e) => e.metric_label(),
            };
            metrics::counter!(
                "chatbox_llm_provider_attempts_total",
                "provider" => (*id).to_owned(),
                "outcome" => label
            )
            .increment(1);
            match outcome {
                Ok(stream) => {
                    if i > 0 {
                        tracing::info!(
                            provider = *id,
                            attempt = i + 1,
                            "failover provider answered"
                        );
                    }
                    return Ok(((*id).to_owned(), stream));
                }
                Err(error) => {
                    if !is_last {
                        metrics::counter!(
                            "chatbox_llm_failovers_total",
                            "from" => (*id).to_owned()
                        )
                        .increment(1);
                        tracing::warn!(provider = *id, %error, next = order[i + 1], "provider failed before its first token; failing over");
                    }
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }

    /// One attempt: the call and its first item under the deadlines.
    async fn attempt(
        &self,
        provider: &dyn LlmProvider,
        request: ChatRequest,
    ) -> Result<EventStream, LlmError> {
        let mut stream = self.deadlines.stream(provider, request).await?;
        match stream.next().await {
            Some(Ok(first)) => Ok(Box::pin(
                futures::stream::once(async { Ok(first) }).chain(stream),
            )),
            Some(Err(error)) => Err(error),
            None => Err(LlmError::Protocol(
                "the provider returned an empty stream".to_owned(),
            )),
        }
    }
}

/// One adapter from its settings.
pub fn build_provider(
    settings: &ProviderSettings,
    http: &ProviderHttp,
) -> Result<Arc<dyn LlmProvider>, SetupError> {
    Ok(match settings.kind {
        ProviderKind::Openai => Arc::new(OpenAiProvider::new(settings, http.clone())?),
        ProviderKind::Anthropic => Arc::new(AnthropicProvider::new(settings, http.clone())?),
        ProviderKind::Dify => Arc::new(DifyProvider::new(settings, http.clone())?),
        ProviderKind::Echo => Arc::new(EchoProvider::from_settings(settings)),
    })
}
