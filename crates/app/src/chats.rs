use memlayer_domain::{
    Chat, ChatId, ChatTitle, DEFAULT_CHATS_PAGE, Page, PageRequest, UserId, authorize_chat_access,
};

use crate::{AppError, MemLayer};

impl MemLayer {
    /// Creates a chat for `user`; a missing, null or blank title gets the default one.
    pub fn create_chat(&self, user: UserId, title: Option<&str>) -> Result<Chat, AppError> {
        let now = self.ports.clock.now();
        let title = ChatTitle::for_new_chat(title, now)?;
        self.ensure_user_exists(user)?;
        let chat = Chat {
            id: ChatId::generate(),
            owner: user,
            title,
            created_at: now,
        };
        self.ports.chats.create(&chat)?;
        Ok(chat)
    }

    /// A page of the user's chats, newest first. `limit` and `cursor` are the query
    /// parameters as given (a missing limit is [`DEFAULT_CHATS_PAGE`]).
    pub fn list_chats(
        &self,
        user: UserId,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Page<Chat>, AppError> {
        let page = PageRequest::parse(limit, cursor, DEFAULT_CHATS_PAGE)?;
        let chats = self
            .ports
            .chats
            .list_for_owner(user, page.after, page.limit + 1)?;
        if chats.is_empty() {
            // No chats may also mean no account: a deleted user's token is refused.
            self.ensure_user_exists(user)?;
        }
        Ok(Page::from_overfetch(chats, page.limit, Chat::cursor))
    }

    /// One of the user's chats.
    pub fn get_chat(&self, user: UserId, chat: ChatId) -> Result<Chat, AppError> {
        self.owned_chat(user, chat)
    }

    /// Renames one of the user's chats.
    pub fn rename_chat(&self, user: UserId, chat: ChatId, title: &str) -> Result<Chat, AppError> {
        let title = ChatTitle::parse(title)?;
        let mut chat = self.owned_chat(user, chat)?;
        if !self.ports.chats.rename(chat.id, &title)? {
            return Err(AppError::ChatNotFound);
        }
        chat.title = title;
        Ok(chat)
    }

    /// Deletes one of the user's chats with all its messages.
    pub fn delete_chat(&self, user: UserId, chat: ChatId) -> Result<(), AppError> {
        let chat = self.owned_chat(user, chat)?;
        if self.ports.chats.delete(chat.id)? {
            Ok(())
        } else {
            Err(AppError::ChatNotFound)
        }
    }

    /// The chat, if `user` may use it: missing is [`AppError::ChatNotFound`], someone
    /// else's is [`AppError::NotChatOwner`]. A chat the user owns proves the account
    /// exists (deleting a user deletes their chats); only when access is refused is the
    /// account looked up, so that a deleted user's token gets 401, not 404 or 403.
    pub(crate) fn owned_chat(&self, user: UserId, chat: ChatId) -> Result<Chat, AppError> {
        let found = self.ports.chats.find(chat)?;
        authorize_chat_access(found, user).or_else(|refusal| {
            self.ensure_user_exists(user)?;
            Err(refusal.into())
        })
    }
}

#[cfg(test)]
mod tests {
    use memlayer_domain::ValidationKind;
    use memlayer_ports::RepositoryError;
    use mockall::predicate::eq;

    use super::*;
    use crate::testing::{Fixture, NOW, chat_owned_by};

    #[test]
    fn creating_a_chat_without_a_title_names_it_after_the_current_minute() {
        let mut fx = Fixture::new();
        let user = UserId::generate();
        fx.users
            .expect_exists()
            .with(eq(user))
            .returning(|_| Ok(true));
        fx.chats
            .expect_create()
            .withf(move |chat| {
                chat.owner == user
                    && chat.title.as_str() == "Chat 2026-11-26 09:30"
                    && chat.created_at == NOW
            })
            .times(1)
            .returning(|_| Ok(()));

        let chat = fx.app().create_chat(user, None).unwrap();

        assert_eq!(chat.title.as_str(), "Chat 2026-11-26 09:30");
    }

    #[test]
    fn creating_a_chat_keeps_the_given_title() {
        let mut fx = Fixture::new();
        fx.users.expect_exists().returning(|_| Ok(true));
        fx.chats.expect_create().returning(|_| Ok(()));

        let chat = fx
            .app()
            .create_chat(UserId::generate(), Some("Plans"))
            .unwrap();

        assert_eq!(chat.title.as_str(), "Plans");
    }

    #[test]
    fn creating_a_chat_with_a_too_long_title_is_invalid_and_stores_nothing() {
        let fx = Fixture::new();

        let error = fx
            .app()
            .create_chat(UserId::generate(), Some(&"x".repeat(201)))
            .unwrap_err();

        let AppError::Invalid(errors) = error else {
            panic!("{error:?}")
        };
        assert_eq!(errors.0[0].kind, ValidationKind::TooLong);
    }

    #[test]
    fn creating_a_chat_for_a_deleted_account_is_unauthenticated() {
        let mut fx = Fixture::new();
        fx.users.expect_exists().returning(|_| Ok(false));

        let error = fx.app().create_chat(UserId::generate(), None).unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn listing_chats_returns_the_owners_chats_as_one_page() {
        let mut fx = Fixture::new();
        let user = UserId::generate();
        let chats = vec![chat_owned_by(user), chat_owned_by(user)];
        let expected = chats.clone();
        fx.chats
            .expect_list_for_owner()
            .with(eq(user), eq(None), eq(DEFAULT_CHATS_PAGE + 1))
            .returning(move |_, _, _| Ok(chats.clone()));

        let page = fx.app().list_chats(user, None, None).unwrap();

        assert_eq!((page.items, page.next), (expected, None));
    }

    #[test]
    fn a_full_page_of_chats_says_where_the_next_starts() {
        let mut fx = Fixture::new();
        let user = UserId::generate();
        let chats = vec![
            chat_owned_by(user),
            chat_owned_by(user),
            chat_owned_by(user),
        ];
        let second = chats[1].clone();
        let after = chats[0].cursor();
        fx.chats
            .expect_list_for_owner()
            .with(eq(user), eq(Some(after)), eq(3))
            .returning(move |_, _, _| Ok(chats.clone()));

        let page = fx
            .app()
            .list_chats(user, Some("2"), Some(&after.to_string()))
            .unwrap();

        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next, Some(second.cursor()));
    }

    #[test]
    fn listing_chats_with_a_bad_limit_is_invalid_before_anything_is_read() {
        let error = Fixture::new()
            .app()
            .list_chats(UserId::generate(), Some("0"), None)
            .unwrap_err();

        let AppError::Invalid(errors) = error else {
            panic!("{error:?}")
        };
        assert_eq!(errors.0[0].field, "limit");
    }

    #[test]
    fn listing_no_chats_checks_that_the_account_still_exists() {
        let mut fx = Fixture::new();
        fx.chats
            .expect_list_for_owner()
            .returning(|_, _, _| Ok(vec![]));
        fx.users.expect_exists().returning(|_| Ok(false));

        let error = fx
            .app()
            .list_chats(UserId::generate(), None, None)
            .unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn getting_ones_own_chat_needs_no_account_lookup() {
        let mut fx = Fixture::new();
        let user = UserId::generate();
        let chat = chat_owned_by(user);
        let expected = chat.clone();
        fx.chats
            .expect_find()
            .with(eq(chat.id))
            .returning(move |_| Ok(Some(chat.clone())));

        assert_eq!(fx.app().get_chat(user, expected.id).unwrap(), expected);
    }

    #[test]
    fn getting_another_users_chat_is_forbidden() {
        let mut fx = Fixture::new();
        let chat = chat_owned_by(UserId::generate());
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some(chat.clone())));
        fx.users.expect_exists().returning(|_| Ok(true));

        let error = fx.app().get_chat(UserId::generate(), id).unwrap_err();

        assert!(matches!(error, AppError::NotChatOwner), "{error:?}");
    }

    #[test]
    fn getting_a_missing_chat_is_not_found() {
        let mut fx = Fixture::new();
        fx.chats.expect_find().returning(|_| Ok(None));
        fx.users.expect_exists().returning(|_| Ok(true));

        let error = fx
            .app()
            .get_chat(UserId::generate(), ChatId::generate())
            .unwrap_err();

        assert!(matches!(error, AppError::ChatNotFound), "{error:?}");
    }

    #[test]
    fn a_deleted_account_gets_unauthenticated_rather_than_not_found() {
        let mut fx = Fixture::new();
        fx.chats.expect_find().returning(|_| Ok(None));
        fx.users.expect_exists().returning(|_| Ok(false));

        let error = fx
            .app()
            .get_chat(UserId::generate(), ChatId::generate())
            .unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn a_storage_outage_while_getting_a_chat_is_unavailable() {
        let mut fx = Fixture::new();
        fx.chats
            .expect_find()
            .returning(|_| Err(RepositoryError::Unavailable("down".into())));

        let error = fx
            .app()
            .get_chat(UserId::generate(), ChatId::generate())
            .unwrap_err();

        assert!(matches!(error, AppError::Unavailable(_)), "{error:?}");
    }

    #[test]
    fn renaming_ones_chat_stores_and_returns_the_trimmed_title() {
        let mut fx = Fixture::new();
        let user = UserId::generate();
        let chat = chat_owned_by(user);
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some(chat.clone())));
        fx.chats
            .expect_rename()
            .withf(move |chat, title| *chat == id && title.as_str() == "New name")
            .times(1)
            .returning(|_, _| Ok(true));

        let renamed = fx.app().rename_chat(user, id, " New name ").unwrap();

        assert_eq!((renamed.id, renamed.title.as_str()), (id, "New name"));
    }

    #[test]
    fn renaming_to_a_blank_title_is_invalid_before_anything_is_read() {
        let fx = Fixture::new();

        let error = fx
            .app()
            .rename_chat(UserId::generate(), ChatId::generate(), "  ")
            .unwrap_err();

        assert!(matches!(error, AppError::Invalid(_)), "{error:?}");
    }

    #[test]
    fn renaming_another_users_chat_is_forbidden_and_changes_nothing() {
        let mut fx = Fixture::new();
        let chat = chat_owned_by(UserId::generate());
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some(chat.clone())));
        fx.users.expect_exists().returning(|_| Ok(true));
        fx.chats.expect_rename().never();

        let error = fx
            .app()
            .rename_chat(UserId::generate(), id, "Mine now")
            .unwrap_err();

        assert!(matches!(error, AppError::NotChatOwner), "{error:?}");
    }

    #[test]
    fn renaming_a_chat_deleted_meanwhile_is_not_found() {
        let mut fx = Fixture::new();
        let user = UserId::generate();
        let chat = chat_owned_by(user);
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some(chat.clone())));
        fx.chats.expect_rename().returning(|_, _| Ok(false));

        let error = fx.app().rename_chat(user, id, "New").unwrap_err();

        assert!(matches!(error, AppError::ChatNotFound), "{error:?}");
    }

    #[test]
    fn deleting_ones_chat_deletes_it() {
        let mut fx = Fixture::new();
        let user = UserId::generate();
        let chat = chat_owned_by(user);
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some(chat.clone())));
        fx.chats
            .expect_delete()
            .with(eq(id))
            .times(1)
            .returning(|_| Ok(true));

        assert!(fx.app().delete_chat(user, id).is_ok());
    }

    #[test]
    fn deleting_another_users_chat_is_forbidden_and_deletes_nothing() {
        let mut fx = Fixture::new();
        let chat = chat_owned_by(UserId::generate());
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some(chat.clone())));
        fx.users.expect_exists().returning(|_| Ok(true));
        fx.chats.expect_delete().never();

        let error = fx.app().delete_chat(UserId::generate(), id).unwrap_err();

        assert!(matches!(error, AppError::NotChatOwner), "{error:?}");
    }

    #[test]
    fn deleting_a_chat_deleted_meanwhile_is_not_found() {
        let mut fx = Fixture::new();
        let user = UserId::generate();
        let chat = chat_owned_by(user);
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some(chat.clone())));
        fx.chats.expect_delete().returning(|_| Ok(false));

        let error = fx.app().delete_chat(user, id).unwrap_err();

        assert!(matches!(error, AppError::ChatNotFound), "{error:?}");
    }
}
