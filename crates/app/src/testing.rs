//! Mocked ports for the use cases' unit tests.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use memlayer_domain::{
    Chat, ChatId, ChatTitle, Email, Folder, FolderId, FolderName, MessageContent, MessageId,
    Organisation, PageRequest, Password, PasswordHash, Session, User, UserId,
};
use memlayer_ports::{
    MockAssistantResponder, MockChatRepository, MockClock, MockFolderRepository,
    MockMessageRepository, MockPasswordHasher, MockReplyRepository, MockSearchIndex,
    MockTokenIssuer, MockTokenVerifier, MockUserRepository,
};

use crate::{MemLayer, Ports};

/// The fixed time every fixture's clock reads: 2026-11-26 09:30:15 UTC.
pub const NOW: DateTime<Utc> = DateTime::from_timestamp_nanos(1_795_685_415_000_000_000);

/// One mock per port; set expectations, then build the app with [`Fixture::app`]. A
/// call nobody expected fails the test.
pub struct Fixture {
    pub users: MockUserRepository,
    pub chats: MockChatRepository,
    pub messages: MockMessageRepository,
    pub hasher: MockPasswordHasher,
    pub token_issuer: MockTokenIssuer,
    pub token_verifier: MockTokenVerifier,
    pub clock: MockClock,
    pub responder: MockAssistantResponder,
    pub folders: MockFolderRepository,
    pub search: MockSearchIndex,
    pub replies: MockReplyRepository,
}

impl Fixture {
    pub fn new() -> Self {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(NOW);
        // No reply generating in any chat, unless a test says otherwise.
        let mut replies = MockReplyRepository::new();
        replies
            .expect_generating()
            .returning(|_, _, _| Ok(Some(memlayer_ports::Generating::default())));
        Self {
            users: MockUserRepository::new(),
            chats: MockChatRepository::new(),
            messages: MockMessageRepository::new(),
            hasher: MockPasswordHasher::new(),
            token_issuer: MockTokenIssuer::new(),
            token_verifier: MockTokenVerifier::new(),
            clock,
            responder: MockAssistantResponder::new(),
            folders: MockFolderRepository::new(),
            search: MockSearchIndex::new(),
            replies,
        }
    }

    /// A chat of `owner`'s that storage finds (its owner's token generation is 0): the
    /// set-up of most chat and message tests.
    pub fn stored_chat(&mut self, owner: UserId) -> Chat {
        let chat = chat_owned_by(owner);
        let found = chat.clone();
        self.chats
            .expect_find()
            .with(mockall::predicate::eq(chat.id))
            .returning(move |_| Ok(Some((found.clone(), 0))));
        chat
    }

    pub fn app(self) -> MemLayer {
        MemLayer::new(Ports {
            users: Arc::new(self.users),
            chats: Arc::new(self.chats),
            messages: Arc::new(self.messages),
            hasher: Arc::new(self.hasher),
            token_issuer: Arc::new(self.token_issuer),
            token_verifier: Arc::new(self.token_verifier),
            clock: Arc::new(self.clock),
            responder: Arc::new(self.responder),
            folders: Arc::new(self.folders),
            search: Arc::new(self.search),
            replies: Arc::new(self.replies),
        })
    }
}

/// A fixture whose account is `user`, found by id.
pub fn with_account(user: &User) -> Fixture {
    let mut fx = Fixture::new();
    let found = user.clone();
    fx.users
        .expect_find_by_id()
        .with(mockall::predicate::eq(user.id))
        .returning(move |_| Ok(Some(found.clone())));
    fx
}

pub fn email(text: &str) -> Email {
    Email::parse(text).unwrap()
}

pub fn password(text: &str) -> Password {
    Password::parse(text).unwrap()
}

/// A password as offered at login: `None` when longer than bcrypt reads.
pub fn candidate(text: &str) -> Option<Password> {
    Password::candidate(text).unwrap()
}

pub fn title(text: &str) -> ChatTitle {
    ChatTitle::parse(text).unwrap()
}

pub fn content(text: &str) -> MessageContent {
    MessageContent::parse(text.to_owned()).unwrap()
}

/// The first page of a list, of `limit` items at most.
pub fn first_page(limit: u32) -> PageRequest {
    PageRequest::new(limit, None).unwrap()
}

pub fn user_with_email(email: &str) -> User {
    User {
        id: UserId::generate(),
        ..User::new(
            Email::parse(email).unwrap(),
            PasswordHash::new("$2b$04$hash".into()),
            NOW,
        )
    }
}

/// The current session of `user`.
pub fn session_of(user: &User) -> Session {
    Session::new(user.id, user.token_generation)
}

/// A current session of a new user (generation 0).
pub fn any_session() -> Session {
    Session::new(UserId::generate(), 0)
}

pub fn chat_owned_by(owner: UserId) -> Chat {
    Chat {
        id: ChatId::generate(),
        owner,
        title: ChatTitle::from_trusted("A chat".into()),
        created_at: NOW,
        // Its path ends somewhere: a new question follows it.
        active_message_id: Some(MessageId::generate()),
        organisation: Organisation::default(),
    }
}

pub fn folder_owned_by(owner: UserId) -> Folder {
    Folder {
        id: FolderId::generate(),
        owner,
        name: FolderName::from_trusted("A folder".into()),
        created_at: NOW,
    }
}
