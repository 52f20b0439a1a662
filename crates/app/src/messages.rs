use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use memlayer_domain::{
    Chat, ChatId, Message, MessageContent, MessageId, MessageStatus, Page, PageRequest, PathEnd,
    Role, Session, reply_timestamp,
};
use memlayer_ports::{Activation, ReplyRequest, ResponderError};

use crate::{AppError, MemLayer};

/// A user's message, waiting for the assistant's answer.
///
/// Posting a message takes steps, so that nothing holds a thread or a database
/// connection while the model writes: [`MemLayer::ask`] checks the question and gathers
/// what the assistant sees (blocking); [`MemLayer::store_question`] stores it (blocking)
/// while [`MemLayer::answer`] already streams the answer (asynchronous), so the model
/// starts reading without waiting for the database's commit; then
/// [`MemLayer::finish_reply`] or [`MemLayer::keep_partial_reply`] stores the reply
/// (blocking). The reply is only stored after the question.
///
/// Regenerating an answer ([`MemLayer::regenerate`]) and editing a question
/// ([`MemLayer::edit`]) take the same steps; a regenerated answer's question is stored
/// already, and [`MemLayer::store_question`] only makes it the chat's active leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReply {
    request: ReplyRequest,
    /// Whether the question is new (to be stored), not one stored before.
    new_question: bool,
}

impl PendingReply {
    /// The user's message the reply answers.
    pub fn question(&self) -> &Message {
        &self.request.question
    }

    /// Whether the question is new: posted or edited, not answered again.
    pub fn has_new_question(&self) -> bool {
        self.new_question
    }
}

/// What of the assistant's answer has reached its reader so far, and when the last
/// piece did ([`MemLayer::delivered`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    text: String,
    last_delivered_at: Option<DateTime<Utc>>,
}

impl Draft {
    /// The pieces delivered, joined.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The assistant's answer as it is written: its pieces in order, or the failure that
/// ended it. Dropping the stream cancels the generation.
pub type AnswerStream = BoxStream<'static, Result<String, AppError>>;

impl MemLayer {
    /// Checks the user's message to one of their chats and gathers what the assistant
    /// will see: the path that ends at the chat's active leaf, newest messages first as
    /// far as its context window goes, oldest first. The message follows that leaf.
    /// Nothing is stored yet.
    pub fn ask(
        &self,
        session: Session,
        chat: ChatId,
        content: MessageContent,
    ) -> Result<PendingReply, AppError> {
        let chat = self.owned_chat(session, chat)?;
        let parent = chat.active_message_id;
        let history = self.history(&chat, parent.map(PathEnd::At))?;
        Ok(self.pending(chat, history, parent, content))
    }

    /// Checks a request for another answer to a message of one of the user's chats: on
    /// an assistant's message, a sibling of it (an answer to the same question); on a
    /// user's message, an answer to it. The assistant sees the question's ancestors.
    /// Nothing is stored yet.
    pub fn regenerate(
        &self,
        session: Session,
        chat: ChatId,
        message: MessageId,
    ) -> Result<PendingReply, AppError> {
        let chat = self.owned_chat(session, chat)?;
        let target = self.message_of(&chat, message)?;
        let question = match (target.role, target.parent_id) {
            (Role::User, _) => target,
            (Role::Assistant, Some(parent)) => self.message_of(&chat, parent)?,
            // An answer to nothing: there is no question to ask again.
            (Role::Assistant, None) => return Err(AppError::NotAUserMessage),
        };
        let history = self.history(&chat, Some(PathEnd::Above(question.id)))?;
        Ok(PendingReply {
            request: ReplyRequest {
                chat,
                history,
                question,
            },
            new_question: false,
        })
    }

    /// Checks an edit of a user's message of one of their chats: a new message, a
    /// sibling of it (same parent) with `content`, to be answered; the original and its
    /// replies stay on their own branch. Nothing is stored yet.
    pub fn edit(
        &self,
        session: Session,
        chat: ChatId,
        message: MessageId,
        content: MessageContent,
    ) -> Result<PendingReply, AppError> {
        let chat = self.owned_chat(session, chat)?;
        let original = self.message_of(&chat, message)?;
        if original.role != Role::User {
            return Err(AppError::NotAUserMessage);
        }
        let parent = original.parent_id;
        let history = self.history(&chat, parent.map(PathEnd::At))?;
        Ok(self.pending(chat, history, parent, content))
    }

    /// The message `id` of `chat`, or [`AppError::MessageNotFound`].
    fn message_of(&self, chat: &Chat, id: MessageId) -> Result<Message, AppError> {
        self.ports
            .messages
            .find_message(chat.id, id)?
            .ok_or(AppError::MessageNotFound)
    }

    /// What the assistant sees of `chat`: the path ending at `end` (none without an
    /// end), its latest messages that fit the context window, oldest first.
    fn history(&self, chat: &Chat, end: Option<PathEnd>) -> Result<Vec<Message>, AppError> {
        let window = self.ports.responder.context();
        let Some(end) = end else {
            return Ok(Vec::new());
        };
        if window.messages == 0 || window.chars == 0 {
            return Ok(Vec::new());
        }
        // Each message comes cut to the whole budget: the newest one alone may fill it.
        let newest_first =
            self.ports
                .messages
                .path(None, chat.id, Some(end), window.messages, window.chars)?;
        let mut room = window.chars;
        let mut history: Vec<Message> = newest_first
            .into_iter()
            .take_while(|message| {
                let length = message.content.as_str().chars().count();
                let fits = length <= room;
                room = room.saturating_sub(length);
                fits
            })
            .collect();
        history.reverse();
        Ok(history)
    }

    /// A new question of the chat's owner, after `parent` (and stamped after the
    /// newest message of `history`, which ends at it), waiting for its answer.
    fn pending(
        &self,
        chat: Chat,
        history: Vec<Message>,
        parent: Option<MessageId>,
        content: MessageContent,
    ) -> PendingReply {
        let now = self.ports.clock.now();
        let id = MessageId::generate();
        let question = Message {
            id,
            chat_id: chat.id,
            user_id: chat.owner,
            role: Role::User,
            content,
            created_at: history
                .last()
                .map_or(now, |newest| reply_timestamp(newest.created_at, now)),
            parent_id: parent,
            status: MessageStatus::Complete,
            sibling_ids: vec![id],
        };
        PendingReply {
            request: ReplyRequest {
                chat,
                history,
                question,
            },
            new_question: true,
        }
    }

    /// Whether the assistant answers without being asked (no model behind it), so
    /// [`MemLayer::post_with_fixed_reply`] can post a message in one step.
    pub fn has_fixed_reply(&self) -> bool {
        self.ports.responder.fixed_reply().is_some()
    }

    /// Posts the user's message to one of their chats when the assistant answers at
    /// once ([`MemLayer::has_fixed_reply`]): the message and the reply are stored
    /// together, in one unit of work, and the reply is returned. With an assistant that
    /// must be asked, it fails as the assistant would ([`AppError::AssistantFailed`])
    /// and stores nothing: use [`MemLayer::ask`].
    pub fn post_with_fixed_reply(
        &self,
        session: Session,
        chat: ChatId,
        content: MessageContent,
    ) -> Result<Message, AppError> {
        let text = self.ports.responder.fixed_reply().ok_or_else(|| {
            AppError::AssistantFailed(ResponderError::Unavailable(
                "the assistant must be asked: it has no fixed reply".into(),
            ))
        })?;
        let reply_content = MessageContent::from_assistant(&text).ok_or_else(|| {
            AppError::AssistantFailed(ResponderError::Broken(
                "the assistant's fixed reply has no text".into(),
            ))
        })?;
        let now = self.ports.clock.now();
        let (question_id, reply_id) = (MessageId::generate(), MessageId::generate());
        let question = Message {
            id: question_id,
            chat_id: chat,
            user_id: session.user,
            role: Role::User,
            content,
            created_at: now,
            // Storage puts it after the chat's active leaf.
            parent_id: None,
            status: MessageStatus::Complete,
            sibling_ids: vec![question_id],
        };
        let reply = Message {
            id: reply_id,
            chat_id: chat,
            user_id: session.user,
            role: Role::Assistant,
            content: reply_content,
            created_at: reply_timestamp(now, now),
            parent_id: Some(question_id),
            status: MessageStatus::Complete,
            sibling_ids: vec![reply_id],
        };
        if self
            .ports
            .messages
            .append_exchange(session, &question, &reply)?
        {
            return Ok(reply);
        }
        // Nothing stored: not the user's chat, no such chat, or revoked tokens.
        self.owned_chat(session, chat)?;
        // The chat was the user's yet the exchange was refused: it was deleted
        // meanwhile.
        Err(AppError::ChatNotFound)
    }

    /// Stores `pending`'s question, a new one, as the chat's active leaf, and returns
    /// it as stored (with its siblings); a question answered again is made the active
    /// leaf (its new answer takes over from it when stored).
    pub fn store_question(&self, pending: &PendingReply) -> Result<Message, AppError> {
        let question = &pending.request.question;
        if !pending.new_question {
            if !self
                .ports
                .messages
                .make_active(question.chat_id, question.id)?
            {
                return Err(self.gone(question.chat_id)?);
            }
            return Ok(question.clone());
        }
        let sibling_ids = self.append(question, Activation::Always)?;
        Ok(Message {
            sibling_ids,
            ..question.clone()
        })
    }

    /// The assistant's answer to `pending`, as it is written. NUL characters (which no
    /// database text can hold) are dropped, so what a reader is sent is what is stored;
    /// empty pieces are left out.
    pub fn answer(&self, pending: &PendingReply) -> AnswerStream {
        self.ports
            .responder
            .reply(pending.request.clone())
            .map_ok(|piece| {
                if piece.contains('\0') {
                    piece.replace('\0', "")
                } else {
                    piece
                }
            })
            .try_filter(|piece| std::future::ready(!piece.is_empty()))
            .map_err(AppError::AssistantFailed)
            .boxed()
    }

    /// Notes that `piece` of the answer reached its reader.
    pub fn delivered(&self, draft: &mut Draft, piece: &str) {
        draft.text.push_str(piece);
        draft.last_delivered_at = Some(self.ports.clock.now());
    }

    /// The whole of an `answer` (from [`MemLayer::answer`]), once it is written.
    pub async fn answer_in_full(answer: AnswerStream) -> Result<String, AppError> {
        answer
            .try_fold(String::new(), |mut text, piece| {
                text.push_str(&piece);
                std::future::ready(Ok(text))
            })
            .await
    }

    /// Stores the assistant's complete answer, `text`, as the reply to `pending`.
    ///
    /// The reply is stamped strictly later than the question, so it always sorts after
    /// it. An answer with no visible text is a failure of the assistant, and nothing is
    /// stored.
    pub fn finish_reply(&self, pending: &PendingReply, text: &str) -> Result<Message, AppError> {
        self.store_reply(pending, text, self.ports.clock.now())?
            .ok_or_else(|| {
                AppError::AssistantFailed(ResponderError::Broken(
                    "the model's answer had no text".into(),
                ))
            })
    }

    /// Stores what the assistant had delivered when its reader went away (`draft`), so
    /// the history shows what the user saw. It is stamped when its last piece went out,
    /// not when it is stored, so it sorts before a question the user sent after that.
    /// With no visible text nothing is stored: the question stands alone, as it would
    /// had the user stopped the answer at once.
    pub fn keep_partial_reply(
        &self,
        pending: &PendingReply,
        draft: &Draft,
    ) -> Result<Option<Message>, AppError> {
        let at = draft
            .last_delivered_at
            .unwrap_or_else(|| self.ports.clock.now());
        self.store_reply(pending, &draft.text, at)
    }

    fn store_reply(
        &self,
        pending: &PendingReply,
        text: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Message>, AppError> {
        let Some(content) = MessageContent::from_assistant(text) else {
            return Ok(None);
        };
        let question = &pending.request.question;
        let id = MessageId::generate();
        let reply = Message {
            id,
            chat_id: question.chat_id,
            user_id: pending.request.chat.owner,
            role: Role::Assistant,
            content,
            created_at: reply_timestamp(question.created_at, at),
            parent_id: Some(question.id),
            status: MessageStatus::Complete,
            sibling_ids: vec![id],
        };
        // The reply takes over the active path only if its question still holds it: a
        // client that switched branches meanwhile keeps its branch.
        let sibling_ids = self.append(&reply, Activation::IfActiveIs(question.id))?;
        Ok(Some(Message {
            sibling_ids,
            ..reply
        }))
    }

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

    /// Stores `message`; its sibling ids as stored.
    fn append(
        &self,
        message: &Message,
        activation: Activation,
    ) -> Result<Vec<MessageId>, AppError> {
        match self.ports.messages.append(message, activation)? {
            Some(siblings) => Ok(siblings),
            None => Err(self.gone(message.chat_id)?),
        }
    }

    /// What was deleted from under a request that found `chat` and a message of it a
    /// moment before: the chat, or only the message (a branch deleted meanwhile).
    fn gone(&self, chat: ChatId) -> Result<AppError, AppError> {
        Ok(match self.ports.chats.find(chat)? {
            Some(_) => AppError::MessageNotFound,
            None => AppError::ChatNotFound,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_executor::block_on;
    use futures_util::stream;
    use memlayer_domain::{Chat, ChatTitle, DEFAULT_MESSAGES_PAGE, UserId};
    use memlayer_ports::{ContextWindow, MockClock, ReplyStream, RepositoryError, ResponderError};
    use mockall::Sequence;
    use mockall::predicate::{always, eq};

    use super::*;
    use crate::testing::{Fixture, NOW, any_session, chat_owned_by, content, first_page};

    fn message(chat: &Chat, role: Role, text: &str, seconds: i64) -> Message {
        let id = MessageId::generate();
        Message {
            id,
            chat_id: chat.id,
            user_id: chat.owner,
            role,
            content: MessageContent::from_trusted(text.into()),
            created_at: NOW - chrono::TimeDelta::seconds(seconds),
            parent_id: None,
            status: MessageStatus::Complete,
            sibling_ids: vec![id],
        }
    }

    /// A fixture whose user owns `chat`, whose assistant wants no history, and whose
    /// storage records every message appended.
    fn posting_fixture(chat: &Chat) -> (Fixture, Arc<Mutex<Vec<Message>>>) {
        let mut fx = Fixture::new();
        let found = chat.clone();
        fx.chats
            .expect_find()
            .with(eq(chat.id))
            .returning(move |_| Ok(Some((found.clone(), 0))));
        fx.responder
            .expect_context()
            .return_const(ContextWindow::NONE);
        let stored = Arc::new(Mutex::new(Vec::new()));
        let log = stored.clone();
        fx.messages.expect_append().returning(move |m, _| {
            log.lock().unwrap().push(m.clone());
            Ok(Some(vec![m.id]))
        });
        (fx, stored)
    }

    /// Asks and stores the question, as the HTTP layer does.
    fn asked(app: &MemLayer, user: UserId, chat: ChatId, text: &str) -> PendingReply {
        let pending = app.ask(Session::new(user, 0), chat, content(text)).unwrap();
        app.store_question(&pending).unwrap();
        pending
    }

    fn answering(pieces: Vec<Result<&'static str, ResponderError>>) -> ReplyStream {
        stream::iter(pieces.into_iter().map(|piece| piece.map(str::to_owned))).boxed()
    }

    #[test]
    fn the_question_is_stored_after_the_latest_history_is_read_for_the_assistant_oldest_first() {
        let mut fx = Fixture::new();
        let session = any_session();
        let user = session.user;
        let chat = fx.stored_chat(user);
        fx.responder.expect_context().return_const(ContextWindow {
            messages: 2,
            chars: 1_000,
        });
        let newest_first = vec![
            message(&chat, Role::Assistant, "Hello!", 1),
            message(&chat, Role::User, "Hi", 2),
        ];
        let oldest_first: Vec<Message> = newest_first.iter().rev().cloned().collect();
        let mut order = Sequence::new();
        fx.messages
            .expect_path()
            .with(
                eq(None),
                eq(chat.id),
                eq(chat.active_message_id.map(PathEnd::At)),
                eq(2),
                eq(1_000),
            )
            .times(1)
            .in_sequence(&mut order)
            .returning(move |_, _, _, _, _| Ok(newest_first.clone()));
        fx.messages
            .expect_append()
            .withf(|m, _| m.role == Role::User && m.content.as_str() == "And now?")
            .times(1)
            .in_sequence(&mut order)
            .returning(|m, _| Ok(Some(vec![m.id])));

        let app = fx.app();
        let pending = app.ask(session, chat.id, content("And now?")).unwrap();
        app.store_question(&pending).unwrap();

        assert_eq!(pending.request.history, oldest_first);
        assert_eq!(pending.request.chat, chat);
        let question = pending.question();
        assert_eq!((question.role, question.user_id), (Role::User, user));
        assert_eq!((question.chat_id, question.created_at), (chat.id, NOW));
    }

    #[test]
    fn asking_stores_nothing_and_an_assistant_that_wants_no_history_costs_no_read() {
        let session = any_session();
        let user = session.user;
        let chat = chat_owned_by(user);
        let (mut fx, stored) = posting_fixture(&chat);
        fx.messages.expect_path().never();

        let app = fx.app();
        let pending = app.ask(session, chat.id, content("hello")).unwrap();

        assert!(pending.request.history.is_empty());
        assert!(
            stored.lock().unwrap().is_empty(),
            "stored before store_question"
        );
        app.store_question(&pending).unwrap();
        assert_eq!(
            stored.lock().unwrap().as_slice(),
            [pending.question().clone()]
        );
    }

    #[test]
    fn the_answer_is_the_assistants_pieces_joined_then_stored_after_the_question() {
        let session = any_session();
        let user = session.user;
        let chat = chat_owned_by(user);
        let (mut fx, stored) = posting_fixture(&chat);
        fx.responder
            .expect_reply()
            .withf(|request| request.question.content.as_str() == "hello")
            .times(1)
            .returning(|_| answering(vec![Ok("Hel"), Ok(""), Ok("lo!")]));
        let app = fx.app();

        let pending = asked(&app, user, chat.id, "hello");
        let text = block_on(MemLayer::answer_in_full(app.answer(&pending))).unwrap();
        let reply = app.finish_reply(&pending, &text).unwrap();

        assert_eq!(reply.content.as_str(), "Hello!");
        assert_eq!(
            (reply.role, reply.chat_id, reply.user_id),
            (Role::Assistant, chat.id, user)
        );
        assert!(reply.created_at > pending.question().created_at);
        assert_ne!(reply.id, pending.question().id);
        let stored = stored.lock().unwrap();
        assert_eq!(stored.as_slice(), [pending.question().clone(), reply]);
    }

    #[test]
    fn empty_pieces_are_left_out_of_the_stream() {
        let session = any_session();
        let user = session.user;
        let chat = chat_owned_by(user);
        let (mut fx, _) = posting_fixture(&chat);
        fx.responder
            .expect_reply()
            .returning(|_| answering(vec![Ok(""), Ok("a"), Ok(""), Ok("b")]));
        let app = fx.app();
        let pending = asked(&app, user, chat.id, "hi");

        let pieces: Vec<String> = block_on(app.answer(&pending).try_collect()).unwrap();

        assert_eq!(pieces, ["a", "b"]);
    }

    #[test]
    fn an_assistant_that_refuses_times_out_or_breaks_off_fails_and_keeps_the_question() {
        let failures: [fn() -> ReplyStream; 3] = [
            || answering(vec![Err(ResponderError::Unavailable("HTTP 500".into()))]),
            || {
                answering(vec![
                    Ok("partial"),
                    Err(ResponderError::TimedOut("idle".into())),
                ])
            },
            || {
                answering(vec![
                    Ok("par"),
                    Ok("tial"),
                    Err(ResponderError::Broken("cut".into())),
                ])
            },
        ];
        for failure in failures {
            let session = any_session();
            let user = session.user;
            let chat = chat_owned_by(user);
            let (mut fx, stored) = posting_fixture(&chat);
            fx.responder.expect_reply().returning(move |_| failure());
            let app = fx.app();

            let pending = asked(&app, user, chat.id, "hi");
            let error = block_on(MemLayer::answer_in_full(app.answer(&pending))).unwrap_err();

            assert!(matches!(error, AppError::AssistantFailed(_)), "{error:?}");
            assert_eq!(
                stored.lock().unwrap().as_slice(),
                [pending.question().clone()]
            );
        }
    }

    #[test]
    fn an_answer_with_no_text_is_a_failure_and_stores_nothing() {
        let session = any_session();
        let user = session.user;
        let chat = chat_owned_by(user);
        let (fx, stored) = posting_fixture(&chat);
        let app = fx.app();
        let pending = asked(&app, user, chat.id, "hi");

        let error = app.finish_reply(&pending, " \n").unwrap_err();

        assert!(matches!(error, AppError::AssistantFailed(_)), "{error:?}");
        assert_eq!(stored.lock().unwrap().len(), 1);
    }

    #[test]
    fn what_was_written_before_the_reader_left_is_kept_and_nothing_is_kept_when_nothing_was() {
        let session = any_session();
        let user = session.user;
        let chat = chat_owned_by(user);
        let (fx, stored) = posting_fixture(&chat);
        let app = fx.app();
        let pending = asked(&app, user, chat.id, "hi");

        assert_eq!(
            app.keep_partial_reply(&pending, &Draft::default()).unwrap(),
            None
        );
        let mut draft = Draft::default();
        app.delivered(&mut draft, "Once");
        app.delivered(&mut draft, " upon");
        let kept = app.keep_partial_reply(&pending, &draft).unwrap().unwrap();

        assert_eq!(
            (kept.role, kept.content.as_str()),
            (Role::Assistant, "Once upon")
        );
        assert_eq!(stored.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_partial_reply_is_stamped_when_its_last_piece_went_out_not_when_it_is_stored() {
        let user = UserId::generate();
        let chat = chat_owned_by(user);
        let (mut fx, _) = posting_fixture(&chat);
        let ticks = Arc::new(Mutex::new(0));
        fx.clock = MockClock::new();
        fx.clock.expect_now().returning(move || {
            let mut tick = ticks.lock().unwrap();
            *tick += 1;
            NOW + chrono::TimeDelta::seconds(*tick)
        });
        let app = fx.app();
        let pending = asked(&app, user, chat.id, "hi");
        let mut draft = Draft::default();
        app.delivered(&mut draft, "Once");
        let delivered_at = pending.question().created_at + chrono::TimeDelta::seconds(1);

        let kept = app.keep_partial_reply(&pending, &draft).unwrap().unwrap();

        assert_eq!(kept.created_at, delivered_at);
    }

    #[test]
    fn history_past_the_character_budget_is_left_out_oldest_first() {
        let mut fx = Fixture::new();
        let user = UserId::generate();
        let chat = fx.stored_chat(user);
        fx.responder.expect_context().return_const(ContextWindow {
            messages: 3,
            chars: 10,
        });
        let newest_first = vec![
            message(&chat, Role::Assistant, "12345", 1),
            message(&chat, Role::User, "1234", 2),
            message(&chat, Role::Assistant, "123456", 3),
        ];
        let fitting = vec![newest_first[1].clone(), newest_first[0].clone()];
        fx.messages
            .expect_path()
            .with(always(), eq(chat.id), always(), eq(3), eq(10))
            .returning(move |_, _, _, _, _| Ok(newest_first.clone()));

        let pending = fx
            .app()
            .ask(
                Session::new(user, 0),
                chat.id,
                content("a long question, always sent"),
            )
            .unwrap();

        assert_eq!(pending.request.history, fitting);
    }

    #[test]
    fn nul_characters_from_the_model_are_dropped_from_the_pieces_themselves() {
        let user = UserId::generate();
        let chat = chat_owned_by(user);
        let (mut fx, _) = posting_fixture(&chat);
        fx.responder
            .expect_reply()
            .returning(|_| answering(vec![Ok("a\0b"), Ok("\0"), Ok("c")]));
        let app = fx.app();
        let pending = asked(&app, user, chat.id, "hi");

        let pieces: Vec<String> = block_on(app.answer(&pending).try_collect()).unwrap();

        assert_eq!(pieces, ["ab", "c"]);
    }

    #[test]
    fn posting_to_another_users_chat_is_forbidden_and_stores_nothing() {
        let mut fx = Fixture::new();
        let chat = chat_owned_by(UserId::generate());
        let id = chat.id;
        fx.chats
            .expect_find()
            .returning(move |_| Ok(Some((chat.clone(), 0))));
        fx.users.expect_is_current().returning(|_| Ok(true));
        fx.messages.expect_append().never();

        let error = fx.app().ask(any_session(), id, content("hi")).unwrap_err();

        assert!(matches!(error, AppError::NotChatOwner), "{error:?}");
    }

    #[test]
    fn posting_to_a_missing_chat_is_not_found() {
        let mut fx = Fixture::new();
        fx.chats.expect_find().returning(|_| Ok(None));
        fx.users.expect_is_current().returning(|_| Ok(true));

        let error = fx
            .app()
            .ask(any_session(), ChatId::generate(), content("hi"))
            .unwrap_err();

        assert!(matches!(error, AppError::ChatNotFound), "{error:?}");
    }

    #[test]
    fn posting_to_a_chat_deleted_after_the_check_is_not_found() {
        let mut fx = Fixture::new();
        let session = any_session();
        let chat = chat_owned_by(session.user);
        let found = chat.clone();
        // Found when asked, gone when the question is stored.
        let mut finds = 0;
        fx.chats.expect_find().returning(move |_| {
            finds += 1;
            Ok((finds == 1).then(|| (found.clone(), 0)))
        });
        fx.responder
            .expect_context()
            .return_const(ContextWindow::NONE);
        fx.messages.expect_append().returning(|_, _| Ok(None));

        let app = fx.app();
        let pending = app.ask(session, chat.id, content("hi")).unwrap();
        let error = app.store_question(&pending).unwrap_err();

        assert!(matches!(error, AppError::ChatNotFound), "{error:?}");
    }

    #[test]
    fn posting_after_a_message_deleted_since_the_check_is_a_missing_message() {
        let mut fx = Fixture::new();
        let session = any_session();
        let chat = fx.stored_chat(session.user);
        fx.responder
            .expect_context()
            .return_const(ContextWindow::NONE);
        // The chat is still there; the leaf the question follows is not.
        fx.messages.expect_append().returning(|_, _| Ok(None));

        let app = fx.app();
        let pending = app.ask(session, chat.id, content("hi")).unwrap();
        let error = app.store_question(&pending).unwrap_err();

        assert!(matches!(error, AppError::MessageNotFound), "{error:?}");
    }

    #[test]
    fn a_storage_outage_while_posting_is_unavailable() {
        let mut fx = Fixture::new();
        let session = any_session();
        let user = session.user;
        let chat = fx.stored_chat(user);
        let id = chat.id;
        fx.responder
            .expect_context()
            .return_const(ContextWindow::NONE);
        fx.messages
            .expect_append()
            .returning(|_, _| Err(RepositoryError::Unavailable("down".into())));

        let app = fx.app();
        let pending = app.ask(session, id, content("hi")).unwrap();
        let error = app.store_question(&pending).unwrap_err();

        assert!(matches!(error, AppError::Unavailable(_)), "{error:?}");
    }

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

    /// A fixture whose assistant answers every question at once with `reply`.
    fn answering_at_once(reply: &'static str) -> Fixture {
        let mut fx = Fixture::new();
        fx.responder
            .expect_fixed_reply()
            .returning(move || Some(reply.to_owned()));
        fx
    }

    #[test]
    fn an_assistant_with_a_fixed_reply_has_the_pair_stored_in_one_step_reply_after_question() {
        let mut fx = answering_at_once("Message received");
        let session = any_session();
        let chat = ChatId::generate();
        fx.chats.expect_find().never();
        fx.messages.expect_append().never();
        fx.messages
            .expect_append_exchange()
            .withf(move |owner, question, reply| {
                *owner == session
                    && (question.chat_id, reply.chat_id) == (chat, chat)
                    && (question.role, reply.role) == (Role::User, Role::Assistant)
                    && (question.user_id, reply.user_id) == (session.user, session.user)
                    && question.content.as_str() == "hello"
                    && reply.content.as_str() == "Message received"
                    && question.created_at == NOW
                    && reply.created_at > question.created_at
            })
            .times(1)
            .returning(|_, _, _| Ok(true));

        let app = fx.app();
        assert!(app.has_fixed_reply());
        let reply = app
            .post_with_fixed_reply(session, chat, content("hello"))
            .unwrap();

        assert_eq!(reply.content.as_str(), "Message received");
        assert_eq!(reply.role, Role::Assistant);
    }

    #[test]
    fn a_refused_exchange_is_explained_by_the_chat_lookup_and_nothing_is_stored() {
        // (whose chat: none, the session's or another's; the owner's generation; error)
        for (mine, generation, expected) in [
            (None, 0, "ChatNotFound"),
            (Some(false), 0, "NotChatOwner"),
            (Some(true), 1, "Unauthenticated"),
            // Owned and current, yet refused: deleted while the statement ran.
            (Some(true), 0, "ChatNotFound"),
        ] {
            let mut fx = answering_at_once("Message received");
            let session = any_session();
            let chat = ChatId::generate();
            fx.messages
                .expect_append_exchange()
                .returning(|_, _, _| Ok(false));
            fx.chats.expect_find().returning(move |_| {
                Ok(mine.map(|mine| {
                    let owner = if mine {
                        session.user
                    } else {
                        UserId::generate()
                    };
                    let mut found = chat_owned_by(owner);
                    found.id = chat;
                    (found, generation)
                }))
            });
            fx.users
                .expect_is_current()
                .returning(move |_| Ok(generation == 0));

            let error = fx
                .app()
                .post_with_fixed_reply(session, chat, content("hello"))
                .unwrap_err();

            assert!(
                format!("{error:?}").starts_with(expected),
                "{expected}: {error:?}"
            );
        }
    }

    #[test]
    fn an_assistant_that_must_be_asked_posts_nothing_in_one_step() {
        let mut fx = Fixture::new();
        fx.responder.expect_fixed_reply().returning(|| None);
        fx.messages.expect_append_exchange().never();

        let app = fx.app();
        assert!(!app.has_fixed_reply());
        let error = app
            .post_with_fixed_reply(any_session(), ChatId::generate(), content("hello"))
            .unwrap_err();

        assert!(matches!(error, AppError::AssistantFailed(_)), "{error:?}");
    }

    /// A fixture whose user owns `chat` with a question and its answer in it, whose
    /// assistant wants two messages of history: the session, the question and the answer.
    fn with_an_exchange(fx: &mut Fixture, chat: &Chat) -> (Session, Message, Message) {
        let session = Session::new(chat.owner, 0);
        let earlier = message(chat, Role::Assistant, "earlier", 3);
        let question = Message {
            parent_id: Some(earlier.id),
            ..message(chat, Role::User, "Hi", 2)
        };
        let answer = Message {
            parent_id: Some(question.id),
            ..message(chat, Role::Assistant, "Hello!", 1)
        };
        for found in [question.clone(), answer.clone()] {
            fx.messages
                .expect_find_message()
                .with(eq(chat.id), eq(found.id))
                .returning(move |_, _| Ok(Some(found.clone())));
        }
        fx.responder.expect_context().return_const(ContextWindow {
            messages: 2,
            chars: 1_000,
        });
        fx.messages
            .expect_path()
            .with(eq(None), eq(chat.id), always(), eq(2), eq(1_000))
            .returning(move |_, _, _, _, _| Ok(vec![earlier.clone()]));
        (session, question, answer)
    }

    #[test]
    fn an_answer_asked_again_answers_its_question_after_the_questions_ancestors() {
        let mut fx = Fixture::new();
        let chat = fx.stored_chat(UserId::generate());
        let (session, question, answer) = with_an_exchange(&mut fx, &chat);
        fx.messages.expect_append().never();
        fx.messages
            .expect_make_active()
            .with(eq(chat.id), eq(question.id))
            .times(1)
            .returning(|_, _| Ok(true));

        let app = fx.app();
        let pending = app.regenerate(session, chat.id, answer.id).unwrap();
        let stored = app.store_question(&pending).unwrap();

        assert!(!pending.has_new_question());
        assert_eq!(pending.question(), &question);
        assert_eq!(stored, question);
        assert_eq!(pending.request.history.len(), 1);
    }

    #[test]
    fn a_question_asked_again_is_answered_again() {
        let mut fx = Fixture::new();
        let chat = fx.stored_chat(UserId::generate());
        let (session, question, _) = with_an_exchange(&mut fx, &chat);

        let pending = fx.app().regenerate(session, chat.id, question.id).unwrap();

        assert_eq!(pending.question(), &question);
    }

    #[test]
    fn an_edit_is_a_new_question_with_the_originals_parent_and_the_new_text() {
        let mut fx = Fixture::new();
        let chat = fx.stored_chat(UserId::generate());
        let (session, question, _) = with_an_exchange(&mut fx, &chat);

        let pending = fx
            .app()
            .edit(session, chat.id, question.id, content("Hi again"))
            .unwrap();

        let edited = pending.question();
        assert!(pending.has_new_question());
        assert_ne!(edited.id, question.id);
        assert_eq!(edited.parent_id, question.parent_id);
        assert_eq!(edited.content.as_str(), "Hi again");
        assert_eq!(edited.role, Role::User);
    }

    #[test]
    fn editing_the_assistants_message_is_refused() {
        let mut fx = Fixture::new();
        let chat = fx.stored_chat(UserId::generate());
        let (session, _, answer) = with_an_exchange(&mut fx, &chat);

        let error = fx
            .app()
            .edit(session, chat.id, answer.id, content("No"))
            .unwrap_err();

        assert!(matches!(error, AppError::NotAUserMessage), "{error:?}");
    }

    #[test]
    fn a_message_the_chat_does_not_have_is_not_found_on_every_tree_operation() {
        let mut fx = Fixture::new();
        let chat = fx.stored_chat(UserId::generate());
        let session = Session::new(chat.owner, 0);
        let missing = MessageId::generate();
        fx.messages.expect_find_message().returning(|_, _| Ok(None));
        fx.messages.expect_activate().returning(|_, _| Ok(None));
        fx.messages
            .expect_delete_subtree()
            .returning(|_, _| Ok(false));
        let app = fx.app();

        let errors = [
            app.regenerate(session, chat.id, missing).err(),
            app.edit(session, chat.id, missing, content("x")).err(),
            app.switch_branch(session, chat.id, missing).err(),
            app.delete_message(session, chat.id, missing).err(),
        ];

        for error in errors {
            assert!(
                matches!(error, Some(AppError::MessageNotFound)),
                "{error:?}"
            );
        }
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

    #[test]
    fn a_reply_takes_the_active_path_only_while_its_question_holds_it() {
        let user = UserId::generate();
        let chat = chat_owned_by(user);
        let (mut fx, stored) = posting_fixture(&chat);
        fx.responder
            .expect_reply()
            .returning(|_| answering(vec![Ok("Hi")]));
        fx.messages.checkpoint();
        let log = stored.clone();
        fx.messages.expect_append().returning(move |m, activation| {
            log.lock().unwrap().push(m.clone());
            let expected = match m.role {
                Role::User => Activation::Always,
                Role::Assistant => Activation::IfActiveIs(m.parent_id.unwrap()),
            };
            assert_eq!(activation, expected);
            Ok(Some(vec![m.id]))
        });
        let app = fx.app();
        let pending = asked(&app, user, chat.id, "hi");

        let reply = app.finish_reply(&pending, "Hi").unwrap();

        assert_eq!(reply.parent_id, Some(pending.question().id));
        assert_eq!(stored.lock().unwrap().len(), 2);
    }
}
