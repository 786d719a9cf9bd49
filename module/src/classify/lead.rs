//! What a classifier reads of a long article: its start (title and lead paragraph carry the
//! topic), cut at a sentence end before a byte budget. Cutting before tokenising keeps the cost
//! of a text independent of its body's length; cutting at a sentence keeps the last sentence
//! whole instead of ending on half a name.

/// Bytes of text per token budgeted before tokenising. English WordPiece averages about 4.5 bytes
/// per token, so a budget of `max_tokens * BYTES_PER_TOKEN` rarely needs a second cut.
pub const BYTES_PER_TOKEN: usize = 6;

/// The start of `text`, at most `max_bytes` long: up to the last sentence end within the budget
/// when one lies in its second half, else up to the last space, else at a character boundary.
pub fn lead(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    let window = &text.as_bytes()[..end];
    let sentence_end = (max_bytes / 2..end)
        .rev()
        .find(|&i| matches!(window[i], b'.' | b'!' | b'?' | b'\n') && window.get(i + 1).is_none_or(|c| c.is_ascii_whitespace()));
    if let Some(i) = sentence_end {
        return &text[..=i];
    }
    match window.iter().rposition(|c| c.is_ascii_whitespace()) {
        Some(i) if i > 0 => text[..i].trim_end(),
        _ => &text[..end],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_whole() {
        assert_eq!(lead("Rain today.", 100), "Rain today.");
    }

    #[test]
    fn long_texts_end_at_a_sentence() {
        let t = "Stocks rose on Monday. Oil fell as traders weighed the data. Shares of Acme jumped after results.";
        assert_eq!(lead(t, 70), "Stocks rose on Monday. Oil fell as traders weighed the data.");
        // Decimal points are not sentence ends.
        assert_eq!(lead("Rates rose 0.25 points to 5.5 percent today and more", 30), "Rates rose 0.25 points to 5.5");
    }

    #[test]
    fn without_a_sentence_end_it_cuts_at_a_space_or_a_character() {
        assert_eq!(lead("one two three four five six", 12), "one two");
        assert_eq!(lead("ééééé", 5), "éé");
        assert!(lead(&"x".repeat(10_000), 64).len() == 64);
    }
}
