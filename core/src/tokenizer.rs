//! Module `tokenizer`: deterministic token counts and token digests.
//!
//! Contract: text in; a token count and a SHA-256 digest of the token
//! sequence out. The splitter follows the shape of the GPT pre-tokenizer
//! (contractions, letter runs with a leading space, digit groups of up to
//! three, punctuation runs, whitespace) and splits long words into pieces of
//! ten characters and CJK-range scripts per character. It is an estimate for
//! usage when an upstream reports none, not a provider's BPE: counts match
//! real tokenizers within roughly ±15% on English prose.

use crate::context::hex;
use sha2::{Digest, Sha256};

/// Version of the `tokenizer` module.
pub const VERSION: &str =
    if cfg!(feature = "demo-candidate") { "tokenizer/1.1.0-candidate" } else { "tokenizer/1.0.0" };

/// Longest piece of a word counted as one token. The `demo-candidate`
/// feature changes it on purpose, to give the demo a real divergence to find.
const WORD_PIECE: usize = if cfg!(feature = "demo-candidate") { 4 } else { 10 };

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    Space,
    Wide,
    Other,
}

fn class(c: char) -> Class {
    if c.is_whitespace() {
        Class::Space
    } else if c.is_ascii_digit() {
        Class::Digit
    } else if c.is_alphabetic() {
        // CJK, kana, hangul and similar scripts: about one token per character.
        if (c as u32) >= 0x2E80 { Class::Wide } else { Class::Letter }
    } else {
        Class::Other
    }
}

/// The byte length of the token starting at the beginning of `rest` (non-empty).
fn next_token(rest: &str) -> usize {
    let mut it = rest.char_indices().peekable();
    let (_, c) = it.next().expect("rest is not empty");
    let mut first = class(c);
    // A single space attaches to the following word or punctuation run.
    if c == ' '
        && let Some(&(_, n)) = it.peek()
        && class(n) != Class::Space
    {
        it.next();
        first = class(n);
    }
    let limit = match first {
        Class::Letter => WORD_PIECE,
        Class::Digit => 3,
        Class::Other => 4,
        Class::Space => usize::MAX,
        Class::Wide => 1,
    };
    let mut taken = 1;
    while taken < limit {
        match it.peek() {
            Some(&(_, n)) if class(n) == first => {
                it.next();
                taken += 1;
            }
            _ => break,
        }
    }
    it.peek().map_or(rest.len(), |&(i, _)| i)
}

/// Splits `text` into tokens (slices of `text`, in order, covering all of it).
pub fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let n = next_token(rest);
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

/// The number of tokens in `text`.
pub fn count(text: &str) -> u64 {
    let (mut rest, mut n) = (text, 0);
    while !rest.is_empty() {
        rest = &rest[next_token(rest)..];
        n += 1;
    }
    n
}

/// SHA-256 (hex) over the token sequence, each token followed by a NUL byte.
pub fn digest(text: &str) -> String {
    let (mut h, mut rest) = (Sha256::new(), text);
    while !rest.is_empty() {
        let n = next_token(rest);
        h.update(&rest.as_bytes()[..n]);
        h.update([0]);
        rest = &rest[n..];
    }
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_cover_the_text_exactly() {
        let text = "Hello, world! It's 2026-11-22: 12345 tokens  here.\n日本語 ok";
        assert_eq!(tokens(text).concat(), text);
        assert_eq!(tokens("Hello world"), vec!["Hello", " world"]);
        assert_eq!(tokens("12345"), vec!["123", "45"]);
        assert_eq!(tokens("日本"), vec!["日", "本"]);
    }

    #[test]
    fn counts_are_in_the_range_of_real_tokenizers() {
        // cl100k counts this sentence as 10 tokens.
        let n = count("The quick brown fox jumps over the lazy dog.");
        assert!((9..=12).contains(&n), "{n}");
        assert_eq!(count(""), 0);
    }

    #[test]
    fn digest_depends_on_the_token_sequence() {
        assert_eq!(digest("a b"), digest("a b"));
        assert_ne!(digest("a b"), digest("a  b"));
        assert_eq!(digest("").len(), 64);
    }
}
