//! The title and description every saved item carries (a report, a dashboard): their limits,
//! which are the tables' CHECK constraints, their checks, and the title of a copy — stated once
//! so that the two kinds of saved item cannot drift apart.

use crate::error::FieldError;

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;

/// Trims a title, and a description to none when it is empty, as both are stored.
pub fn normalize(title: &str, description: Option<&str>) -> (String, Option<String>) {
    let description = description.map(str::trim).filter(|d| !d.is_empty()).map(str::to_owned);
    (title.trim().to_owned(), description)
}

/// The errors of a normalized title and description, named by their input fields.
pub fn check(title: &str, title_field: &str, description: Option<&str>, description_field: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let length = title.chars().count();
    if length == 0 || length > MAX_TITLE_CHARS {
        errors.push(FieldError::new(
            title_field,
            format!("must be 1 to {MAX_TITLE_CHARS} characters"),
        ));
    }
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
        errors.push(FieldError::new(
            description_field,
            format!("at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    errors
}

/// The title of a copy: "<title> (copy)", the original cut so that it fits the longest title.
pub fn copy_title(title: &str) -> String {
    const SUFFIX: &str = " (copy)";
    let keep = MAX_TITLE_CHARS - SUFFIX.chars().count();
    let mut out: String = title.chars().take(keep).collect();
    out.push_str(SUFFIX);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_keep_within_the_longest_title() {
        assert_eq!(copy_title("Daily agents"), "Daily agents (copy)");
        let copy = copy_title(&"é".repeat(MAX_TITLE_CHARS));
        assert_eq!(copy.chars().count(), MAX_TITLE_CHARS);
        assert!(copy.ends_with(" (copy)"));
    }

    #[test]
    fn text_is_trimmed_and_checked_by_characters() {
        let (title, description) = normalize("  Floor  ", Some("   "));
        assert_eq!((title.as_str(), description), ("Floor", None));
        assert!(check(&"é".repeat(MAX_TITLE_CHARS), "t", None, "d").is_empty());
        let errors = check(
            "",
            "input.title",
            Some(&"x".repeat(MAX_DESCRIPTION_CHARS + 1)),
            "input.description",
        );
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["input.title", "input.description"]);
    }
}
