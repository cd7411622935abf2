//! The session naming rule of PROTOCOL §4: a session is named after the first user
//! message — its first line, or its first sentence when that is shorter — cut to at
//! most [`MAX_NAME_CHARS`] characters with `"..."` marking the cut, and
//! [`DEFAULT_NAME`] when there is nothing to name it after.

/// The name of a session whose first message has no text (e.g. a file upload).
pub const DEFAULT_NAME: &str = "New Chat";

/// Upper bound of a session name, in characters (Unicode scalar values), including the
/// `"..."` that marks a cut.
pub const MAX_NAME_CHARS: usize = 50;

/// What is appended to a name that had to be cut.
const ELLIPSIS: &str = "...";

/// Derives a session name from the content of its first user message.
///
/// 1. Surrounding whitespace is ignored; nothing left → [`DEFAULT_NAME`].
/// 2. Only the first line is kept.
/// 3. Only the first sentence of that line is kept: text up to and including the first
///    `.`, `!` or `?` that is followed by whitespace or ends the line (so `3.14` and
///    `example.com` do not end a sentence).
/// 4. A result longer than [`MAX_NAME_CHARS`] characters is cut to
///    `MAX_NAME_CHARS - 3` characters (trailing whitespace dropped) followed by `"..."`.
///
/// The result is never empty, never contains a line break and is idempotent:
/// naming a name gives the same name.
pub fn derive_name(content: &str) -> String {
    let trimmed = content.trim();
    let first_line = trimmed.lines().next().unwrap_or_default().trim();
    let sentence = first_sentence(first_line);
    if sentence.is_empty() {
        return DEFAULT_NAME.to_owned();
    }
    if sentence.chars().count() <= MAX_NAME_CHARS {
        return sentence.to_owned();
    }
    let keep = MAX_NAME_CHARS - ELLIPSIS.chars().count();
    let cut_at = sentence
        .char_indices()
        .nth(keep)
        .map_or(sentence.len(), |(i, _)| i);
    let mut name = sentence[..cut_at].trim_end().to_owned();
    name.push_str(ELLIPSIS);
    name
}

/// The prefix of `line` up to and including the first sentence terminator that is
/// followed by whitespace or the end of the line; the whole line when there is none.
fn first_sentence(line: &str) -> &str {
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?') {
            let ends_sentence = chars.peek().is_none_or(|&(_, next)| next.is_whitespace());
            if ends_sentence {
                return &line[..i + c.len_utf8()];
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_or_blank_content_is_new_chat() {
        assert_eq!(derive_name(""), "New Chat");
        assert_eq!(derive_name("   \n\t  "), "New Chat");
    }

    #[test]
    fn short_single_line_is_kept_as_is() {
        assert_eq!(
            derive_name("  How do I bake bread  "),
            "How do I bake bread"
        );
    }

    #[test]
    fn only_the_first_line_is_used() {
        assert_eq!(derive_name("First line\nsecond line"), "First line");
        assert_eq!(derive_name("\n\nAfter blanks\r\nnext"), "After blanks");
    }

    #[test]
    fn only_the_first_sentence_is_used() {
        assert_eq!(derive_name("Hello there. How are you?"), "Hello there.");
        assert_eq!(derive_name("Really?! Yes"), "Really?!");
        assert_eq!(derive_name("Wow! Nice"), "Wow!");
    }

    #[test]
    fn dots_inside_words_do_not_end_a_sentence() {
        assert_eq!(
            derive_name("Is pi 3.14 or example.com"),
            "Is pi 3.14 or example.com"
        );
    }

    #[test]
    fn long_text_is_cut_to_fifty_chars_with_ellipsis() {
        let long = "a".repeat(80);
        let name = derive_name(&long);
        assert_eq!(name.chars().count(), 50);
        assert_eq!(name, format!("{}...", "a".repeat(47)));
    }

    #[test]
    fn exactly_fifty_chars_is_not_cut() {
        let fifty = "b".repeat(50);
        assert_eq!(derive_name(&fifty), fifty);
    }

    #[test]
    fn cut_counts_characters_not_bytes() {
        let long = "é".repeat(60);
        let name = derive_name(&long);
        assert_eq!(name.chars().count(), 50);
        assert!(name.starts_with(&"é".repeat(47)));
    }

    #[test]
    fn trailing_space_before_the_cut_is_dropped() {
        let text = format!("{} {}", "c".repeat(46), "d".repeat(20));
        assert_eq!(derive_name(&text), format!("{}...", "c".repeat(46)));
    }

    proptest! {
        #[test]
        fn name_is_never_empty_and_at_most_fifty_chars(s in any::<String>()) {
            let name = derive_name(&s);
            prop_assert!(!name.is_empty());
            prop_assert!(name.chars().count() <= MAX_NAME_CHARS);
            prop_assert!(!name.contains('\n') && !name.contains('\r'));
        }

        #[test]
        fn blank_input_gives_new_chat(s in "[ \t\r\n]*") {
            prop_assert_eq!(derive_name(&s), DEFAULT_NAME);
        }

        #[test]
        fn short_plain_line_is_kept(s in "[a-zA-Z0-9][a-zA-Z0-9 ,]{0,47}[a-zA-Z0-9]") {
            prop_assert_eq!(derive_name(&s), s.clone());
        }

        #[test]
        fn name_is_taken_from_the_start_of_the_first_line(s in "[a-z ]{0,120}\n?[a-z .!]{0,40}") {
            let name = derive_name(&s);
            let first_line = s.trim().lines().next().unwrap_or_default().trim().to_owned();
            if first_line.is_empty() {
                prop_assert_eq!(name, DEFAULT_NAME);
            } else {
                let kept = name.strip_suffix("...").unwrap_or(&name);
                prop_assert!(first_line.starts_with(kept), "{name:?} vs {first_line:?}");
            }
        }

        #[test]
        fn naming_is_idempotent(s in any::<String>()) {
            let once = derive_name(&s);
            prop_assert_eq!(derive_name(&once), once.clone());
        }
    }
}
