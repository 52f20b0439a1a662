//! Posting a message, and answering again (regenerate, edit): checking the question and
//! gathering what the assistant sees, then the one-step post of the fixed reply. A
//! reply's life once started is in `generation`; reading the conversation in `listing`.

use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use memlayer_domain::{
    Allowance, Chat, ChatId, Message, MessageContent, MessageId, MessageStatus, PathEnd, Role,
    Session, UsageDay, reply_timestamp,
};
use memlayer_ports::{ReplyPiece, ReplyRequest, ResponderError};

use crate::{AppError, MemLayer};

/// A user's message, waiting for the assistant's answer.
///
/// Posting a message takes steps, so that nothing holds a thread or a database
/// connection while the model writes: [`MemLayer::ask`] checks the question and gathers
/// what the assistant sees (blocking); [`MemLayer::start_reply`] stores it with the
/// reply, `generating` (blocking); the edge then runs the generation
/// ([`MemLayer::answer`], asynchronous), appending its pieces in batches and ending it
/// ([`crate::generation`]).
///
/// Regenerating an answer ([`MemLayer::regenerate`]) and editing a question
/// ([`MemLayer::edit`]) take the same steps; a regenerated answer's question is stored
/// already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReply {
    pub(crate) request: ReplyRequest,
    /// Whether the question is new (to be stored), not one stored before.
    pub(crate) new_question: bool,
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

    /// What the assistant is to be asked.
    pub fn request(&self) -> &ReplyRequest {
        &self.request
    }
}

/// The assistant's answer as it is written: its pieces in order, or the failure that
/// ended it. Dropping the stream closes the connection to the model.
pub type AnswerStream = BoxStream<'static, Result<ReplyPiece, AppError>>;

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
        let chat = self.available_chat(session, chat)?;
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
        let chat = self.available_chat(session, chat)?;
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
        let chat = self.available_chat(session, chat)?;
        let original = self.message_of(&chat, message)?;
        if original.role != Role::User {
            return Err(AppError::NotAUserMessage);
        }
        let parent = original.parent_id;
        let history = self.history(&chat, parent.map(PathEnd::At))?;
        Ok(self.pending(chat, history, parent, content))
    }

    /// One of the user's chats with no reply generating in it
    /// ([`AppError::ReplyInProgress`]), of a user with fewer replies generating than
    /// they may have ([`AppError::TooManyRepliesAtOnce`]): checked before the model is
    /// asked, so a refused request costs the model nothing. (Starting the reply checks
    /// both again, in its unit of work, for a reply that started meanwhile.)
    fn available_chat(&self, session: Session, chat: ChatId) -> Result<Chat, AppError> {
        let chat = self.owned_chat(session, chat)?;
        let day = self.today();
        let spending = self
            .ports
            .replies
            .generating(Some(chat.id), chat.owner, day)?
            .ok_or(AppError::ChatNotFound)?;
        if spending.in_chat {
            return Err(AppError::ReplyInProgress);
        }
        if spending.of_user >= self.user_max_generations {
            return Err(AppError::TooManyRepliesAtOnce);
        }
        let limit = self.allowance().token_limit(spending.own_token_limit);
        if limit.is_some_and(|limit| spending.tokens_used >= limit) {
            return Err(self.tokens_spent(day));
        }
        Ok(chat)
    }

    /// [`AppError::DailyTokensSpent`], until the end of `day`.
    pub(crate) fn tokens_spent(&self, day: UsageDay) -> AppError {
        AppError::DailyTokensSpent {
            retry_after: (day.end() - self.ports.clock.now())
                .to_std()
                .unwrap_or_default(),
        }
    }

    /// What a reply may spend: the limits the operator set.
    pub(crate) fn allowance(&self) -> Allowance {
        Allowance {
            tokens_per_day: self.user_tokens_per_day,
            generations: self.user_max_generations,
        }
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
            usage: None,
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
            usage: None,
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
            usage: None,
        };
        if self
            .ports
            .messages
            .append_exchange(session, &question, &reply)?
        {
            return Ok(reply);
        }
        // Nothing stored: not the user's chat, no such chat, revoked tokens, or a reply
        // generating in the chat.
        self.owned_chat(session, chat)?;
        let day = self.today();
        if self
            .ports
            .replies
            .generating(Some(chat), session.user, day)?
            .is_some_and(|spending| spending.in_chat)
        {
            return Err(AppError::ReplyInProgress);
        }
        // The chat was the user's yet the exchange was refused: it was deleted
        // meanwhile.
        Err(AppError::ChatNotFound)
    }

    /// The assistant's answer to `request`, as it is written. NUL characters (which no
    /// database text can hold) are dropped, so what a reader is sent is what is stored;
    /// empty pieces are left out.
    pub fn answer(&self, request: &ReplyRequest) -> AnswerStream {
        self.ports
            .responder
            .reply(request.clone())
            .map_ok(|piece| match piece {
                ReplyPiece::Text(text) if text.contains('\0') => {
                    ReplyPiece::Text(text.replace('\0', ""))
                }
                piece => piece,
            })
            .try_filter(|piece| {
                std::future::ready(!matches!(piece, ReplyPiece::Text(text) if text.is_empty()))
            })
            .map_err(AppError::AssistantFailed)
            .boxed()
    }

    /// What was deleted from under a request that found `chat` and a message of it a
    /// moment before: the chat, or only the message (a branch deleted meanwhile).
    pub(crate) fn gone(&self, chat: ChatId) -> Result<AppError, AppError> {
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
    use memlayer_domain::{Chat, UserId};
    use memlayer_ports::{ContextWindow, Generating, ReplyStream, ResponderError, StartedReply};
    use mockall::Sequence;
    use mockall::predicate::{always, eq};

    use super::*;
    use crate::testing::{Fixture, NOW, any_session, chat_owned_by, content};

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
            usage: None,
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
        fx.replies.expect_start().returning(move |q, new, r, _, _| {
            let mut log = log.lock().unwrap();
            if new {
                log.push(q.clone());
            }
            log.push(r.clone());
            Ok(StartedReply::Started {
                question_siblings: vec![q.id],
                reply_siblings: vec![r.id],
            })
        });
        (fx, stored)
    }

    /// Asks, as the HTTP layer does.
    fn asked(app: &MemLayer, user: UserId, chat: ChatId, text: &str) -> PendingReply {
        app.ask(Session::new(user, 0), chat, content(text)).unwrap()
    }

    /// The texts of the answer to `pending` (no usage expected).
    fn texts(app: &MemLayer, pending: &PendingReply) -> Vec<String> {
        let pieces: Vec<ReplyPiece> = block_on(app.answer(&pending.request).try_collect()).unwrap();
        pieces
            .into_iter()
            .map(|piece| match piece {
                ReplyPiece::Text(text) => text,
                ReplyPiece::Usage(usage) => panic!("{usage:?}"),
            })
            .collect()
    }

    fn answering(pieces: Vec<Result<&'static str, ResponderError>>) -> ReplyStream {
        stream::iter(
            pieces
                .into_iter()
                .map(|piece| piece.map(|text| ReplyPiece::Text(text.to_owned()))),
        )
        .boxed()
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
        fx.replies
            .expect_start()
            .withf(|q, new, r, _, _| {
                q.role == Role::User
                    && q.content.as_str() == "And now?"
                    && *new
                    && r.status == MessageStatus::Generating
            })
            .times(1)
            .in_sequence(&mut order)
            .returning(|q, _, r, _, _| {
                Ok(StartedReply::Started {
                    question_siblings: vec![q.id],
                    reply_siblings: vec![r.id],
                })
            });

        let app = fx.app();
        let pending = app.ask(session, chat.id, content("And now?")).unwrap();
        app.start_reply(pending.clone()).unwrap();

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
            "stored before start_reply"
        );
        let started = app.start_reply(pending.clone()).unwrap();
        assert_eq!(
            stored.lock().unwrap().as_slice(),
            [pending.question().clone(), started.reply]
        );
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

        let pieces = texts(&app, &pending);

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
            let (mut fx, _) = posting_fixture(&chat);
            fx.responder.expect_reply().returning(move |_| failure());
            let app = fx.app();

            let pending = asked(&app, user, chat.id, "hi");
            let error = block_on(
                app.answer(&pending.request)
                    .try_collect::<Vec<ReplyPiece>>(),
            )
            .unwrap_err();

            assert!(matches!(error, AppError::AssistantFailed(_)), "{error:?}");
        }
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

        let pieces = texts(&app, &pending);

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
    fn past_the_days_tokens_a_question_is_refused_until_midnight_and_the_model_is_not_asked() {
        let mut fx = Fixture::new();
        let session = any_session();
        let chat = fx.stored_chat(session.user);
        fx.replies.checkpoint();
        fx.replies.expect_generating().returning(|_, _, _| {
            Ok(Some(Generating {
                tokens_used: 500,
                ..Generating::default()
            }))
        });
        fx.replies.expect_start().never();
        fx.responder.expect_reply().never();
        let app = fx.app().with_user_tokens_per_day(Some(500));

        let error = app.ask(session, chat.id, content("hi")).unwrap_err();

        // NOW is 09:30:15 UTC: 14 h 29 min 45 s to midnight.
        assert!(
            matches!(error, AppError::DailyTokensSpent { retry_after }
                if retry_after == std::time::Duration::from_secs(52_185)),
            "{error:?}"
        );
    }

    #[test]
    fn a_users_own_limit_wins_over_the_default_both_ways() {
        for (own, default, used, allowed) in [
            (Some(1_000), Some(500), 600, true),
            (Some(100), None, 100, false),
            (None, Some(500), 499, true),
            (None, None, u64::MAX, true),
        ] {
            let mut fx = Fixture::new();
            let session = any_session();
            let chat = fx.stored_chat(session.user);
            fx.replies.checkpoint();
            fx.replies.expect_generating().returning(move |_, _, _| {
                Ok(Some(Generating {
                    tokens_used: used,
                    own_token_limit: own,
                    ..Generating::default()
                }))
            });
            fx.responder
                .expect_context()
                .return_const(ContextWindow::NONE);
            let app = fx.app().with_user_tokens_per_day(default);

            let asked = app.ask(session, chat.id, content("hi"));

            assert_eq!(
                asked.is_ok(),
                allowed,
                "{own:?} {default:?} {used}: {asked:?}"
            );
        }
    }

    #[test]
    fn a_chat_with_a_reply_generating_takes_no_question_and_the_model_is_not_asked() {
        let mut fx = Fixture::new();
        let session = any_session();
        let chat = fx.stored_chat(session.user);
        fx.replies.checkpoint();
        fx.replies.expect_generating().returning(|_, _, _| {
            Ok(Some(Generating {
                in_chat: true,
                of_user: 1,
                ..Generating::default()
            }))
        });
        fx.replies.expect_start().never();
        fx.responder.expect_reply().never();
        let app = fx.app();

        for error in [
            app.ask(session, chat.id, content("hi")).err(),
            app.regenerate(session, chat.id, MessageId::generate())
                .err(),
            app.edit(session, chat.id, MessageId::generate(), content("x"))
                .err(),
        ] {
            assert!(
                matches!(error, Some(AppError::ReplyInProgress)),
                "{error:?}"
            );
        }
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
            fx.replies
                .expect_generating()
                .returning(|_, _, _| Ok(Some(Generating::default())));

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
        let asked_again = question.id;
        fx.replies
            .expect_start()
            .withf(move |q, new, _, _, _| q.id == asked_again && !*new)
            .times(1)
            .returning(|q, _, r, _, _| {
                Ok(StartedReply::Started {
                    question_siblings: vec![q.id],
                    reply_siblings: vec![r.id],
                })
            });

        let app = fx.app();
        let pending = app.regenerate(session, chat.id, answer.id).unwrap();
        let started = app.start_reply(pending.clone()).unwrap();

        assert!(!pending.has_new_question());
        assert_eq!(pending.question(), &question);
        assert_eq!(started.question, question);
        assert_eq!(started.reply.parent_id, Some(question.id));
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
}
