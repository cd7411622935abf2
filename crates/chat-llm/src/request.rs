//! The conversation sent to a provider, and how it is cut from a session's history.

use chat_config::LlmSettings;
use chat_session::{Sender, StoredMessage};

/// Who said a turn, in the two-party form every provider understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end user.
    User,
    /// The model (or a human agent who answered on the service's behalf).
    Assistant,
}

impl Role {
    /// The spelling OpenAI and Anthropic use (`user`, `assistant`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTurn {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
}

impl ChatTurn {
    /// A user turn.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant turn.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Everything a provider needs for one reply. The last turn is the new user message;
/// the ones before it are the (already bounded) history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChatRequest {
    /// Instructions sent ahead of the conversation, when configured.
    pub system_prompt: Option<String>,
    /// History followed by the new user message.
    pub messages: Vec<ChatTurn>,
    /// End-user id passed to providers that take one (OpenAI `user`, Dify `user`) for
    /// their abuse tracking; never used for anything else.
    pub user_id: Option<String>,
}

/// How much history may accompany a new message (`llm.history_max_messages`,
/// `llm.history_max_chars`). The new message itself is always sent and not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryBudget {
    /// At most this many earlier turns.
    pub max_messages: usize,
    /// At most this many characters (Unicode scalar values) of earlier turns.
    pub max_chars: usize,
}

impl HistoryBudget {
    /// The budget configured in `[llm]`.
    pub fn from_settings(settings: &LlmSettings) -> Self {
        Self {
            max_messages: settings.history_max_messages,
            max_chars: settings.history_max_chars,
        }
    }
}

/// Marks a human agent's words in the history so the model does not take them for its
/// own earlier replies.
pub const ADMIN_PREFIX: &str = "[Human support agent] ";

impl ChatRequest {
    /// A request with only the new message (no history, no system prompt).
    pub fn single(message: impl Into<String>) -> Self {
        Self {
            system_prompt: None,
            messages: vec![ChatTurn::user(message)],
            user_id: None,
        }
    }

    /// Builds the request for `new_message` from the session history that precedes it
    /// (`history` must NOT contain `new_message` itself), oldest first.
    ///
    /// Mapping of stored senders:
    /// - `user` → user turn; `ai` → assistant turn;
    /// - `admin` (a human who took the session over) → assistant turn prefixed with
    ///   [`ADMIN_PREFIX`], because they spoke on the service's side;
    /// - `system` (service notices, errors) → left out: they were never part of the
    ///   conversation;
    /// - messages with blank content (file or voice uploads without text) → left out.
    ///
    /// Then the newest turns are kept while both `budget.max_messages` and
    /// `budget.max_chars` hold; the oldest are dropped first and the kept history is
    /// contiguous (a turn that does not fit ends the walk, so no gaps appear).
    pub fn from_history(
        system_prompt: Option<String>,
        history: &[StoredMessage],
        new_message: impl Into<String>,
        budget: HistoryBudget,
    ) -> Self {
        let mut kept: Vec<ChatTurn> = Vec::new();
        let mut chars = 0usize;
        for message in history.iter().rev() {
            let Some(turn) = turn_of(message) else {
                continue;
            };
            if kept.len() >= budget.max_messages {
                break;
            }
            let len = turn.content.chars().count();
            if chars.saturating_add(len) > budget.max_chars {
                break;
            }
            chars += len;
            kept.push(turn);
        }
        kept.reverse();
        kept.push(ChatTurn::user(new_message));
        Self {
            system_prompt: system_prompt.filter(|p| !p.trim().is_empty()),
            messages: kept,
            user_id: None,
        }
    }

    /// [`ChatRequest::from_history`] with the system prompt and budget from `[llm]`.
    pub fn from_settings(
        settings: &LlmSettings,
        history: &[StoredMessage],
        new_message: impl Into<String>,
    ) -> Self {
        Self::from_history(
            settings.system_prompt.clone(),
            history,
            new_message,
            HistoryBudget::from_settings(settings),
        )
    }

    /// Sets the end-user id forwarded to providers that take one.
    pub fn with_user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// The new user message (the last turn), or "" for an empty request.
    pub fn last_user_message(&self) -> &str {
        self.messages
            .iter()
            .rev()
            .find(|t| t.role == Role::User)
            .map_or("", |t| t.content.as_str())
    }

    /// Characters of everything sent (system prompt and all turns), the basis of the
    /// usage estimate when a provider reports none.
    pub fn prompt_chars(&self) -> usize {
        self.system_prompt
            .as_deref()
            .map_or(0, |p| p.chars().count())
            + self
                .messages
                .iter()
                .map(|t| t.content.chars().count())
                .sum::<usize>()
    }
}

fn turn_of(message: &StoredMessage) -> Option<ChatTurn> {
    if message.content.trim().is_empty() {
        return None;
    }
    match message.sender {
        Sender::User => Some(ChatTurn::user(message.content.clone())),
        Sender::Ai => Some(ChatTurn::assistant(message.content.clone())),
        Sender::Admin => Some(ChatTurn::assistant(format!(
            "{ADMIN_PREFIX}{}",
            message.content
        ))),
        Sender::System => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn msg(sender: Sender, content: &str) -> StoredMessage {
        StoredMessage::text(sender, content, Utc::now())
    }

    fn budget(max_messages: usize, max_chars: usize) -> HistoryBudget {
        HistoryBudget {
            max_messages,
            max_chars,
        }
    }

    #[test]
    fn new_message_is_last_and_history_keeps_order() {
        let history = [msg(Sender::User, "hi"), msg(Sender::Ai, "hello")];
        let r =
            ChatRequest::from_history(Some("be kind".into()), &history, "next", budget(10, 100));
        assert_eq!(
            r.messages,
            vec![
                ChatTurn::user("hi"),
                ChatTurn::assistant("hello"),
                ChatTurn::user("next")
            ]
        );
        assert_eq!(r.system_prompt.as_deref(), Some("be kind"));
        assert_eq!(r.last_user_message(), "next");
    }

    #[test]
    fn oldest_messages_are_dropped_first_by_count() {
        let history: Vec<_> = (0..10).map(|i| msg(Sender::User, &i.to_string())).collect();
        let r = ChatRequest::from_history(None, &history, "new", budget(3, 1000));
        let contents: Vec<_> = r.messages.iter().map(|t| t.content.as_str()).collect();
        assert_eq!(contents, ["7", "8", "9", "new"]);
    }

    #[test]
    fn oldest_messages_are_dropped_first_by_chars_without_gaps() {
        let history = [
            msg(Sender::User, "aaaa"),
            msg(Sender::Ai, "a very long reply that does not fit"),
            msg(Sender::User, "bbbb"),
            msg(Sender::Ai, "cccc"),
        ];
        let r = ChatRequest::from_history(
            None,
            &history,
            "the new message is not counted",
            budget(10, 10),
        );
        let contents: Vec<_> = r.messages.iter().map(|t| t.content.as_str()).collect();
        assert_eq!(contents, ["bbbb", "cccc", "the new message is not counted"]);
    }

    #[test]
    fn admin_turns_are_marked_and_system_notices_and_blank_uploads_skipped() {
        let history = [
            msg(Sender::System, "Session resumed"),
            msg(Sender::User, "  "),
            msg(Sender::Admin, "I can help"),
        ];
        let r = ChatRequest::from_history(Some("   ".into()), &history, "thanks", budget(10, 1000));
        assert_eq!(
            r.messages,
            vec![
                ChatTurn::assistant(format!("{ADMIN_PREFIX}I can help")),
                ChatTurn::user("thanks")
            ]
        );
        assert_eq!(r.system_prompt, None, "a blank system prompt is not sent");
    }

    #[test]
    fn settings_supply_prompt_and_budget() {
        let settings = LlmSettings {
            system_prompt: Some("sys".into()),
            history_max_messages: 1,
            ..LlmSettings::default()
        };
        let history = [msg(Sender::User, "old"), msg(Sender::Ai, "recent")];
        let r = ChatRequest::from_settings(&settings, &history, "now");
        assert_eq!(r.system_prompt.as_deref(), Some("sys"));
        assert_eq!(r.messages.len(), 2);
        assert_eq!(r.prompt_chars(), 3 + 6 + 3);
    }
}
