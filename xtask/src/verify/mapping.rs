//! Which issue a test is evidence for, read from its name: a path segment
//! `production_issue_NN` or `production_issue_NN_<what>` (the same names
//! `cargo test production_issue_NN` selects).

/// The prefix every readiness test name starts with.
pub const TEST_PREFIX: &str = "production_issue_";

/// The issue number `NN` in a test name, from the first path segment
/// (`tests::production_issue_01_session_cleanup` → 1) that is `production_issue_` followed
/// by exactly two digits and then `_` or the end. Any two-digit number is returned; the
/// caller tells the 19 known issues from strays.
pub fn issue_number_of(test_name: &str) -> Option<u8> {
    test_name.split("::").find_map(segment_issue)
}

fn segment_issue(segment: &str) -> Option<u8> {
    let rest = segment.trim().strip_prefix(TEST_PREFIX)?;
    let bytes = rest.as_bytes();
    let digits = bytes.get(..2)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    match bytes.get(2) {
        None | Some(b'_') => {}
        Some(_) => return None,
    }
    Some((digits[0] - b'0') * 10 + (digits[1] - b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_number_from_any_path_segment() {
        assert_eq!(
            issue_number_of("production_issue_01_session_cleanup"),
            Some(1)
        );
        assert_eq!(
            issue_number_of("manager::tests::production_issue_17_weak_secret_acceptance"),
            Some(17)
        );
        assert_eq!(issue_number_of("production_issue_08"), Some(8));
    }

    #[test]
    fn rejects_names_that_only_look_similar() {
        assert_eq!(issue_number_of("production_issue_1_session_cleanup"), None);
        assert_eq!(issue_number_of("production_issue_123_x"), None);
        assert_eq!(issue_number_of("not_production_issue_01_x"), None);
        assert_eq!(issue_number_of("session_cleanup"), None);
        assert_eq!(issue_number_of("production_issue_ab_x"), None);
    }

    #[test]
    fn returns_numbers_outside_the_catalogue_for_the_caller_to_flag() {
        assert_eq!(issue_number_of("production_issue_42_unknown"), Some(42));
    }
}
