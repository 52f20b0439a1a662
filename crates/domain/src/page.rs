use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{ValidationError, ValidationKind};

/// Most items one page of a list may hold.
pub const MAX_PAGE_SIZE: u32 = 1_000;
/// Chats per page when the client does not say: more than a sidebar shows.
pub const DEFAULT_CHATS_PAGE: u32 = 200;
/// Messages per page when the client does not say: a whole long conversation.
pub const DEFAULT_MESSAGES_PAGE: u32 = 1_000;

/// A position in a list ordered by `(created_at, id)`: the next page starts after it.
///
/// On the wire it is opaque text (`<microseconds since the epoch>_<uuid>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The last item's creation time.
    pub created_at: DateTime<Utc>,
    /// The last item's id.
    pub id: Uuid,
}

impl Cursor {
    /// Parses the wire form, exactly as [`Cursor`]'s `Display` writes it (digits, `_`,
    /// a hyphenated UUID); `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('_')?;
        let digits_only =
            !micros.is_empty() && micros.len() <= 16 && micros.bytes().all(|b| b.is_ascii_digit());
        if !digits_only || id.len() != 36 {
            return None;
        }
        Some(Self {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.created_at.timestamp_micros(), self.id)
    }
}

/// Which page of a list to read: at most `limit` items, after `after` (from the start
/// when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Most items to return, 1 to [`MAX_PAGE_SIZE`].
    pub limit: u32,
    /// Where the previous page ended.
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// Reads the `limit` and `cursor` query parameters; a missing limit is `default`.
    pub fn parse(
        limit: Option<&str>,
        cursor: Option<&str>,
        default: u32,
    ) -> Result<Self, ValidationError> {
        let limit = match limit {
            None => default,
            Some(text) => match text
                .parse::<u32>()
                .ok()
                .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
            {
                Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                _ => {
                    return Err(ValidationError::new(
                        "limit",
                        ValidationKind::Invalid,
                        format!("Input should be a whole number from 1 to {MAX_PAGE_SIZE}"),
                    )
                    .in_query());
                }
            },
        };
        let after = match cursor {
            None => None,
            Some(text) => Some(Cursor::parse(text).ok_or_else(|| {
                ValidationError::new(
                    "cursor",
                    ValidationKind::Invalid,
                    "Input should be a cursor from X-Next-Cursor",
                )
                .in_query()
            })?),
        };
        Ok(Self { limit, after })
    }
}

/// One page of a list, and where the next one starts if there is more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// The page made of `fetched`, which holds up to `limit + 1` items (one more than
    /// asked, to know whether another page follows); `position` gives an item's cursor.
    pub fn from_overfetch(
        mut fetched: Vec<T>,
        limit: u32,
        position: impl Fn(&T) -> Cursor,
    ) -> Self {
        let more = fetched.len() > limit as usize;
        fetched.truncate(limit as usize);
        let next = if more {
            fetched.last().map(position)
        } else {
            None
        };
        Self {
            items: fetched,
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Location;

    #[test]
    fn a_cursor_round_trips_through_its_text() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_795_685_415_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::parse(&cursor.to_string()), Some(cursor));
    }

    #[test]
    fn text_that_is_not_a_cursor_is_refused() {
        for text in [
            "",
            "abc",
            "12_",
            "_0194f4c2-0000-7000-8000-000000000000",
            "x_0194f4c2-0000-7000-8000-000000000000",
            "99999999999999999999_0194f4c2-0000-7000-8000-000000000000",
        ] {
            assert_eq!(Cursor::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn without_parameters_a_page_is_the_default_size_from_the_start() {
        assert_eq!(
            PageRequest::parse(None, None, 200),
            Ok(PageRequest {
                limit: 200,
                after: None
            })
        );
    }

    #[test]
    fn a_limit_must_be_between_one_and_the_maximum() {
        assert_eq!(
            PageRequest::parse(Some("1000"), None, 5).unwrap().limit,
            1000
        );
        for bad in ["0", "1001", "-1", "+5", " 5", "ten", "", "1.5"] {
            let error = PageRequest::parse(Some(bad), None, 5).unwrap_err();
            assert_eq!(
                (error.field, error.location),
                ("limit", Location::Query),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_malformed_cursor_is_refused_in_the_query() {
        let error = PageRequest::parse(None, Some("nope"), 5).unwrap_err();
        assert_eq!((error.field, error.location), ("cursor", Location::Query));
    }

    #[test]
    fn an_overfetched_page_says_where_the_next_one_starts() {
        let at = |n: i64| Cursor {
            created_at: DateTime::from_timestamp_micros(n).unwrap(),
            id: Uuid::nil(),
        };
        let page = Page::from_overfetch(vec![1, 2, 3], 2, |n| at(*n));
        assert_eq!((page.items, page.next), (vec![1, 2], Some(at(2))));
        let last = Page::from_overfetch(vec![1, 2], 2, |n| at(*n));
        assert_eq!((last.items, last.next), (vec![1, 2], None));
    }
}
