use chrono::{DateTime, Utc};
use thiserror::Error;
use uuid::Uuid;

/// Most items one page of a list may hold.
pub const MAX_PAGE_SIZE: u32 = 1_000;
/// Chats per page when the client does not say: more than a sidebar shows.
pub const DEFAULT_CHATS_PAGE: u32 = 200;
/// Messages per page when the client does not say: a whole long conversation.
pub const DEFAULT_MESSAGES_PAGE: u32 = 1_000;

/// A position in a list ordered by `(created_at, id)`: the next page starts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The last item's creation time.
    pub created_at: DateTime<Utc>,
    /// The last item's id.
    pub id: Uuid,
}

/// Which page of a list to read: at most `limit` items, after `after` (from the start
/// when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    limit: u32,
    after: Option<Cursor>,
}

/// A page size outside 1 to [`MAX_PAGE_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("a page holds from 1 to {MAX_PAGE_SIZE} items, not {0}")]
pub struct PageSizeOutOfRange(pub u32);

impl PageRequest {
    /// At most `limit` items (1 to [`MAX_PAGE_SIZE`]) after `after`.
    pub fn new(limit: u32, after: Option<Cursor>) -> Result<Self, PageSizeOutOfRange> {
        if (1..=MAX_PAGE_SIZE).contains(&limit) {
            Ok(Self { limit, after })
        } else {
            Err(PageSizeOutOfRange(limit))
        }
    }

    /// The same page size, after `cursor`.
    pub fn starting_after(self, cursor: Cursor) -> Self {
        Self {
            after: Some(cursor),
            ..self
        }
    }

    /// Most items to return, 1 to [`MAX_PAGE_SIZE`].
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Where the previous page ended.
    pub fn after(&self) -> Option<Cursor> {
        self.after
    }
}

/// One page of a list, and where the next one starts if there is more (a [`Cursor`],
/// or the list's own kind of position `C`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, C = Cursor> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// The page made of `fetched`, which holds up to `limit + 1` items (one more than
    /// asked, to know whether another page follows); `position` gives an item's cursor.
    pub fn from_overfetch(mut fetched: Vec<T>, limit: u32, position: impl Fn(&T) -> C) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = fetched.len() > limit;
        fetched.truncate(limit);
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

    #[test]
    fn a_page_holds_from_one_to_the_maximum() {
        assert_eq!(PageRequest::new(1, None).unwrap().limit(), 1);
        assert_eq!(
            PageRequest::new(MAX_PAGE_SIZE, None).unwrap().limit(),
            MAX_PAGE_SIZE
        );
        assert_eq!(PageRequest::new(0, None), Err(PageSizeOutOfRange(0)));
        assert_eq!(
            PageRequest::new(MAX_PAGE_SIZE + 1, None),
            Err(PageSizeOutOfRange(MAX_PAGE_SIZE + 1))
        );
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
