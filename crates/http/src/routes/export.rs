//! The streamed body of `GET /auth/me/export`: one JSON document written page by page
//! (the account, its chats with their messages, then its folders).
//!
//! Each page (100 chats, or 1,000 messages of one chat) is one hop to the blocking pool
//! and one chunk of the body, sent before the next page is read: memory stays bounded
//! whatever the account's size, a slow reader only slows its own export (the next page
//! is read when the previous chunk is taken), and other requests get the blocking
//! threads between pages.

use std::collections::VecDeque;

use actix_web::web::{Bytes, Data};
use futures_util::stream::{self, Stream};
use memlayer_app::domain::{Chat, Cursor, Session, User};

use crate::blocking::blocking;
use crate::dto::{ChatResponse, FolderResponse, MessageResponse, UserResponse};
use crate::error::ApiError;
use crate::state::ApiState;

/// The opening of the document: `{"account": {...}, "chats": [`.
pub(crate) fn head(account: User) -> Result<Bytes, ApiError> {
    let account = serde_json::to_string(&UserResponse::from(account)).map_err(internal)?;
    Ok(Bytes::from(format!(r#"{{"account":{account},"chats":["#)))
}

/// Where an export is.
struct Export {
    state: Data<ApiState>,
    session: Session,
    /// The opening, until it is sent.
    head: Option<Bytes>,
    /// Chats read but not yet written.
    chats: VecDeque<Chat>,
    /// Where the next page of chats starts; `None` before the first.
    chats_after: Option<Cursor>,
    /// Whether every chat has been read.
    chats_done: bool,
    /// The chat being written, and where its next page of messages starts.
    current: Option<(Chat, Option<Cursor>)>,
    /// Whether a chat was written already (the next needs a comma).
    wrote_chat: bool,
    /// Whether the document is closed.
    finished: bool,
}

/// The body: the opening, then each chat with its messages, then the closing.
pub(crate) fn body(
    state: Data<ApiState>,
    session: Session,
    head: Bytes,
) -> impl Stream<Item = Result<Bytes, ApiError>> {
    let export = Export {
        state,
        session,
        head: Some(head),
        chats: VecDeque::new(),
        chats_after: None,
        chats_done: false,
        current: None,
        wrote_chat: false,
        finished: false,
    };
    stream::unfold(export, |mut export| async move {
        match export.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), export)),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(error = %error, "export stopped on an error");
                // Ends the stream: the client sees a cut body, never a false whole one.
                export.finished = true;
                export.chats_done = true;
                export.chats.clear();
                export.current = None;
                Some((Err(error), export))
            }
        }
    })
}

impl Export {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        if let Some(head) = self.head.take() {
            return Ok(Some(head));
        }
        loop {
            if let Some((chat, after)) = self.current.take() {
                return self.messages_of(chat, after).await.map(Some);
            }
            if let Some(chat) = self.chats.pop_front() {
                return self.open_chat(chat).map(Some);
            }
            if !self.chats_done {
                self.read_chats().await?;
                continue;
            }
            if self.finished {
                return Ok(None);
            }
            self.finished = true;
            return self.folders().await.map(Some);
        }
    }

    async fn read_chats(&mut self) -> Result<(), ApiError> {
        let (session, after) = (self.session, self.chats_after);
        let page = blocking(&self.state, move |app| app.export_chats(session, after)).await?;
        self.chats_done =
            u32::try_from(page.len()).is_ok_and(|n| n < memlayer_app::EXPORT_CHATS_PAGE);
        self.chats_after = page.last().map(Chat::cursor);
        self.chats.extend(page);
        Ok(())
    }

    /// The closing of the chats, every folder (one hop: a user has few), the end.
    async fn folders(&mut self) -> Result<Bytes, ApiError> {
        let session = self.session;
        let folders = blocking(&self.state, move |app| app.list_folders(session)).await?;
        let folders: Vec<FolderResponse> = folders.into_iter().map(FolderResponse::from).collect();
        let folders = serde_json::to_string(&folders).map_err(internal)?;
        Ok(Bytes::from(format!(r#"],"folders":{folders}}}"#)))
    }

    /// `{"id":…,"title":…,"created_at":…,"messages":[`, after a comma if need be.
    fn open_chat(&mut self, chat: Chat) -> Result<Bytes, ApiError> {
        let fields = serde_json::to_string(&ChatResponse::from(chat.clone())).map_err(internal)?;
        // A serialised struct is an object: drop its closing brace to add a field.
        let fields = fields
            .strip_suffix('}')
            .ok_or_else(|| internal("a chat did not serialise to a JSON object"))?;
        let comma = if self.wrote_chat { "," } else { "" };
        self.wrote_chat = true;
        self.current = Some((chat, None));
        Ok(Bytes::from(format!(r#"{comma}{fields},"messages":["#)))
    }

    /// The next page of the chat's messages; the chat's closing `]}` after its last.
    async fn messages_of(&mut self, chat: Chat, after: Option<Cursor>) -> Result<Bytes, ApiError> {
        let session = self.session;
        let (chat, page) = blocking(&self.state, move |app| {
            let page = app.export_messages(session, &chat, after)?;
            Ok((chat, page))
        })
        .await?;
        let last_page =
            u32::try_from(page.len()).is_ok_and(|n| n < memlayer_app::EXPORT_MESSAGES_PAGE);
        let mut chunk = Vec::with_capacity(page.len() * 256 + 2);
        let next = page.last().map(memlayer_app::domain::Message::cursor);
        for message in page {
            if after.is_some() || !chunk.is_empty() {
                chunk.push(b',');
            }
            serde_json::to_writer(&mut chunk, &MessageResponse::from(message)).map_err(internal)?;
        }
        if last_page {
            chunk.extend_from_slice(b"]}");
        } else {
            self.current = Some((chat, next));
        }
        Ok(Bytes::from(chunk))
    }
}

fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ApiError {
    ApiError::App(memlayer_app::AppError::Internal(error.into()))
}
