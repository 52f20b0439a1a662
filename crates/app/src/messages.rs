use memlayer_domain::{
    ChatId, DEFAULT_MESSAGES_PAGE, Message, MessageContent, MessageId, Page, PageRequest, Role,
    UserId, reply_timestamp,
};

use crate::{AppError, MemLayer};

impl MemLayer {
    /// Posts the user's message to one of their chats and returns the assistant's reply.
    ///
    /// The user's message is stored first, so it is kept even if the responder fails;
    /// the reply is stamped strictly later, so it always sorts after the message.
    pub fn post_message(
        &self,
        user: UserId,
        chat: ChatId,
        content: String,
    ) -> Result<Message, AppError> {
        let content = MessageContent::parse(content)?;
        let chat = self.owned_chat(user, chat)?;
        let question = Message {
            id: MessageId::generate(),
            chat_id: chat.id,
            user_id: user,
            role: Role::User,
            content,
            created_at: self.ports.clock.now(),
        };
        self.append(&question)?;

        let answer = self
            .ports
            .responder
            .reply(&chat, &question)
            .map_err(AppError::AssistantFailed)?;
        let reply = Message {
            id: MessageId::generate(),
            chat_id: chat.id,
            user_id: chat.owner,
            role: Role::Assistant,
            content: answer,
            created_at: reply_timestamp(question.created_at, self.ports.clock.now()),
        };
        self.append(&reply)?;
        Ok(reply)
    }

    /// A page of the messages of one of the user's chats, in the order they were
    /// written. Pages go back in time: the first holds the latest messages (at most
    /// `limit`, [`DEFAULT_MESSAGES_PAGE`] when missing), so a long chat always shows its
    /// end; `cursor` reads the messages before a page. `limit` and `cursor` are the query
    /// parameters as given.
    pub fn list_messages(
        &self,
        user: UserId,
        chat: ChatId,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Page<Message>, AppError> {
        let page = PageRequest::parse(limit, cursor, DEFAULT_MESSAGES_PAGE)?;
        let chat = self.owned_chat(user, chat)?;
        let newest_first =
            self.ports
                .messages
                .list_for_chat(chat.id, page.after, page.limit + 1)?;
        let mut page = Page::from_overfetch(newest_first, page.limit, Message::cursor);
        page.items.reverse();
        Ok(page)
    }

    fn append(&self, message: &Message) -> Result<(), AppError> {
        if self.ports.messages.append(message)? {
            Ok(())
        } else {
            // The chat was deleted between the ownership check and the insert.
            Err(AppError::ChatNotFound)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use memlayer_domain::{ChatTitle, ValidationKind};
    use memlayer_ports::{RepositoryError, ResponderError};
    use mockall::Sequence;
    use mockall::predicate::eq;

    use super::*;
    use crate::testing::{Fixture, NOW, chat_owned_by};

    #[test]
    fn posting_stores_the_message_then_the_reply_and_returns_the_reply() {
        let mut fx = Fixture::new();
        let user = UserId::generate();
        let chat = chat_owned_by(user);
        let chat_id = chat.id;
        fx.chats
            .expect_find()
            .with(eq(chat_id))
            .returning(move |_| Ok(Some(chat.clone())));
        let stored = Arc::new(Mutex::new(Vec::<Message>::new()));
        let log = stored.clone();
        let mut order = Sequence::new();
        fx.messages
            .expect_append()
            .withf(|m| m.role == Role::User)
            .times(1)
            .in_sequence(&mut order)
            .returning({
                let log = log.clone();
                move |m| {
                    log.lock().unwrap().push(m.clone());
                    Ok(true)
                }
            });
        fx.responder
            .expect_reply()
            .withf(|_, m| m.content.as_str() == "hello")
            .times(1)
            .in_sequence(&mut order)
            .returning(|_, _| Ok(MessageContent::from_trusted("Message received".into())));
        fx.messages
            .expect_append()
            .withf(|m| m.role == Role::Assistant)
            .times(1)
            .in_sequence(&mut order)
            .returning(move |m| {
                log.lock().unwrap().push(m.clone());
                Ok(true)
            });

        let reply = fx
            .app()
            .post_message(user, chat_id, "hello".into())
            .unwrap();

        let stored = stored.lock().unwrap();
        let (question, answer) = (&stored[0], &stored[1]);
        assert_eq!(&reply, answer);
        assert_eq!(reply.content.as_str(), "Message received");
        assert_eq!((reply.chat_id, reply.user_id), (chat_id, user));
        assert_eq!((question.role, question.user_id), (Role::User, user));
        assert_eq!(question.content.as_str(), "hello");
        assert_eq!(question.created_at, NOW);
        assert!(answer.created_at > question.created_at);
        assert_ne!(question.id, answer.id);
    }

    #[test]
    fn posting_blank_content_is_invalid_and_stores_nothing() {
        let fx = Fixture::new();

        let error = fx
            .app()
            .post_message(UserId::generate(), ChatId::generate(), " \n".into())
            .unwrap_err();

        let AppError::Invalid(errors) = error else {
            panic!("{error:?}")
        };
        assert_eq!(
            (errors.0[0].field, errors.0[0].kind),
            ("content", ValidationKind::TooShort)
        );
    }

    #[test]
    fn posting_to_another_users_chat_is_forbidden_and_stores_nothing() {
        let mut fx = Fixture::new();
        let chat = chat_owned_by(UserId::generate());
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some(chat.clone())));
        fx.users.expect_exists().returning(|_| Ok(true));
        fx.messages.expect_append().never();

        let error = fx
            .app()
            .post_message(UserId::generate(), id, "hi".into())
            .unwrap_err();

        assert!(matches!(error, AppError::NotChatOwner), "{error:?}");
    }

    #[test]
    fn posting_to_a_missing_chat_is_not_found() {
        let mut fx = Fixture::new();
        fx.chats.expect_find().returning(|_| Ok(None));
        fx.users.expect_exists().returning(|_| Ok(true));

        let error = fx
            .app()
            .post_message(UserId::generate(), ChatId::generate(), "hi".into())
            .unwrap_err();

        assert!(matches!(error, AppError::ChatNotFound), "{error:?}");
    }

    #[test]
    fn posting_to_a_chat_deleted_after_the_check_is_not_found() {
        let mut fx = Fixture::new();
        let user = UserId::generate();
        let chat = chat_owned_by(user);
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some(chat.clone())));
        fx.messages.expect_append().returning(|_| Ok(false));

        let error = fx.app().post_message(user, id, "hi".into()).unwrap_err();

        assert!(matches!(error, AppError::ChatNotFound), "{error:?}");
    }

    #[test]
    fn a_failing_responder_keeps_the_users_message_and_reports_the_failure() {
        let mut fx = Fixture::new();
        let user = UserId::generate();
        let chat = chat_owned_by(user);
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some(chat.clone())));
        fx.messages.expect_append().times(1).returning(|_| Ok(true));
        fx.responder
            .expect_reply()
            .returning(|_, _| Err(ResponderError("model offline".into())));

        let error = fx.app().post_message(user, id, "hi".into()).unwrap_err();

        assert!(matches!(error, AppError::AssistantFailed(_)), "{error:?}");
    }

    #[test]
    fn a_storage_outage_while_posting_is_unavailable() {
        let mut fx = Fixture::new();
        let user = UserId::generate();
        let chat = chat_owned_by(user);
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some(chat.clone())));
        fx.messages
            .expect_append()
            .returning(|_| Err(RepositoryError::Unavailable("down".into())));

        let error = fx.app().post_message(user, id, "hi".into()).unwrap_err();

        assert!(matches!(error, AppError::Unavailable(_)), "{error:?}");
    }

    #[test]
    fn listing_messages_of_ones_chat_returns_them_from_storage() {
        let mut fx = Fixture::new();
        let user = UserId::generate();
        let chat = chat_owned_by(user);
        let id = chat.id;
        let message = Message {
            id: MessageId::generate(),
            chat_id: id,
            user_id: user,
            role: Role::User,
            content: MessageContent::from_trusted("hi".into()),
            created_at: NOW,
        };
        let expected = vec![message.clone()];
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some(chat.clone())));
        fx.messages
            .expect_list_for_chat()
            .with(eq(id), eq(None), eq(DEFAULT_MESSAGES_PAGE + 1))
            .returning(move |_, _, _| Ok(vec![message.clone()]));

        let page = fx.app().list_messages(user, id, None, None).unwrap();

        assert_eq!((page.items, page.next), (expected, None));
    }

    #[test]
    fn a_page_of_messages_is_the_latest_ones_in_the_order_they_were_written() {
        let mut fx = Fixture::new();
        let user = UserId::generate();
        let chat = chat_owned_by(user);
        let id = chat.id;
        let at = |seconds| Message {
            id: MessageId::generate(),
            chat_id: id,
            user_id: user,
            role: Role::User,
            content: MessageContent::from_trusted(format!("at {seconds}")),
            created_at: NOW + chrono::TimeDelta::seconds(seconds),
        };
        let newest_first = vec![at(3), at(2), at(1)];
        let (third, second) = (newest_first[0].clone(), newest_first[1].clone());
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some(chat.clone())));
        fx.messages
            .expect_list_for_chat()
            .with(eq(id), eq(None), eq(3))
            .returning(move |_, _, _| Ok(newest_first.clone()));

        let page = fx.app().list_messages(user, id, Some("2"), None).unwrap();

        assert_eq!(page.items, vec![second.clone(), third]);
        assert_eq!(page.next, Some(second.cursor()));
    }

    #[test]
    fn listing_messages_with_a_malformed_cursor_is_invalid_before_anything_is_read() {
        let error = Fixture::new()
            .app()
            .list_messages(UserId::generate(), ChatId::generate(), None, Some("x"))
            .unwrap_err();

        let AppError::Invalid(errors) = error else {
            panic!("{error:?}")
        };
        assert_eq!(errors.0[0].field, "cursor");
    }

    #[test]
    fn listing_messages_of_another_users_chat_is_forbidden() {
        let mut fx = Fixture::new();
        let mut chat = chat_owned_by(UserId::generate());
        chat.title = ChatTitle::from_trusted("theirs".into());
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some(chat.clone())));
        fx.users.expect_exists().returning(|_| Ok(true));
        fx.messages.expect_list_for_chat().never();

        let error = fx
            .app()
            .list_messages(UserId::generate(), id, None, None)
            .unwrap_err();

        assert!(matches!(error, AppError::NotChatOwner), "{error:?}");
    }
}
