//! Replies that belong to the service, not to a connection: a reply is stored from its
//! start (`generating`), its pieces are appended in batches by the instance that runs
//! it, and it ends in one statement (`complete`, `stopped`, `failed`). Any instance can
//! read it (to resume a stream), ask it to stop, or mark it failed when the instance
//! that ran it died.
//!
//! Running a generation (the model's stream, the batches, the listeners) is the edge's
//! job, on its runtime; these are the steps it takes, each a use case on the blocking
//! pool.

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use memlayer_domain::{
    Chat, ChatId, ChatTitle, Message, MessageContent, MessageId, MessageStatus, Role, Session,
    TokenUsage, UsageDay, reply_timestamp,
};
use memlayer_ports::{
    ReplyRequest, ReplyState, ResponderError, StartedReply, StoredReply, TITLE_PROMPT_CHARS,
};

use crate::posting::{AnswerStream, PendingReply};
use crate::{AppError, MemLayer};

/// A reply just started: its question as stored, and the reply itself (`generating`,
/// no text yet), with what the model is to be asked.
#[derive(Debug, Clone)]
pub struct StartedGeneration {
    /// What the assistant is asked.
    pub request: ReplyRequest,
    /// The question, as stored (with its siblings); new when posted or edited.
    pub question: Message,
    /// Whether the question was stored by this request (posted or edited), not answered
    /// again.
    pub new_question: bool,
    /// The reply as it starts.
    pub reply: Message,
}

impl MemLayer {
    /// Starts the reply to `pending`: stores its question (when new) and the reply,
    /// `generating` and empty, as the chat's active leaf, in one unit of work.
    /// [`AppError::ReplyInProgress`] (nothing stored) while another reply is generating
    /// in the chat.
    pub fn start_reply(&self, pending: PendingReply) -> Result<StartedGeneration, AppError> {
        let PendingReply {
            request,
            new_question,
        } = pending;
        let question = &request.question;
        let now = self.ports.clock.now();
        let day = UsageDay::of(now);
        let id = MessageId::generate();
        let reply = Message {
            id,
            chat_id: question.chat_id,
            user_id: request.chat.owner,
            role: Role::Assistant,
            content: MessageContent::from_trusted(String::new()),
            created_at: reply_timestamp(question.created_at, now),
            parent_id: Some(question.id),
            status: MessageStatus::Generating,
            sibling_ids: vec![id],
            usage: None,
        };
        match self
            .ports
            .replies
            .start(question, new_question, &reply, self.allowance(), day)?
        {
            StartedReply::Started {
                question_siblings,
                reply_siblings,
            } => Ok(StartedGeneration {
                question: Message {
                    sibling_ids: question_siblings,
                    ..request.question.clone()
                },
                reply: Message {
                    sibling_ids: reply_siblings,
                    ..reply
                },
                request,
                new_question,
            }),
            StartedReply::Busy => Err(AppError::ReplyInProgress),
            StartedReply::UserBusy => Err(AppError::TooManyRepliesAtOnce),
            StartedReply::OverQuota => Err(self.tokens_spent(day)),
            // Its tokens were revoked with it.
            StartedReply::Disabled => Err(AppError::Unauthenticated),
            StartedReply::Gone => Err(self.gone(request.question.chat_id)?),
        }
    }

    /// Appends a batch of a generating reply's `pieces` to the `stored_pieces` pieces
    /// (`stored_chars` characters) stored so far. What the store says of the reply then.
    pub fn append_to_reply(
        &self,
        reply: MessageId,
        stored_pieces: usize,
        stored_chars: usize,
        pieces: &[String],
    ) -> Result<ReplyState, AppError> {
        Ok(self
            .ports
            .replies
            .append_pieces(reply, stored_pieces, stored_chars, pieces)?)
    }

    /// Ends a generating reply as `status`, with its whole `text`, the ends of all its
    /// pieces and its `usage`, which counts on its owner's tokens of today (the day it
    /// ended); an assistant without a model spends nothing, and its replies have no
    /// usage. The reply as stored; [`AppError::ChatNotFound`] or
    /// [`AppError::MessageNotFound`] if it was deleted meanwhile, and
    /// [`AppError::AssistantFailed`] if another instance ended it (taking this one for
    /// dead).
    pub fn end_reply(
        &self,
        reply: &Message,
        text: &str,
        piece_ends: &[usize],
        status: MessageStatus,
        usage: TokenUsage,
    ) -> Result<Message, AppError> {
        let day = self.today();
        let usage = self
            .ports
            .responder
            .fixed_reply()
            .is_none()
            .then_some(usage);
        match self
            .ports
            .replies
            .finish(reply, text, piece_ends, status, usage, day)?
        {
            Some(stored) => Ok(stored),
            None => {
                // Deleted, or ended elsewhere, while the model wrote it: what the model
                // did still counts.
                self.charge_lost_reply(reply, usage);
                Err(self.reply_gone(reply))
            }
        }
    }

    /// Counts the tokens of a reply that could not be stored with them (its chat or
    /// branch was deleted, another instance ended it, or it had no text) on its owner's
    /// tokens of today: deleting gives no tokens back, and the model was asked anyway.
    /// A failure to count is logged: it must not hide why the reply was lost.
    pub fn charge_lost_reply(&self, reply: &Message, usage: Option<TokenUsage>) {
        let Some(usage) = usage.filter(|_| self.ports.responder.fixed_reply().is_none()) else {
            return;
        };
        let day = self.today();
        if let Err(error) = self.ports.replies.charge(reply.user_id, usage.total(), day) {
            tracing::warn!(%error, reply = %reply.id.as_uuid(), "a lost reply's tokens were not counted");
        }
    }

    /// Deletes a reply that failed before it had any text: its question stands alone,
    /// as the active leaf again.
    pub fn discard_reply(&self, reply: &Message) -> Result<(), AppError> {
        self.ports
            .messages
            .delete_subtree(reply.chat_id, reply.id)?;
        Ok(())
    }

    /// Why a reply can no longer be written to: its chat or its branch was deleted, or
    /// (still stored) another instance ended it.
    pub fn reply_gone(&self, reply: &Message) -> AppError {
        match self.ports.replies.read(reply.chat_id, reply.id) {
            Ok(Some(_)) => ended_elsewhere(),
            Ok(None) => self.gone(reply.chat_id).unwrap_or_else(|error| error),
            Err(error) => error.into(),
        }
    }

    /// An assistant's reply of one of the user's chats, with where its pieces end, as
    /// stored: to resume its stream. [`AppError::NotAReply`] on a user's message.
    pub fn reply_of(
        &self,
        session: Session,
        chat: ChatId,
        message: MessageId,
    ) -> Result<StoredReply, AppError> {
        let chat = self.owned_chat(session, chat)?;
        self.stored_reply(chat.id, message)
    }

    /// The reply `message` of `chat`, read again (a stream following it from
    /// another instance); the chat's ownership was checked when the stream began.
    pub fn stored_reply(&self, chat: ChatId, message: MessageId) -> Result<StoredReply, AppError> {
        let stored = self
            .ports
            .replies
            .read(chat, message)?
            .ok_or_else(|| self.gone(chat).unwrap_or_else(|error| error))?;
        if stored.message.role != Role::Assistant {
            return Err(AppError::NotAReply);
        }
        Ok(stored)
    }

    /// Asks a reply of one of the user's chats to stop, wherever it is generating.
    /// The reply as stored at that moment (it may have ended already).
    pub fn request_stop(
        &self,
        session: Session,
        chat: ChatId,
        message: MessageId,
    ) -> Result<StoredReply, AppError> {
        let chat = self.owned_chat(session, chat)?;
        self.ports.replies.request_stop(chat.id, message)?;
        self.stored_reply(chat.id, message)
    }

    /// What the store says of the replies this instance generates; with `heartbeat`,
    /// noting that this instance is alive.
    pub fn watch_replies(
        &self,
        replies: &[MessageId],
        heartbeat: bool,
    ) -> Result<Vec<ReplyState>, AppError> {
        Ok(self.ports.replies.watch(replies, heartbeat)?)
    }

    /// Marks the replies of instances silent for `silence` as `failed` (any instance
    /// may run it; it is idempotent). How many it marked.
    pub fn reap_replies(&self, silence: Duration) -> Result<usize, AppError> {
        Ok(self.ports.replies.reap(silence)?)
    }

    /// Marks every reply still generating as `failed`: on a database only this instance
    /// uses (SQLite), what the last run left generating when it died. How many it
    /// marked.
    pub fn fail_orphaned_replies(&self) -> Result<usize, AppError> {
        Ok(self.ports.replies.fail_generating()?)
    }

    /// Whether the model is to name the chat of `started`: a model answers, the
    /// question opens an empty chat, and the chat's title is still its default.
    pub fn wants_title(&self, started: &StartedGeneration) -> bool {
        let chat = &started.request.chat;
        self.ports.responder.fixed_reply().is_none()
            && started.new_question
            && started.question.parent_id.is_none()
            && chat.active_message_id.is_none()
            && chat.title == ChatTitle::default_at(chat.created_at)
    }

    /// The model's title for a chat that opens with `question`, as it is written.
    pub fn title(&self, question: &MessageContent) -> AnswerStream {
        self.ports
            .responder
            .title(question)
            // A title cut at its length limit is a title.
            .take_while(|piece| {
                std::future::ready(!matches!(piece, Err(ResponderError::LimitReached)))
            })
            .map_err(AppError::AssistantFailed)
            .boxed()
    }

    /// Names `chat` from the model's `text` ([`ChatTitle::from_model`]), unless its
    /// title changed meanwhile (a rename by its owner wins), and counts the title
    /// request's tokens (`reported`, else estimated from the `question` it was asked
    /// about) on the owner's tokens of today. The chat as it is then, or `None` when
    /// nothing changed.
    pub fn name_chat(
        &self,
        chat: &Chat,
        question: &MessageContent,
        text: &str,
        reported: Option<TokenUsage>,
    ) -> Result<Option<Chat>, AppError> {
        // What the title request sent of the question (its instructions, like a reply's
        // system prompt, are left out of an estimate).
        let sent = question.as_str().chars().count().min(TITLE_PROMPT_CHARS);
        let usage = TokenUsage::or_estimate(reported, sent, text.chars().count());
        let day = self.today();
        self.ports.replies.charge(chat.owner, usage.total(), day)?;
        let Some(title) = ChatTitle::from_model(text) else {
            return Ok(None);
        };
        let default = ChatTitle::default_at(chat.created_at);
        if title == default || !self.ports.chats.retitle_if(chat.id, &default, &title)? {
            return Ok(None);
        }
        Ok(self.ports.chats.find(chat.id)?.map(|(chat, _)| chat))
    }
}

/// A reply another instance ended (marking it failed, as if this one were dead): the
/// model's work here is lost, as when the model fails.
fn ended_elsewhere() -> AppError {
    AppError::AssistantFailed(ResponderError::Broken(
        "another instance ended the reply (this one was taken for dead)".into(),
    ))
}

#[cfg(test)]
mod tests {
    use memlayer_domain::UserId;
    use memlayer_ports::{ContextWindow, RepositoryError};
    use mockall::predicate::eq;

    use super::*;
    use crate::testing::{Fixture, NOW, any_session, content};

    /// A fixture whose user owns a chat and whose assistant wants no history.
    fn asking() -> (Fixture, Session, memlayer_domain::Chat) {
        let mut fx = Fixture::new();
        let session = any_session();
        let chat = fx.stored_chat(session.user);
        fx.responder
            .expect_context()
            .return_const(ContextWindow::NONE);
        (fx, session, chat)
    }

    #[test]
    fn a_reply_starts_generating_and_empty_below_its_question_stamped_after_it() {
        let (mut fx, session, chat) = asking();
        fx.replies
            .expect_start()
            .withf(|question, new, reply, _, _| {
                *new && reply.parent_id == Some(question.id)
                    && reply.created_at > question.created_at
                    && (reply.role, reply.status) == (Role::Assistant, MessageStatus::Generating)
                    && reply.content.as_str().is_empty()
            })
            .times(1)
            .returning(|question, _, reply, _, _| {
                Ok(StartedReply::Started {
                    question_siblings: vec![MessageId::generate(), question.id],
                    reply_siblings: vec![reply.id],
                })
            });
        let app = fx.app();
        let pending = app.ask(session, chat.id, content("hi")).unwrap();

        let started = app.start_reply(pending).unwrap();

        assert!(started.new_question);
        assert_eq!(started.question.sibling_ids.len(), 2);
        assert_eq!(started.reply.chat_id, chat.id);
        assert_eq!(started.reply.user_id, session.user);
    }

    #[test]
    fn a_chat_with_a_reply_generating_takes_no_other() {
        let (mut fx, session, chat) = asking();
        fx.replies
            .expect_start()
            .returning(|_, _, _, _, _| Ok(StartedReply::Busy));
        let app = fx.app();
        let pending = app.ask(session, chat.id, content("hi")).unwrap();

        let error = app.start_reply(pending).unwrap_err();

        assert!(matches!(error, AppError::ReplyInProgress), "{error:?}");
    }

    #[test]
    fn a_reply_whose_chat_or_branch_went_away_is_not_found() {
        for (chat_still_there, expected) in [(true, "MessageNotFound"), (false, "ChatNotFound")] {
            let mut fx = Fixture::new();
            let session = any_session();
            let chat = crate::testing::chat_owned_by(session.user);
            let found = chat.clone();
            let mut finds = 0;
            fx.chats.expect_find().returning(move |_| {
                finds += 1;
                Ok((finds == 1 || chat_still_there).then(|| (found.clone(), 0)))
            });
            fx.responder
                .expect_context()
                .return_const(ContextWindow::NONE);
            fx.replies
                .expect_start()
                .returning(|_, _, _, _, _| Ok(StartedReply::Gone));
            let app = fx.app();
            let pending = app.ask(session, chat.id, content("hi")).unwrap();

            let error = app.start_reply(pending).unwrap_err();

            assert!(format!("{error:?}").starts_with(expected), "{error:?}");
        }
    }

    #[test]
    fn resuming_or_stopping_a_users_message_is_refused() {
        let mut fx = Fixture::new();
        let session = any_session();
        let chat = fx.stored_chat(session.user);
        let question = Message {
            id: MessageId::generate(),
            chat_id: chat.id,
            user_id: session.user,
            role: Role::User,
            content: content("hi"),
            created_at: NOW,
            parent_id: None,
            status: MessageStatus::Complete,
            sibling_ids: vec![],
            usage: None,
        };
        let id = question.id;
        fx.replies.expect_read().returning(move |_, _| {
            Ok(Some(StoredReply {
                message: question.clone(),
                piece_ends: vec![],
            }))
        });
        fx.replies.expect_request_stop().returning(|_, _| Ok(false));

        let app = fx.app();

        assert!(matches!(
            app.reply_of(session, chat.id, id),
            Err(AppError::NotAReply)
        ));
        assert!(matches!(
            app.request_stop(session, chat.id, id),
            Err(AppError::NotAReply)
        ));
    }

    #[test]
    fn someone_elses_reply_is_neither_read_nor_stopped() {
        let mut fx = Fixture::new();
        let chat = fx.stored_chat(UserId::generate());
        fx.users.expect_is_current().returning(|_| Ok(true));
        fx.replies.expect_read().never();
        fx.replies.expect_request_stop().never();
        let app = fx.app();
        let stranger = any_session();

        let read = app.reply_of(stranger, chat.id, MessageId::generate());
        let stopped = app.request_stop(stranger, chat.id, MessageId::generate());

        assert!(matches!(read, Err(AppError::NotChatOwner)), "{read:?}");
        assert!(
            matches!(stopped, Err(AppError::NotChatOwner)),
            "{stopped:?}"
        );
    }

    #[test]
    fn replies_silent_for_the_window_are_reaped_and_an_outage_is_unavailable() {
        let mut fx = Fixture::new();
        fx.replies
            .expect_reap()
            .with(eq(Duration::from_secs(30)))
            .times(1)
            .returning(|_| Ok(2));
        fx.replies
            .expect_finish()
            .returning(|_, _, _, _, _, _| Err(RepositoryError::Unavailable("down".into())));
        fx.responder.expect_fixed_reply().return_const(None);
        let app = fx.app();

        assert_eq!(app.reap_replies(Duration::from_secs(30)).unwrap(), 2);
        let reply = Message {
            id: MessageId::generate(),
            chat_id: memlayer_domain::ChatId::generate(),
            user_id: UserId::generate(),
            role: Role::Assistant,
            content: MessageContent::from_trusted(String::new()),
            created_at: NOW,
            parent_id: None,
            status: MessageStatus::Generating,
            sibling_ids: vec![],
            usage: None,
        };
        let error = app
            .end_reply(
                &reply,
                "",
                &[],
                MessageStatus::Complete,
                memlayer_domain::TokenUsage::estimate(0, 0),
            )
            .unwrap_err();
        assert!(matches!(error, AppError::Unavailable(_)), "{error:?}");
    }
}
