//! Finding a user's messages and chat titles by their words: how text is folded and cut
//! into words (the same rule for what is stored and what is asked), the query, and the
//! snippet with highlights a hit shows. Pure: storage finds the hits, this module says
//! what a client reads of them.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use crate::chat::ChatTitle;
use crate::error::{Field, Problem, ValidationError, reject_nul};
use crate::ids::{ChatId, MessageId};
use crate::message::Role;
use crate::page::Cursor;

/// Longest search query, in characters.
pub const QUERY_MAX_CHARS: usize = 200;
/// Longest snippet, in characters (without the `…` marks of a cut).
pub const SNIPPET_CHARS: usize = 160;
/// Characters of context kept before the first match when a text is cut.
const CONTEXT_BEFORE: usize = 40;

/// Accented letters folded by search, each to the plain letter at the same position of
/// [`FOLD_TO`] (Latin-1 and Latin Extended-A, both cases). The PostgreSQL migration's
/// `memlayer_fold` function holds the same pairs (in another order; a test checks it), so
/// what is stored and what is asked fold alike.
pub const FOLD_FROM: &str = "àáâãäåāăąÀÁÂÃÄÅĀĂĄçćĉċčÇĆĈĊČďđĎĐèéêëēĕėęěÈÉÊËĒĔĖĘĚĝğġģĜĞĠĢĥħĤĦìíîïĩīĭįıÌÍÎÏĨĪĬĮİĵĴķĶĺļľŀłĹĻĽĿŁñńņňÑŃŅŇòóôõöøōŏőÒÓÔÕÖØŌŎŐŕŗřŔŖŘśŝşšŚŜŞŠţťŧŢŤŦùúûüũūŭůűųÙÚÛÜŨŪŬŮŰŲŵŴýÿŷÝŸŶźżžŹŻŽ";
/// The plain letters of [`FOLD_FROM`], position by position.
pub const FOLD_TO: &str = "aaaaaaaaaaaaaaaaaaccccccccccddddeeeeeeeeeeeeeeeeeegggggggghhhhiiiiiiiiiiiiiiiiiijjkkllllllllllnnnnnnnnoooooooooooooooooorrrrrrssssssssttttttuuuuuuuuuuuuuuuuuuuuwwyyyyyyzzzzzz";

/// [`FOLD_FROM`] to [`FOLD_TO`], letter by letter.
static FOLDS: LazyLock<HashMap<char, char>> =
    LazyLock::new(|| FOLD_FROM.chars().zip(FOLD_TO.chars()).collect());

/// Appends `c` folded for search (accents off, lower case) to `out`.
fn fold_into(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    match FOLDS.get(&c) {
        Some(plain) => out.push(*plain),
        None => out.extend(c.to_lowercase()),
    }
}

/// `text` folded for search: lower case, accents of [`FOLD_FROM`] off.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        fold_into(c, &mut out);
    }
    out
}

/// The words of `text`: maximal runs of letters and digits, as `[start, end)` offsets in
/// characters. Everything else (spaces, punctuation, symbols, operators) separates words.
fn words(chars: &[char]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut start = None;
    for (at, c) in chars.iter().enumerate() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(at),
            (false, Some(from)) => {
                found.push((from, at));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        found.push((from, chars.len()));
    }
    found
}

/// What a user searches for: the folded words of their query. Punctuation and query
/// operators are plain text (they only separate words), so no query is malformed; one
/// made of punctuation alone has no words and finds nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    words: Vec<String>,
}

impl SearchQuery {
    /// Parses a query: not blank, at most [`QUERY_MAX_CHARS`] characters, no NUL.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        reject_nul(Field::Query, input)?;
        if input.trim().is_empty() {
            return Err(ValidationError::new(Field::Query, Problem::Blank));
        }
        if input.chars().count() > QUERY_MAX_CHARS {
            return Err(ValidationError::new(
                Field::Query,
                Problem::TooManyChars {
                    max: QUERY_MAX_CHARS,
                },
            ));
        }
        let chars: Vec<char> = input.chars().collect();
        let mut found: Vec<String> = Vec::new();
        for (start, end) in words(&chars) {
            let word = fold(&chars[start..end].iter().collect::<String>());
            if !found.contains(&word) {
                found.push(word);
            }
        }
        Ok(Self { words: found })
    }

    /// The distinct folded words, in the order given; each matches any word of a text
    /// that starts with it (after folding). Only letters and digits.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Whether the query has no word to look for (it was punctuation only).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

/// The order of search results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchOrder {
    /// Newest first (ties by id, descending), paged.
    #[default]
    Newest,
    /// Best match first, as the database ranks it; one page.
    Relevance,
}

/// A `[start, end)` range of characters (Unicode code points) of a snippet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Highlight {
    /// The first character highlighted.
    pub start: usize,
    /// The character after the last one highlighted.
    pub end: usize,
}

/// A piece of a text around its first match, and where the query's words are in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// Plain text (no markup); `…` marks where the text was cut; line breaks and tabs
    /// read as spaces.
    pub text: String,
    /// Every match in `text`, in order.
    pub highlights: Vec<Highlight>,
}

impl Snippet {
    /// The snippet of `text` for `query`: the whole text if it is short, else
    /// [`SNIPPET_CHARS`] characters starting a little before the first match (at a word
    /// boundary), with each prefix of a word that one of the query's words matches
    /// highlighted.
    pub fn of(text: &str, query: &SearchQuery) -> Self {
        let chars: Vec<char> = text
            .chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .collect();
        let matches: Vec<Highlight> = words(&chars)
            .into_iter()
            .filter_map(|(start, end)| matched(&chars[start..end], query).map(|n| (start, n)))
            .map(|(start, n)| Highlight {
                start,
                end: start + n,
            })
            .collect();
        let first = matches.first().map_or(0, |m| m.start);
        let (mut begin, mut end) = (0, chars.len());
        if chars.len() > SNIPPET_CHARS {
            begin = first.saturating_sub(CONTEXT_BEFORE);
            // Start at a word's beginning, not inside one.
            while begin > 0 && begin < first && !chars[begin - 1].is_whitespace() {
                begin += 1;
            }
            end = (begin + SNIPPET_CHARS).min(chars.len());
            // End after a whole word when there is a space to end at.
            if end < chars.len() {
                let floor = matches.first().map_or(begin, |m| m.end);
                let mut cut = end;
                while cut > floor && !chars[cut].is_whitespace() {
                    cut -= 1;
                }
                if cut > floor {
                    end = cut;
                }
            }
        }
        let lead = usize::from(begin > 0);
        let mut snippet = String::new();
        if begin > 0 {
            snippet.push('…');
        }
        snippet.extend(&chars[begin..end]);
        if end < chars.len() {
            snippet.push('…');
        }
        let highlights = matches
            .into_iter()
            .filter(|m| m.start >= begin && m.end <= end)
            .map(|m| Highlight {
                start: m.start - begin + lead,
                end: m.end - begin + lead,
            })
            .collect();
        Self {
            text: snippet,
            highlights,
        }
    }
}

/// How many leading characters of `word` the longest matching query word covers, if
/// one matches (folded, as a prefix).
fn matched(word: &[char], query: &SearchQuery) -> Option<usize> {
    let mut folded = String::new();
    let mut ends = Vec::with_capacity(word.len());
    for c in word {
        fold_into(*c, &mut folded);
        ends.push(folded.len());
    }
    query
        .words()
        .iter()
        .filter(|w| folded.starts_with(w.as_str()))
        .filter_map(|w| ends.iter().position(|&end| end >= w.len()).map(|i| i + 1))
        .max()
}

/// A message or chat title as storage found it for a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHit {
    /// The chat of the hit.
    pub chat_id: ChatId,
    /// The chat's title.
    pub chat_title: ChatTitle,
    /// The message found; `None` when the chat's title matched.
    pub message_id: Option<MessageId>,
    /// Who wrote the message; `None` for a title.
    pub role: Option<Role>,
    /// When the message (or the chat) was created.
    pub created_at: DateTime<Utc>,
    /// The text that matched: the message's, or the title.
    pub text: String,
}

impl StoredHit {
    /// This hit's position in a newest-first list of hits: its time and the message's
    /// id (the chat's for a title).
    pub fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.created_at,
            id: self
                .message_id
                .map_or(self.chat_id.as_uuid(), |id| id.as_uuid()),
        }
    }
}

/// A search result: where it is, and its snippet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// What storage found.
    pub found: StoredHit,
    /// The matching piece of its text.
    pub snippet: Snippet,
}

impl SearchHit {
    /// The hit for `found`, with its snippet for `query`.
    pub fn new(found: StoredHit, query: &SearchQuery) -> Self {
        let snippet = Snippet::of(&found.text, query);
        Self { found, snippet }
    }

    /// See [`StoredHit::cursor`].
    pub fn cursor(&self) -> Cursor {
        self.found.cursor()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> SearchQuery {
        SearchQuery::parse(text).unwrap()
    }

    fn highlighted(snippet: &Snippet) -> Vec<String> {
        let chars: Vec<char> = snippet.text.chars().collect();
        snippet
            .highlights
            .iter()
            .map(|h| chars[h.start..h.end].iter().collect())
            .collect()
    }

    #[test]
    fn the_fold_table_pairs_each_accented_letter_with_one_plain_letter() {
        assert_eq!(FOLD_FROM.chars().count(), FOLD_TO.chars().count());
        assert!(FOLD_TO.chars().all(|c| c.is_ascii_lowercase()));
    }

    #[test]
    fn folding_drops_accents_and_case() {
        assert_eq!(fold("Crème BRÛLÉE à Łódź"), "creme brulee a lodz");
    }

    #[test]
    fn a_query_is_its_folded_words_and_punctuation_only_separates_them() {
        assert_eq!(
            query("  Café & \"brûlée\" | !x:* (OR) 'a'  café").words(),
            ["cafe", "brulee", "x", "or", "a"]
        );
    }

    #[test]
    fn a_query_of_punctuation_only_has_no_words_but_is_not_an_error() {
        assert!(query("&|!:*()'\"").is_empty());
    }

    #[test]
    fn a_blank_or_too_long_query_is_refused() {
        assert_eq!(
            SearchQuery::parse(" \t").unwrap_err(),
            ValidationError::new(Field::Query, Problem::Blank)
        );
        assert!(SearchQuery::parse(&"a".repeat(QUERY_MAX_CHARS)).is_ok());
        assert_eq!(
            SearchQuery::parse(&"a".repeat(QUERY_MAX_CHARS + 1))
                .unwrap_err()
                .problem,
            Problem::TooManyChars { max: 200 }
        );
        assert_eq!(
            SearchQuery::parse("a\0").unwrap_err().problem,
            Problem::ContainsNul
        );
    }

    #[test]
    fn every_word_starting_with_a_query_word_is_highlighted_whatever_its_case_and_accents() {
        let snippet = Snippet::of("Le CAFÉ, les cafés et un cafetier.", &query("cafe"));
        assert_eq!(snippet.text, "Le CAFÉ, les cafés et un cafetier.");
        assert_eq!(highlighted(&snippet), ["CAFÉ", "café", "cafe"]);
        assert_eq!(snippet.highlights[0], Highlight { start: 3, end: 7 });
    }

    #[test]
    fn highlights_count_characters_not_bytes() {
        let snippet = Snippet::of("ééé 😀 brûlée", &query("brul"));
        assert_eq!(snippet.highlights, [Highlight { start: 6, end: 10 }]);
        assert_eq!(highlighted(&snippet), ["brûl"]);
    }

    #[test]
    fn a_word_only_inside_another_is_not_a_match() {
        assert!(
            Snippet::of("decaf coffee", &query("caf"))
                .highlights
                .is_empty()
        );
    }

    #[test]
    fn a_long_text_is_cut_around_its_first_match_at_word_boundaries() {
        let text = format!(
            "{} needle here {}",
            "lorem ipsum ".repeat(30),
            "dolor sit ".repeat(30)
        );
        let snippet = Snippet::of(&text, &query("needle"));
        assert!(snippet.text.starts_with('…') && snippet.text.ends_with('…'));
        assert!(snippet.text.chars().count() <= SNIPPET_CHARS + 2);
        assert_eq!(highlighted(&snippet), ["needle"]);
        let inner: String = snippet.text.chars().skip(1).collect();
        assert!(
            inner.starts_with("lorem") || inner.starts_with("ipsum"),
            "{inner}"
        );
    }

    #[test]
    fn line_breaks_read_as_spaces() {
        let snippet = Snippet::of("one\ntwo", &query("two"));
        assert_eq!(snippet.text, "one two");
        assert_eq!(highlighted(&snippet), ["two"]);
    }
}
