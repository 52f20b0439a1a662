//! Searching the user's messages and chat titles.

use memlayer_domain::{Page, PageRequest, SearchHit, SearchOrder, SearchQuery, Session};

use crate::{AppError, MemLayer};

impl MemLayer {
    /// The user's messages and chat titles that hold every word of `query`, each with
    /// its snippet. Newest first, a page of `page` (the next page after its cursor); or
    /// best match first, one page of `page.limit()` (no next page; `page`'s cursor is
    /// not used).
    pub fn search(
        &self,
        session: Session,
        query: &SearchQuery,
        order: SearchOrder,
        page: PageRequest,
    ) -> Result<Page<SearchHit>, AppError> {
        let limit = page.limit();
        let (after, asked) = match order {
            SearchOrder::Newest => (page.after(), limit.saturating_add(1)),
            SearchOrder::Relevance => (None, limit),
        };
        let found = self
            .ports
            .search
            .search(session, query, order, after, asked)?;
        if found.is_empty() {
            // Nothing found may also mean no account, or revoked tokens: those get 401.
            self.ensure_current(session)?;
        }
        let hits = found
            .into_iter()
            .map(|hit| SearchHit::new(hit, query))
            .collect();
        Ok(match order {
            SearchOrder::Newest => Page::from_overfetch(hits, limit, SearchHit::cursor),
            SearchOrder::Relevance => Page {
                items: hits,
                next: None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use memlayer_domain::{ChatId, ChatTitle, MessageId, Role, StoredHit};
    use mockall::predicate::{always, eq};

    use super::*;
    use crate::testing::{Fixture, NOW, any_session, first_page};

    fn stored(text: &str) -> StoredHit {
        StoredHit {
            chat_id: ChatId::generate(),
            chat_title: ChatTitle::from_trusted("Trip".into()),
            message_id: Some(MessageId::generate()),
            role: Some(Role::User),
            created_at: NOW,
            text: text.into(),
        }
    }

    fn query(text: &str) -> SearchQuery {
        SearchQuery::parse(text).unwrap()
    }

    #[test]
    fn newest_first_asks_one_more_than_a_page_and_gives_each_hit_its_snippet() {
        let mut fx = Fixture::new();
        let session = any_session();
        let found = vec![stored("Lisbon trip"), stored("a LISBOA map"), stored("x")];
        let second = found[1].clone();
        fx.search
            .expect_search()
            .with(
                eq(session),
                always(),
                eq(SearchOrder::Newest),
                eq(None),
                eq(3),
            )
            .returning(move |_, _, _, _, _| Ok(found.clone()));

        let page = fx
            .app()
            .search(session, &query("lisb"), SearchOrder::Newest, first_page(2))
            .unwrap();

        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[1].snippet.text, "a LISBOA map");
        assert_eq!(page.items[1].snippet.highlights.len(), 1);
        assert_eq!(page.next, Some(second.cursor()));
    }

    #[test]
    fn best_first_is_one_page_without_a_cursor() {
        let mut fx = Fixture::new();
        let session = any_session();
        let found = vec![stored("Lisbon"), stored("Lisbon again")];
        fx.search
            .expect_search()
            .with(
                eq(session),
                always(),
                eq(SearchOrder::Relevance),
                eq(None),
                eq(2),
            )
            .returning(move |_, _, _, _, _| Ok(found.clone()));

        let page = fx
            .app()
            .search(
                session,
                &query("lisbon"),
                SearchOrder::Relevance,
                first_page(2),
            )
            .unwrap();

        assert_eq!((page.items.len(), page.next), (2, None));
    }

    #[test]
    fn finding_nothing_checks_that_the_account_still_exists() {
        let mut fx = Fixture::new();
        fx.search
            .expect_search()
            .returning(|_, _, _, _, _| Ok(vec![]));
        fx.users.expect_is_current().returning(|_| Ok(false));

        let error = fx
            .app()
            .search(
                any_session(),
                &query("x"),
                SearchOrder::Newest,
                first_page(5),
            )
            .unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }
}
