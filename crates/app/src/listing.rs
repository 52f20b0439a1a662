//! Reading a chat's conversation and working its tree: the active path page by page,
//! the whole tree, switching branches and deleting one. (Posting, and answering again,
//! are in `posting`; a reply's life in `generation`.)

use memlayer_domain::{Chat, ChatId, Message, MessageId, Page, PageRequest, PathEnd, Session};

use crate::{AppError, MemLayer};

impl MemLayer {
    /// A page of the chat's active path (from a first message down to its active
    /// leaf), in the order written. Pages go back in time: the first holds the path's
    /// latest messages (at most the page's limit), so a long chat always shows its end;
    /// a page after a cursor holds the ancestors of the message it names, so a page
    /// already read stays valid even if the active path changes meanwhile.
    pub fn list_messages(
        &self,
        session: Session,
        chat: ChatId,
        page: PageRequest,
    ) -> Result<Page<Message>, AppError> {
        let end = page
            .after()
            .map(|cursor| PathEnd::Above(MessageId::from_uuid(cursor.id)));
        let newest_first =
            self.ports
                .messages
                .path(Some(session), chat, end, page.limit() + 1, usize::MAX)?;
        if newest_first.is_empty() {
            // Nothing may also mean not the user's chat, no such chat, or revoked
            // tokens: those get their errors.
            self.owned_chat(session, chat)?;
        }
        let mut page = Page::from_overfetch(newest_first, page.limit(), Message::cursor);
        page.items.reverse();
        Ok(page)
    }

    /// A page of every message of one of the user's chats, all branches, oldest first
    /// (the order written), each with its siblings.
    pub fn list_tree(
        &self,
        session: Session,
        chat: ChatId,
        page: PageRequest,
    ) -> Result<Page<Message>, AppError> {
        let oldest_first = self.ports.messages.list_oldest_first(
            Some(session),
            chat,
            page.after(),
            page.limit() + 1,
        )?;
        if oldest_first.is_empty() {
            self.owned_chat(session, chat)?;
        }
        Ok(Page::from_overfetch(
            oldest_first,
            page.limit(),
            Message::cursor,
        ))
    }

    /// Makes the path through `message` the active one in one of the user's chats: its
    /// active leaf becomes the newest leaf below the message. The chat as it is then.
    pub fn switch_branch(
        &self,
        session: Session,
        chat: ChatId,
        message: MessageId,
    ) -> Result<Chat, AppError> {
        let chat = self.owned_chat(session, chat)?;
        let leaf = self
            .ports
            .messages
            .activate(chat.id, message)?
            .ok_or(AppError::MessageNotFound)?;
        Ok(Chat {
            active_message_id: Some(leaf),
            ..chat
        })
    }

    /// Deletes a message of one of the user's chats and everything below it; the
    /// active path moves off the deleted branch (see
    /// [`memlayer_ports::MessageRepository::delete_subtree`]).
    pub fn delete_message(
        &self,
        session: Session,
        chat: ChatId,
        message: MessageId,
    ) -> Result<(), AppError> {
        let chat = self.owned_chat(session, chat)?;
        if self.ports.messages.delete_subtree(chat.id, message)? {
            Ok(())
        } else {
            Err(AppError::MessageNotFound)
        }
    }
}

#[cfg(test)]
mod tests {
    use memlayer_domain::{
        ChatTitle, DEFAULT_MESSAGES_PAGE, MessageContent, MessageStatus, Role, UserId,
    };
    use mockall::predicate::eq;

    use super::*;
    use crate::testing::{Fixture, NOW, any_session, chat_owned_by, first_page};

    #[test]
    fn listing_messages_of_ones_chat_returns_them_from_storage() {
        let mut fx = Fixture::new();
        let session = any_session();
        let user = session.user;
        let chat = chat_owned_by(user);
        let id = chat.id;
        let message = Message {
            id: MessageId::generate(),
            chat_id: id,
            user_id: user,
            role: Role::User,
            content: MessageContent::from_trusted("hi".into()),
            created_at: NOW,
            parent_id: None,
            status: MessageStatus::Complete,
            sibling_ids: vec![],
            usage: None,
        };
        let expected = vec![message.clone()];
        // The ownership check rides on the read: no separate lookup.
        fx.chats.expect_find().never();
        fx.messages
            .expect_path()
            .with(
                eq(Some(session)),
                eq(id),
                eq(None),
                eq(DEFAULT_MESSAGES_PAGE + 1),
                eq(usize::MAX),
            )
            .returning(move |_, _, _, _, _| Ok(vec![message.clone()]));

        let page = fx
            .app()
            .list_messages(session, id, first_page(DEFAULT_MESSAGES_PAGE))
            .unwrap();

        assert_eq!((page.items, page.next), (expected, None));
    }

    #[test]
    fn a_page_of_messages_is_the_latest_ones_in_the_order_they_were_written() {
        let mut fx = Fixture::new();
        let session = any_session();
        let user = session.user;
        let chat = chat_owned_by(user);
        let id = chat.id;
        let at = |seconds| Message {
            id: MessageId::generate(),
            chat_id: id,
            user_id: user,
            role: Role::User,
            content: MessageContent::from_trusted(format!("at {seconds}")),
            created_at: NOW + chrono::TimeDelta::seconds(seconds),
            parent_id: None,
            status: MessageStatus::Complete,
            sibling_ids: vec![],
            usage: None,
        };
        let newest_first = vec![at(3), at(2), at(1)];
        let (third, second) = (newest_first[0].clone(), newest_first[1].clone());
        fx.messages
            .expect_path()
            .with(eq(Some(session)), eq(id), eq(None), eq(3), eq(usize::MAX))
            .returning(move |_, _, _, _, _| Ok(newest_first.clone()));

        let page = fx
            .app()
            .list_messages(session, id, PageRequest::new(2, None).unwrap())
            .unwrap();

        assert_eq!(page.items, vec![second.clone(), third]);
        assert_eq!(page.next, Some(second.cursor()));
    }

    #[test]
    fn listing_messages_of_another_users_chat_is_forbidden() {
        let mut fx = Fixture::new();
        let mut chat = chat_owned_by(UserId::generate());
        chat.title = ChatTitle::from_trusted("theirs".into());
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some((chat.clone(), 0))));
        fx.users.expect_is_current().returning(|_| Ok(true));
        // Not the session's chat: the read returns nothing, then the lookup tells why.
        fx.messages
            .expect_path()
            .returning(|_, _, _, _, _| Ok(Vec::new()));

        let error = fx
            .app()
            .list_messages(any_session(), id, first_page(DEFAULT_MESSAGES_PAGE))
            .unwrap_err();

        assert!(matches!(error, AppError::NotChatOwner), "{error:?}");
    }

    #[test]
    fn an_empty_chat_of_ones_own_lists_as_an_empty_page() {
        let mut fx = Fixture::new();
        let session = any_session();
        let chat = chat_owned_by(session.user);
        let id = chat.id;
        fx.messages
            .expect_path()
            .returning(|_, _, _, _, _| Ok(Vec::new()));
        fx.chats
            .expect_find()
            .times(1)
            .returning(move |_| Ok(Some((chat.clone(), 0))));

        let page = fx
            .app()
            .list_messages(session, id, first_page(DEFAULT_MESSAGES_PAGE))
            .unwrap();

        assert_eq!((page.items, page.next), (Vec::new(), None));
    }

    #[test]
    fn listing_messages_with_a_revoked_token_is_unauthenticated() {
        let mut fx = Fixture::new();
        let session = any_session();
        let chat = chat_owned_by(session.user);
        let id = chat.id;
        fx.messages
            .expect_path()
            .returning(|_, _, _, _, _| Ok(Vec::new()));
        // The owner's generation moved on since the token was issued.
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some((chat.clone(), 1))));
        fx.users.expect_is_current().returning(|_| Ok(false));

        let error = fx
            .app()
            .list_messages(session, id, first_page(DEFAULT_MESSAGES_PAGE))
            .unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn switching_branches_answers_the_chat_with_its_new_active_leaf() {
        let mut fx = Fixture::new();
        let chat = fx.stored_chat(UserId::generate());
        let (message, leaf) = (MessageId::generate(), MessageId::generate());
        fx.messages
            .expect_activate()
            .with(eq(chat.id), eq(message))
            .returning(move |_, _| Ok(Some(leaf)));

        let switched = fx
            .app()
            .switch_branch(Session::new(chat.owner, 0), chat.id, message)
            .unwrap();

        assert_eq!(switched.active_message_id, Some(leaf));
        assert_eq!(switched.id, chat.id);
    }
}
