use memlayer_domain::{
    AccountRole, Allowance, Chat, ChatCursor, ChatFilter, ChatId, ChatTitle, ChatUpdate, Cursor,
    Email, Folder, FolderId, FolderName, Message, MessageId, PasswordHash, PathEnd, SearchOrder,
    SearchQuery, Session, StoredHit, TokenUsage, UsageDay, User, UserId,
};

use crate::error::{CreateUserError, RepositoryError};

/// Stores accounts.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait UserRepository: Send + Sync {
    /// Stores a new account; [`CreateUserError::EmailTaken`] if the email is in use.
    fn create(&self, user: &User) -> Result<(), CreateUserError>;
    /// The account with this (normalised) email, if any.
    fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepositoryError>;
    /// The account with this id, if any.
    fn find_by_id(&self, id: UserId) -> Result<Option<User>, RepositoryError>;
    /// Whether `session` is current: its account exists and is still in the session's
    /// token generation.
    fn is_current(&self, session: Session) -> Result<bool, RepositoryError>;
    /// The current token generation of each of these accounts that still exists (in
    /// no particular order), in one query.
    fn token_generations(&self, ids: &[UserId]) -> Result<Vec<(UserId, i64)>, RepositoryError>;
    /// Revokes every token of the account, if `session` is current: raises its token
    /// generation by one and, with `new_hash`, sets a new password in the same
    /// statement. The new generation, or `None` if the session was not current (nothing
    /// changed).
    #[expect(
        clippy::needless_lifetimes,
        reason = "mockall needs the lifetime named"
    )]
    fn revoke_tokens<'a>(
        &self,
        session: Session,
        new_hash: Option<&'a PasswordHash>,
    ) -> Result<Option<i64>, RepositoryError>;
    /// Deletes the account with its chats and messages, if `session` is current;
    /// `false` if it was not (nothing deleted). [`AccountChangeError::LastAdmin`] if it
    /// is the last enabled admin.
    fn delete(&self, session: Session) -> Result<bool, AccountChangeError>;
    /// At most `limit` accounts whose email holds `email_contains` (normalised as
    /// emails are: [`memlayer_domain::Email::normalise_fragment`]; any account without), newest first (ties by id, descending), after `after`; each with its
    /// number of chats and the tokens it spent on `day`.
    #[expect(
        clippy::needless_lifetimes,
        reason = "mockall needs the lifetime named"
    )]
    fn list<'a>(
        &self,
        email_contains: Option<&'a str>,
        after: Option<Cursor>,
        limit: u32,
        day: UsageDay,
    ) -> Result<Vec<AccountSummary>, RepositoryError>;
    /// The account `id` as [`UserRepository::list`] gives it, if it exists.
    fn summary(&self, id: UserId, day: UsageDay)
    -> Result<Option<AccountSummary>, RepositoryError>;
    /// Makes `change` to the account `id`, in one unit of work. Disabling it also
    /// revokes its tokens (raises its token generation) and asks its generating replies
    /// to stop. The account as it is then, or `None` if there is no such account;
    /// [`AccountChangeError::LastAdmin`] (nothing changed) if it would leave no enabled
    /// admin (exact under races: such changes take turns).
    fn change(
        &self,
        id: UserId,
        change: &AccountChange,
    ) -> Result<Option<User>, AccountChangeError>;
    /// Deletes the account `id` with its chats and messages; `false` if there was none.
    /// [`AccountChangeError::LastAdmin`] if it is the last enabled admin.
    fn delete_by_id(&self, id: UserId) -> Result<bool, AccountChangeError>;
}

/// An account as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    /// The account.
    pub user: User,
    /// How many chats it has.
    pub chats: u64,
    /// The tokens it spent on the day asked about.
    pub tokens_used: u64,
}

/// What an admin changes of an account: each field given, the rest as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountChange {
    /// A new role.
    pub role: Option<AccountRole>,
    /// Disabled, or enabled again.
    pub disabled: Option<bool>,
    /// The account's own daily token limit (`Some(None)`: the operator's default again).
    pub token_limit: Option<Option<u64>>,
}

/// Why an account could not be changed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum AccountChangeError {
    /// It would leave no enabled admin.
    #[error("the last enabled admin")]
    LastAdmin,
    /// Storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// Stores chats.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait ChatRepository: Send + Sync {
    /// Stores a new chat, only while its owner's token generation is still
    /// `owner_generation` (checked in the same statement); `false` if it is not (no such
    /// account, or its tokens were revoked), and nothing is stored.
    fn create(&self, chat: &Chat, owner_generation: i64) -> Result<bool, RepositoryError>;
    /// The chat with this id, whoever owns it, with its owner's current token
    /// generation (read in the same query, so checking that a token is still current
    /// costs no extra round trip).
    fn find(&self, id: ChatId) -> Result<Option<(Chat, i64)>, RepositoryError>;
    /// At most `limit` of the session user's chats, newest first (ties by id,
    /// descending), starting after `after` in that order; none at all if the session is
    /// not current (the account's token generation is checked in the same query).
    fn list_for_owner(
        &self,
        owner: Session,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Chat>, RepositoryError>;
    /// Deletes a chat and its messages; `false` if it no longer existed.
    fn delete(&self, id: ChatId) -> Result<bool, RepositoryError>;
    /// At most `limit` of the session user's chats that `filter` keeps, pinned first,
    /// then the rest, each group newest first (ties by id, descending), starting after
    /// `after` in that order; none at all if the session is not current.
    fn list_organised(
        &self,
        owner: Session,
        filter: ChatFilter,
        after: Option<ChatCursor>,
        limit: u32,
    ) -> Result<Vec<Chat>, RepositoryError>;
    /// Makes `change` to a chat (every field it gives, in one statement); `false` if
    /// the chat no longer exists. The caller has checked that a folder it files the
    /// chat in is the chat owner's; [`UpdateChatError::FolderGone`] if that folder was
    /// deleted meanwhile (nothing changed).
    fn update(&self, id: ChatId, change: &ChatUpdate) -> Result<bool, UpdateChatError>;
    /// Renames a chat to `title` only while its title is still `expected` (checked in
    /// the same statement, so a rename by its owner always wins); whether it did.
    fn retitle_if(
        &self,
        id: ChatId,
        expected: &ChatTitle,
        title: &ChatTitle,
    ) -> Result<bool, RepositoryError>;
}

/// Why a chat could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateChatError {
    /// The folder to file it in no longer exists.
    #[error("the folder no longer exists")]
    FolderGone,
    /// Storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// Stores folders.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait FolderRepository: Send + Sync {
    /// Stores a new folder, only while its owner's token generation is still
    /// `owner_generation`; `false` (nothing stored) if not.
    fn create(&self, folder: &Folder, owner_generation: i64) -> Result<bool, RepositoryError>;
    /// The folder with this id, whoever owns it.
    fn find(&self, id: FolderId) -> Result<Option<Folder>, RepositoryError>;
    /// Every folder of the session's user, oldest first (ties by id); none if the
    /// session is not current.
    fn list_for_owner(&self, owner: Session) -> Result<Vec<Folder>, RepositoryError>;
    /// Renames a folder; `false` if it no longer exists.
    fn rename(&self, id: FolderId, name: &FolderName) -> Result<bool, RepositoryError>;
    /// Deletes a folder; its chats stay, in no folder. `false` if it no longer existed.
    fn delete(&self, id: FolderId) -> Result<bool, RepositoryError>;
}

/// Finds a user's messages and chat titles by their words (a full-text index kept in
/// step with the messages and chats, in the same transaction as each change).
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait SearchIndex: Send + Sync {
    /// At most `limit` of the session user's messages and chat titles holding every
    /// word of `query` (each as a word's prefix, case and accents aside), in `order`,
    /// after `after` (newest first only); none if the query has no words or the
    /// session is not current (checked in the same query). The cost depends on the
    /// user's own data, not on other users'.
    #[expect(
        clippy::needless_lifetimes,
        reason = "mockall needs the lifetime named"
    )]
    fn search<'a>(
        &self,
        owner: Session,
        query: &'a SearchQuery,
        order: SearchOrder,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<StoredHit>, RepositoryError>;
}

/// Stores messages: the nodes of each chat's tree.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait MessageRepository: Send + Sync {
    /// Appends a message to its chat (its parent as given) as the chat's active leaf,
    /// in one unit of work. The message's sibling ids as stored (oldest first, itself
    /// included), or `None` if the chat no longer exists (deleted meanwhile), in which
    /// case nothing is stored. (Posting stores through [`ReplyRepository::start`] and
    /// [`MessageRepository::append_exchange`]; this stores one message of a tree as
    /// given, as the repository's contract tests build theirs.)
    fn append(&self, message: &Message) -> Result<Option<Vec<MessageId>>, RepositoryError>;
    /// Appends a question and its reply to their chat together (both or neither), only
    /// if the chat is the session user's and the session is current (checked in the
    /// same unit of work). The question follows the chat's active leaf as it is then
    /// (its `parent_id` is ignored), the reply follows the question, and the reply
    /// becomes the active leaf. `false` if not (or while a reply is generating in the
    /// chat), and nothing is stored.
    fn append_exchange(
        &self,
        owner: Session,
        question: &Message,
        reply: &Message,
    ) -> Result<bool, RepositoryError>;
    /// At most `limit` messages of a path through the chat's tree, newest first, each
    /// with its sibling ids and its text cut to its first `chars_each` characters by
    /// the database (a huge message never leaves storage whole). The path ends at
    /// `end`, or without one at the chat's active leaf. With `owner`, only if the chat is
    /// the session user's and the session is current (checked in the same query);
    /// none at all if not.
    fn path(
        &self,
        owner: Option<Session>,
        chat: ChatId,
        end: Option<PathEnd>,
        limit: u32,
        chars_each: usize,
    ) -> Result<Vec<Message>, RepositoryError>;
    /// At most `limit` of the chat's messages, all branches, oldest first (ties by id),
    /// starting after `after` in that order, each with its sibling ids: for reading a
    /// whole chat page by page. With `owner`, only if the chat is the session user's and
    /// the session is current; none at all if not.
    fn list_oldest_first(
        &self,
        owner: Option<Session>,
        chat: ChatId,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<Message>, RepositoryError>;
    /// The message `id` of `chat`, with its sibling ids; `None` if there is none there.
    fn find_message(&self, chat: ChatId, id: MessageId)
    -> Result<Option<Message>, RepositoryError>;
    /// Makes the path through `message` the chat's active one: its active leaf becomes
    /// the newest leaf below `message` ([`memlayer_domain::newest_leaf_below`]). The new
    /// active leaf, or `None` if the message is not (or no longer) in the chat.
    fn activate(
        &self,
        chat: ChatId,
        message: MessageId,
    ) -> Result<Option<MessageId>, RepositoryError>;
    /// Deletes `message` and every message below it. When the active leaf was among
    /// them, the newest leaf below the message's parent becomes active (for a first
    /// message, the newest leaf of the chat; none when the chat is left empty). `false`
    /// if the message was not in the chat.
    fn delete_subtree(&self, chat: ChatId, message: MessageId) -> Result<bool, RepositoryError>;
}

/// Whether storage can serve requests right now (the readiness probe).
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait HealthCheck: Send + Sync {
    /// `Ok` when a round trip to the database succeeds.
    fn check(&self) -> Result<(), RepositoryError>;
}

/// How [`ReplyRepository::start`] went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartedReply {
    /// Stored: the question's sibling ids (as stored, when it was new) and the reply's.
    Started {
        /// The question's sibling ids, oldest first.
        question_siblings: Vec<MessageId>,
        /// The reply's sibling ids, oldest first.
        reply_siblings: Vec<MessageId>,
    },
    /// A reply is already generating in the chat: nothing stored.
    Busy,
    /// The chat's owner has as many replies generating as they may: nothing stored.
    UserBusy,
    /// The chat's owner spent their tokens for the day: nothing stored.
    OverQuota,
    /// The chat's owner was disabled meanwhile: nothing stored.
    Disabled,
    /// The chat, or the question answered again, was deleted meanwhile: nothing stored.
    Gone,
}

/// What a user is spending ([`ReplyRepository::generating`]): the replies generating,
/// and the tokens spent on the day asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Generating {
    /// Whether a reply is generating in the chat asked about.
    pub in_chat: bool,
    /// How many replies are generating for the user, in all their chats.
    pub of_user: usize,
    /// The tokens the user spent on the day.
    pub tokens_used: u64,
    /// The user's own daily token limit, when an admin set one.
    pub own_token_limit: Option<u64>,
    /// The account's current token generation (to check a session with the same read).
    pub token_generation: i64,
}

/// A reply as stored while (and after) it is written: the message, with the text so
/// far, and where each piece of it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReply {
    /// The assistant's message (its status says whether it is still generating).
    pub message: Message,
    /// Where each piece ends in the message's text, in characters, in order.
    pub piece_ends: Vec<usize>,
}

/// What the store says of a reply this instance generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyState {
    /// Still generating; someone asked for it to stop if `true`.
    Generating {
        /// Whether the stop route was called for it.
        stop_requested: bool,
    },
    /// Still stored, but no longer generating: another instance ended it (marked it
    /// failed, taking this one for dead), or its text is out of step with this
    /// instance's.
    Ended,
    /// Deleted (with its chat, its branch or its account).
    Gone,
}

/// Stores replies as they are written: the assistant's message exists from the start
/// (`generating`), the instance generating it appends its pieces in batches, and any
/// instance can read it, ask it to stop, or mark it failed when its instance died.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait ReplyRepository: Send + Sync {
    /// What `user` is spending: whether a reply is generating in `chat` (with one), how
    /// many in all, and the tokens spent on `day`, in one read; `None` if there is no
    /// such account.
    fn generating(
        &self,
        chat: Option<ChatId>,
        user: UserId,
        day: UsageDay,
    ) -> Result<Option<Generating>, RepositoryError>;
    /// Starts a reply, in one unit of work: stores `question` when it is new (after its
    /// parent), or checks the one answered again is still there; stores `reply` (its
    /// status `generating`, its heartbeat now, by the database's clock) below it as the
    /// chat's active leaf. [`StartedReply::Busy`] if another reply is generating in the
    /// chat, [`StartedReply::UserBusy`] if as many as `allowance` allows are generating
    /// for the chat's owner, [`StartedReply::OverQuota`] if the owner spent on `day` as
    /// many tokens as they may (their own limit, else `allowance`'s). Counted with the
    /// owner's starts taking turns, so it is exact under races and across instances.
    fn start(
        &self,
        question: &Message,
        question_is_new: bool,
        reply: &Message,
        allowance: Allowance,
        day: UsageDay,
    ) -> Result<StartedReply, RepositoryError>;
    /// Appends `pieces` to a generating reply that holds `stored_pieces` pieces,
    /// `stored_chars` characters in all, and beats its heartbeat. Idempotent: pieces
    /// stored by an earlier try whose answer was lost are not stored twice, and the rest
    /// of the batch follows them. What the store says of the reply then.
    fn append_pieces(
        &self,
        reply: MessageId,
        stored_pieces: usize,
        stored_chars: usize,
        pieces: &[String],
    ) -> Result<ReplyState, RepositoryError>;
    /// Ends the generating `reply` (as it started) as `status`, with its whole `text`, the ends of all its
    /// pieces and its `usage` (none for an assistant without a model), which is added to
    /// its owner's tokens of `day` in the same unit of work. The reply as stored, or
    /// `None` (nothing stored, nothing counted) if it is gone or no longer generating.
    fn finish(
        &self,
        reply: &Message,
        text: &str,
        piece_ends: &[usize],
        status: memlayer_domain::MessageStatus,
        usage: Option<TokenUsage>,
        day: UsageDay,
    ) -> Result<Option<Message>, RepositoryError>;
    /// Adds `tokens` to `user`'s tokens of `day` (a title request's); nothing if the
    /// account is gone.
    fn charge(&self, user: UserId, tokens: u64, day: UsageDay) -> Result<(), RepositoryError>;
    /// The reply `id` of `chat`, with where its pieces end; `None` if there is none.
    fn read(&self, chat: ChatId, id: MessageId) -> Result<Option<StoredReply>, RepositoryError>;
    /// Asks a generating reply of `chat` to stop; `false` if it is not generating (or
    /// not there).
    fn request_stop(&self, chat: ChatId, id: MessageId) -> Result<bool, RepositoryError>;
    /// What the store says of each of these replies (all generated by this instance),
    /// in the order given; with `heartbeat`, noting (by the database's clock) that the
    /// instance is alive.
    fn watch(
        &self,
        replies: &[MessageId],
        heartbeat: bool,
    ) -> Result<Vec<ReplyState>, RepositoryError>;
    /// Marks every reply still generating whose heartbeat is older than `silence` (by
    /// the database's clock, so instances' clocks need not agree) as `failed`, keeping
    /// its text. How many it marked.
    fn reap(&self, silence: std::time::Duration) -> Result<usize, RepositoryError>;
    /// Marks every reply still generating as `failed`, keeping its text, whatever its
    /// heartbeat says: for a database only one instance uses, at that instance's start.
    /// How many it marked.
    fn fail_generating(&self) -> Result<usize, RepositoryError>;
}
