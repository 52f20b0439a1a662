//! MemLayer's domain: users, chats, messages and folders, search, the value objects that make invalid
//! input unrepresentable, and the rules on them (ownership, default titles, ordering).
//!
//! Pure: no I/O, no framework. Time and identity come in as arguments.

mod chat;
mod email;
mod error;
mod folder;
mod ids;
mod message;
mod page;
mod password;
mod search;
mod tree;
mod usage;
mod user;

pub use chat::{
    Chat, ChatAccessError, ChatCursor, ChatFilter, ChatTitle, ChatUpdate, Organisation,
    authorize_chat_access,
};
pub use email::Email;
pub use error::{Field, Problem, ValidationError, ValidationErrors};
pub use folder::{FOLDER_NAME_MAX_CHARS, Folder, FolderName};
pub use ids::{ChatId, FolderId, MessageId, UserId};
pub use message::{Message, MessageContent, MessageStatus, Role, reply_timestamp};
pub use page::{
    Cursor, DEFAULT_CHATS_PAGE, DEFAULT_MESSAGES_PAGE, MAX_PAGE_SIZE, Page, PageRequest,
    PageSizeOutOfRange,
};
pub use password::{Password, PasswordHash};
pub use search::{
    FOLD_FROM, FOLD_TO, Highlight, QUERY_MAX_CHARS, SNIPPET_CHARS, SearchHit, SearchOrder,
    SearchQuery, Snippet, StoredHit, fold,
};
pub use tree::{Node, PathEnd, PathWalk, newest_leaf_below, newest_leaf_of_chat, subtree};
pub use usage::{Allowance, REPORTED_TOKENS_MAX, TOKEN_LIMIT_MAX, TokenUsage, UsageDay};
pub use user::{AccountRole, Session, User};
