//! Taking your data with you: everything held about an account, read page by page so
//! that an account of any size is exported in bounded memory. The HTTP layer drives the
//! pages and streams each one out before asking for the next.

use memlayer_domain::{Chat, Cursor, Message, Session, User};

use crate::{AppError, MemLayer};

/// Chats read per page of an export.
pub const EXPORT_CHATS_PAGE: u32 = 100;
/// Messages read per page of an export.
pub const EXPORT_MESSAGES_PAGE: u32 = 1_000;

impl MemLayer {
    /// The account being exported, if `session` is current (the first step of an export).
    pub fn export_account(&self, session: Session) -> Result<User, AppError> {
        self.current_account(session)
    }

    /// The next page of the user's chats (newest first, at most [`EXPORT_CHATS_PAGE`]),
    /// after `after`; short or empty when there are no more. A session that stopped
    /// being current during the export (the account was deleted or its tokens revoked)
    /// reads no chats, so a short page is the end only if the session is still current:
    /// otherwise [`AppError::Unauthenticated`], and the export breaks off rather than
    /// end as if it were whole.
    pub fn export_chats(
        &self,
        session: Session,
        after: Option<Cursor>,
    ) -> Result<Vec<Chat>, AppError> {
        let page = self
            .ports
            .chats
            .list_for_owner(session, after, EXPORT_CHATS_PAGE)?;
        if u32::try_from(page.len()).is_ok_and(|n| n < EXPORT_CHATS_PAGE) {
            self.current_account(session)?;
        }
        Ok(page)
    }

    /// The next page of one of the user's chats' messages, oldest first (at most
    /// [`EXPORT_MESSAGES_PAGE`]), after `after`; empty when there are no more. `chat`
    /// must be one [`MemLayer::export_chats`] gave for this session.
    pub fn export_messages(
        &self,
        session: Session,
        chat: &Chat,
        after: Option<Cursor>,
    ) -> Result<Vec<Message>, AppError> {
        if chat.owner != session.user {
            return Err(AppError::NotChatOwner);
        }
        Ok(self
            .ports
            .messages
            .list_oldest_first(None, chat.id, after, EXPORT_MESSAGES_PAGE)?)
    }
}

#[cfg(test)]
mod tests {
    use memlayer_domain::UserId;
    use memlayer_ports::RepositoryError;
    use mockall::predicate::eq;

    use super::*;
    use crate::testing::{Fixture, chat_owned_by, session_of, user_with_email};

    #[test]
    fn an_export_starts_with_the_account_of_a_current_session() {
        let mut fx = Fixture::new();
        let user = user_with_email("ada@example.com");
        let expected = user.clone();
        fx.users
            .expect_find_by_id()
            .with(eq(user.id))
            .returning(move |_| Ok(Some(user.clone())));

        let account = fx.app().export_account(session_of(&expected)).unwrap();

        assert_eq!(account, expected);
    }

    #[test]
    fn a_revoked_session_cannot_export() {
        let mut fx = Fixture::new();
        let mut user = user_with_email("ada@example.com");
        let stale = session_of(&user);
        user.token_generation += 1;
        fx.users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(user.clone())));

        let error = fx.app().export_account(stale).unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn chats_are_exported_in_pages_for_the_session() {
        let mut fx = Fixture::new();
        let session = Session::new(UserId::generate(), 3);
        let chat = chat_owned_by(session.user);
        let cursor = chat.cursor();
        let returned = chat.clone();
        fx.chats
            .expect_list_for_owner()
            .with(eq(session), eq(Some(cursor)), eq(EXPORT_CHATS_PAGE))
            .returning(move |_, _, _| Ok(vec![returned.clone()]));

        let mut user = user_with_email("ada@example.com");
        user.id = session.user;
        user.token_generation = 3;
        fx.users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(user.clone())));

        let page = fx.app().export_chats(session, Some(cursor)).unwrap();

        assert_eq!(page, vec![chat]);
    }

    #[test]
    fn an_export_whose_tokens_are_revoked_midway_breaks_off_instead_of_ending() {
        let mut fx = Fixture::new();
        let mut user = user_with_email("ada@example.com");
        let stale = session_of(&user);
        user.token_generation += 1;
        fx.chats
            .expect_list_for_owner()
            .returning(|_, _, _| Ok(vec![]));
        fx.users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(user.clone())));

        let error = fx.app().export_chats(stale, None).unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn messages_are_exported_oldest_first_in_pages() {
        let mut fx = Fixture::new();
        let session = Session::new(UserId::generate(), 0);
        let chat = chat_owned_by(session.user);
        fx.messages
            .expect_list_oldest_first()
            .with(eq(None), eq(chat.id), eq(None), eq(EXPORT_MESSAGES_PAGE))
            .returning(|_, _, _, _| Ok(vec![]));

        assert!(
            fx.app()
                .export_messages(session, &chat, None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn another_users_chat_is_never_exported() {
        let fx = Fixture::new();
        let chat = chat_owned_by(UserId::generate());

        let error = fx
            .app()
            .export_messages(Session::new(UserId::generate(), 0), &chat, None)
            .unwrap_err();

        assert!(matches!(error, AppError::NotChatOwner), "{error:?}");
    }

    #[test]
    fn a_storage_failure_mid_export_is_reported() {
        let mut fx = Fixture::new();
        fx.chats
            .expect_list_for_owner()
            .returning(|_, _, _| Err(RepositoryError::Unavailable("down".into())));

        let error = fx
            .app()
            .export_chats(Session::new(UserId::generate(), 0), None)
            .unwrap_err();

        assert!(matches!(error, AppError::Unavailable(_)), "{error:?}");
    }
}
