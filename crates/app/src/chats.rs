use memlayer_domain::{
    Chat, ChatCursor, ChatFilter, ChatId, ChatTitle, ChatUpdate, Page, Session,
    authorize_chat_access,
};
use memlayer_ports::UpdateChatError;

use crate::{AppError, MemLayer};

impl MemLayer {
    /// Creates a chat for the session's user; without a title it gets
    /// [`ChatTitle::default_at`] now.
    pub fn create_chat(
        &self,
        session: Session,
        title: Option<ChatTitle>,
    ) -> Result<Chat, AppError> {
        let now = self.ports.clock.now();
        let title = title.unwrap_or_else(|| ChatTitle::default_at(now));
        let chat = Chat {
            id: ChatId::generate(),
            owner: session.user,
            title,
            created_at: now,
            active_message_id: None,
            organisation: Default::default(),
        };
        // Stored only while the session is current: no account, or revoked tokens, get
        // 401 and nothing is stored.
        if self.ports.chats.create(&chat, session.generation)? {
            Ok(chat)
        } else {
            Err(AppError::Unauthenticated)
        }
    }

    /// A page of at most `limit` of the user's chats that `filter` keeps: pinned first,
    /// then the rest, each group newest first, after `after`.
    pub fn list_organised_chats(
        &self,
        session: Session,
        filter: ChatFilter,
        limit: u32,
        after: Option<ChatCursor>,
    ) -> Result<Page<Chat, ChatCursor>, AppError> {
        let chats =
            self.ports
                .chats
                .list_organised(session, filter, after, limit.saturating_add(1))?;
        if chats.is_empty() {
            // No chats may also mean no account, or revoked tokens: those get 401.
            self.ensure_current(session)?;
        }
        Ok(Page::from_overfetch(chats, limit, Chat::organised_cursor))
    }

    /// Changes one of the user's chats: its title, pinned, archived, its folder (which
    /// must be the user's: else [`AppError::FolderNotUsable`], and nothing changes).
    pub fn update_chat(
        &self,
        session: Session,
        chat: ChatId,
        change: ChatUpdate,
    ) -> Result<Chat, AppError> {
        let chat = self.owned_chat(session, chat)?;
        if let Some(Some(folder)) = change.folder {
            match self.ports.folders.find(folder)? {
                Some(found) if found.owner == session.user => {}
                _ => return Err(AppError::FolderNotUsable),
            }
        }
        if change.is_empty() {
            return Ok(chat);
        }
        match self.ports.chats.update(chat.id, &change) {
            Ok(true) => Ok(change.applied_to(chat)),
            Ok(false) => Err(AppError::ChatNotFound),
            Err(UpdateChatError::FolderGone) => Err(AppError::FolderNotUsable),
            Err(UpdateChatError::Repository(error)) => Err(error.into()),
        }
    }

    /// One of the user's chats.
    pub fn get_chat(&self, session: Session, chat: ChatId) -> Result<Chat, AppError> {
        self.owned_chat(session, chat)
    }

    /// Deletes one of the user's chats with all its messages.
    pub fn delete_chat(&self, session: Session, chat: ChatId) -> Result<(), AppError> {
        let chat = self.owned_chat(session, chat)?;
        if self.ports.chats.delete(chat.id)? {
            Ok(())
        } else {
            Err(AppError::ChatNotFound)
        }
    }

    /// The chat, if the session's user may use it: missing is
    /// [`AppError::ChatNotFound`], someone else's is [`AppError::NotChatOwner`]. The
    /// chat is read with its owner's token generation, so a chat the user owns in the
    /// session's generation proves the session current (the account exists, its tokens
    /// were not revoked) without another query. Only otherwise is the account looked
    /// up, so that a revoked or deleted account's token gets 401, not 403 or 404.
    pub(crate) fn owned_chat(&self, session: Session, chat: ChatId) -> Result<Chat, AppError> {
        match self.ports.chats.find(chat)? {
            Some((chat, generation))
                if chat.owner == session.user && generation == session.generation =>
            {
                Ok(chat)
            }
            found => {
                self.ensure_current(session)?;
                Ok(authorize_chat_access(
                    found.map(|(chat, _)| chat),
                    session.user,
                )?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use memlayer_domain::UserId;
    use memlayer_ports::RepositoryError;
    use mockall::predicate::eq;

    use super::*;
    use memlayer_domain::{ChatCursor, FolderId, Organisation};

    use crate::testing::{Fixture, NOW, any_session, chat_owned_by, folder_owned_by, title};

    #[test]
    fn creating_a_chat_without_a_title_names_it_after_the_current_minute() {
        let mut fx = Fixture::new();
        let session = any_session();
        let user = session.user;
        let generation = session.generation;
        fx.users.expect_is_current().never();
        fx.chats
            .expect_create()
            .withf(move |chat, owner_generation| {
                chat.owner == user
                    && chat.title.as_str() == "Chat 2026-11-26 09:30"
                    && chat.created_at == NOW
                    && *owner_generation == generation
            })
            .times(1)
            .returning(|_, _| Ok(true));

        let chat = fx.app().create_chat(session, None).unwrap();

        assert_eq!(chat.title.as_str(), "Chat 2026-11-26 09:30");
    }

    #[test]
    fn creating_a_chat_keeps_the_given_title() {
        let mut fx = Fixture::new();
        fx.chats.expect_create().returning(|_, _| Ok(true));

        let chat = fx
            .app()
            .create_chat(any_session(), Some(title("Plans")))
            .unwrap();

        assert_eq!(chat.title.as_str(), "Plans");
    }

    #[test]
    fn creating_a_chat_for_a_deleted_account_or_with_a_revoked_token_is_unauthenticated() {
        let mut fx = Fixture::new();
        // The store refuses: the owner's generation is not the session's.
        fx.chats
            .expect_create()
            .times(1)
            .returning(|_, _| Ok(false));

        let error = fx.app().create_chat(any_session(), None).unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn getting_ones_own_chat_needs_no_account_lookup() {
        let mut fx = Fixture::new();
        let session = any_session();
        let user = session.user;
        let chat = fx.stored_chat(user);
        let expected = chat.clone();

        assert_eq!(fx.app().get_chat(session, expected.id).unwrap(), expected);
    }

    #[test]
    fn a_revoked_token_gets_unauthenticated_even_on_its_own_chat() {
        let mut fx = Fixture::new();
        let session = any_session();
        let chat = chat_owned_by(session.user);
        let id = chat.id;
        // The account's generation moved on: every earlier token is revoked.
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some((chat.clone(), 1))));
        fx.users
            .expect_is_current()
            .with(eq(session))
            .returning(|_| Ok(false));

        let error = fx.app().get_chat(session, id).unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn getting_another_users_chat_is_forbidden() {
        let mut fx = Fixture::new();
        let chat = chat_owned_by(UserId::generate());
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some((chat.clone(), 0))));
        fx.users.expect_is_current().returning(|_| Ok(true));

        let error = fx.app().get_chat(any_session(), id).unwrap_err();

        assert!(matches!(error, AppError::NotChatOwner), "{error:?}");
    }

    #[test]
    fn getting_a_missing_chat_is_not_found() {
        let mut fx = Fixture::new();
        fx.chats.expect_find().returning(|_| Ok(None));
        fx.users.expect_is_current().returning(|_| Ok(true));

        let error = fx
            .app()
            .get_chat(any_session(), ChatId::generate())
            .unwrap_err();

        assert!(matches!(error, AppError::ChatNotFound), "{error:?}");
    }

    #[test]
    fn a_deleted_account_gets_unauthenticated_rather_than_not_found() {
        let mut fx = Fixture::new();
        fx.chats.expect_find().returning(|_| Ok(None));
        fx.users.expect_is_current().returning(|_| Ok(false));

        let error = fx
            .app()
            .get_chat(any_session(), ChatId::generate())
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
            .get_chat(any_session(), ChatId::generate())
            .unwrap_err();

        assert!(matches!(error, AppError::Unavailable(_)), "{error:?}");
    }

    #[test]
    fn deleting_ones_chat_deletes_it() {
        let mut fx = Fixture::new();
        let session = any_session();
        let user = session.user;
        let chat = fx.stored_chat(user);
        let id = chat.id;
        fx.chats
            .expect_delete()
            .with(eq(id))
            .times(1)
            .returning(|_| Ok(true));

        assert!(fx.app().delete_chat(session, id).is_ok());
    }

    #[test]
    fn deleting_another_users_chat_is_forbidden_and_deletes_nothing() {
        let mut fx = Fixture::new();
        let chat = chat_owned_by(UserId::generate());
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some((chat.clone(), 0))));
        fx.users.expect_is_current().returning(|_| Ok(true));
        fx.chats.expect_delete().never();

        let error = fx.app().delete_chat(any_session(), id).unwrap_err();

        assert!(matches!(error, AppError::NotChatOwner), "{error:?}");
    }

    #[test]
    fn deleting_a_chat_deleted_meanwhile_is_not_found() {
        let mut fx = Fixture::new();
        let session = any_session();
        let user = session.user;
        let chat = fx.stored_chat(user);
        let id = chat.id;
        fx.chats.expect_delete().returning(|_| Ok(false));

        let error = fx.app().delete_chat(session, id).unwrap_err();

        assert!(matches!(error, AppError::ChatNotFound), "{error:?}");
    }

    #[test]
    fn the_organised_list_asks_one_more_than_a_page_and_says_where_the_next_starts() {
        let mut fx = Fixture::new();
        let session = any_session();
        let mut pinned = chat_owned_by(session.user);
        pinned.organisation.pinned = true;
        let chats = vec![pinned.clone(), chat_owned_by(session.user)];
        let filter = ChatFilter {
            archived: true,
            folder: None,
        };
        fx.chats
            .expect_list_organised()
            .with(eq(session), eq(filter), eq(None), eq(2))
            .returning(move |_, _, _, _| Ok(chats.clone()));

        let page = fx
            .app()
            .list_organised_chats(session, filter, 1, None)
            .unwrap();

        assert_eq!(page.items, [pinned.clone()]);
        assert_eq!(
            page.next,
            Some(ChatCursor {
                pinned: true,
                position: pinned.cursor()
            })
        );
    }

    #[test]
    fn an_empty_organised_list_checks_that_the_account_still_exists() {
        let mut fx = Fixture::new();
        fx.chats
            .expect_list_organised()
            .returning(|_, _, _, _| Ok(vec![]));
        fx.users.expect_is_current().returning(|_| Ok(false));

        let error = fx
            .app()
            .list_organised_chats(any_session(), ChatFilter::default(), 10, None)
            .unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn filing_a_chat_in_ones_own_folder_pins_and_files_it_in_one_update() {
        let mut fx = Fixture::new();
        let session = any_session();
        let chat = fx.stored_chat(session.user);
        let folder = folder_owned_by(session.user);
        let folder_id = folder.id;
        fx.folders
            .expect_find()
            .with(eq(folder_id))
            .returning(move |_| Ok(Some(folder.clone())));
        let change = ChatUpdate {
            pinned: Some(true),
            folder: Some(Some(folder_id)),
            ..ChatUpdate::default()
        };
        fx.chats
            .expect_update()
            .with(eq(chat.id), eq(change.clone()))
            .times(1)
            .returning(|_, _| Ok(true));

        let updated = fx.app().update_chat(session, chat.id, change).unwrap();

        assert_eq!(
            updated.organisation,
            Organisation {
                pinned: true,
                archived: false,
                folder: Some(folder_id)
            }
        );
    }

    #[test]
    fn filing_a_chat_in_someone_elses_or_a_missing_folder_changes_nothing() {
        for found in [Some(folder_owned_by(UserId::generate())), None] {
            let mut fx = Fixture::new();
            let session = any_session();
            let chat = fx.stored_chat(session.user);
            fx.folders
                .expect_find()
                .returning(move |_| Ok(found.clone()));
            fx.chats.expect_update().never();
            let change = ChatUpdate {
                folder: Some(Some(FolderId::generate())),
                ..ChatUpdate::default()
            };

            let error = fx.app().update_chat(session, chat.id, change).unwrap_err();

            assert!(matches!(error, AppError::FolderNotUsable), "{error:?}");
        }
    }

    #[test]
    fn a_folder_deleted_while_filing_a_chat_into_it_is_not_usable() {
        let mut fx = Fixture::new();
        let session = any_session();
        let chat = fx.stored_chat(session.user);
        let folder = folder_owned_by(session.user);
        let folder_id = folder.id;
        fx.folders
            .expect_find()
            .returning(move |_| Ok(Some(folder.clone())));
        fx.chats
            .expect_update()
            .returning(|_, _| Err(UpdateChatError::FolderGone));
        let change = ChatUpdate {
            folder: Some(Some(folder_id)),
            ..ChatUpdate::default()
        };

        let error = fx.app().update_chat(session, chat.id, change).unwrap_err();

        assert!(matches!(error, AppError::FolderNotUsable), "{error:?}");
    }

    #[test]
    fn updating_another_users_chat_is_forbidden_and_changes_nothing() {
        let mut fx = Fixture::new();
        let chat = chat_owned_by(UserId::generate());
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some((chat.clone(), 0))));
        fx.users.expect_is_current().returning(|_| Ok(true));
        fx.chats.expect_update().never();
        let change = ChatUpdate {
            archived: Some(true),
            ..ChatUpdate::default()
        };

        let error = fx.app().update_chat(any_session(), id, change).unwrap_err();

        assert!(matches!(error, AppError::NotChatOwner), "{error:?}");
    }
}
