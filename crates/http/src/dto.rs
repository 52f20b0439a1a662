//! The JSON bodies of the API, with their OpenAPI schemas, and how a request body
//! becomes domain values (each rule a value breaks is a 422 naming its field).

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use memlayer_app::domain::{
    AccountRole, Chat, ChatTitle, ChatUpdate, Email, Folder, FolderId, FolderName, Message,
    MessageContent, MessageStatus, Password, Role, SearchHit, TOKEN_LIMIT_MAX, TokenUsage, User,
    ValidationErrors,
};
use memlayer_app::ports::{AccountChange, AccountSummary};
use memlayer_app::{AccessToken, UsageReport};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::error::wire::{self, BodyProblem, Source};

/// Credentials, to register or to log in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The account's email; trimmed and compared case-insensitively.
    #[schema(format = "email", max_length = 254, example = "ada@example.com")]
    pub email: String,
    /// At least 8 characters and at most 72 bytes (bcrypt's limit), no NUL character.
    #[schema(
        min_length = 8,
        max_length = 72,
        pattern = r"^[^\u0000]*$",
        format = "password",
        example = "correct horse battery"
    )]
    pub password: String,
}

/// A password change: the current password, to prove it is you, and the new one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The password now (no NUL character).
    #[schema(
        pattern = r"^[^\u0000]*$",
        format = "password",
        example = "correct horse battery"
    )]
    pub current_password: String,
    /// The new password: at least 8 characters and at most 72 bytes, no NUL character.
    #[schema(
        min_length = 8,
        max_length = 72,
        pattern = r"^[^\u0000]*$",
        format = "password",
        example = "staple battery horse"
    )]
    pub new_password: String,
}

/// Deleting the account: its password, to prove it is you.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    /// The account's password (no NUL character).
    #[schema(
        pattern = r"^[^\u0000]*$",
        format = "password",
        example = "correct horse battery"
    )]
    pub password: String,
}

/// Everything MemLayer holds about an account: the account (never its password hash)
/// and every chat (newest first) with all its messages (oldest first). Streamed.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountExport {
    /// The account.
    pub account: UserResponse,
    /// Every chat of the account, newest first.
    pub chats: Vec<ChatExport>,
    /// Every folder of the account, oldest first.
    pub folders: Vec<FolderResponse>,
}

/// A chat in an export, with all its messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatExport {
    /// The chat's id.
    pub id: Uuid,
    /// The chat's title.
    pub title: String,
    /// When it was created (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// The end of the path the chat shows; null while it is empty.
    #[schema(required = true)]
    pub active_message_id: Option<Uuid>,
    /// Whether it is pinned.
    pub pinned: bool,
    /// Whether it is archived.
    pub archived: bool,
    /// The folder it is filed in, if any.
    #[schema(required = true)]
    pub folder_id: Option<Uuid>,
    /// Every message of the chat, all branches, oldest first.
    pub messages: Vec<MessageResponse>,
}

impl ChangePasswordRequest {
    /// The current password (a [`Password::candidate`]) and the new one (held to the
    /// policy, and checked first).
    pub fn try_into_passwords(self) -> Result<(Option<Password>, Password), ApiError> {
        let new = Password::parse(&self.new_password)
            .map_err(|error| ApiError::rejected_as(Source::Body, "new_password", &error))?;
        let current = Password::candidate(&self.current_password)
            .map_err(|error| ApiError::rejected_as(Source::Body, "current_password", &error))?;
        Ok((current, new))
    }
}

impl DeleteAccountRequest {
    /// The account's password, as a [`Password::candidate`].
    pub fn try_into_password(self) -> Result<Option<Password>, ApiError> {
        Password::candidate(&self.password)
            .map_err(|error| ApiError::rejected(Source::Body, &error.into()))
    }
}

impl Credentials {
    /// The email and password of a new account, or every rule they break.
    pub fn try_into_registration(self) -> Result<(Email, Password), ApiError> {
        ValidationErrors::both(Email::parse(&self.email), Password::parse(&self.password))
            .map_err(|errors| ApiError::rejected(Source::Body, &errors))
    }

    /// The email and password offered at login. The password is a
    /// [`Password::candidate`], not held to the policy for new ones (that may change).
    pub fn try_into_login(self) -> Result<(Email, Option<Password>), ApiError> {
        let email = Email::parse(&self.email)
            .map_err(|error| ApiError::rejected(Source::Body, &error.into()))?;
        let password = Password::candidate(&self.password)
            .map_err(|error| ApiError::rejected(Source::Body, &error.into()))?;
        Ok((email, password))
    }
}

/// A logged-in session: send `Authorization: Bearer <access_token>` with every call.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT (HS256).
    pub access_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    pub token_type: &'static str,
}

impl From<AccessToken> for TokenResponse {
    fn from(token: AccessToken) -> Self {
        Self {
            access_token: token.0,
            token_type: "bearer",
        }
    }
}

/// The logged-in account.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    /// The user's id.
    pub id: Uuid,
    /// The normalised email.
    pub email: String,
    /// When the account was created (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339_micros")]
    pub created_at: DateTime<Utc>,
    /// `user`, or `admin` (may use the `/admin` routes).
    pub role: AccountRoleDto,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            id: user.id.as_uuid(),
            email: user.email.as_str().to_owned(),
            created_at: user.created_at,
            role: user.role.into(),
        }
    }
}

/// What an account may do.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[schema(as = AccountRole)]
pub enum AccountRoleDto {
    User,
    Admin,
}

impl From<AccountRole> for AccountRoleDto {
    fn from(role: AccountRole) -> Self {
        match role {
            AccountRole::User => Self::User,
            AccountRole::Admin => Self::Admin,
        }
    }
}

impl From<AccountRoleDto> for AccountRole {
    fn from(role: AccountRoleDto) -> Self {
        match role {
            AccountRoleDto::User => Self::User,
            AccountRoleDto::Admin => Self::Admin,
        }
    }
}

/// The tokens a reply took: as the model server reported them, or estimated
/// (characters ÷ 4, rounded up) when it reported none.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDto {
    /// Tokens the model read.
    pub prompt_tokens: u64,
    /// Tokens the model wrote.
    pub completion_tokens: u64,
    /// Whether these are an estimate, not the model server's report.
    pub estimated: bool,
}

impl From<TokenUsage> for UsageDto {
    fn from(usage: TokenUsage) -> Self {
        Self {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            estimated: usage.estimated,
        }
    }
}

/// What you spent today (the UTC day) and your limits.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageResponse {
    /// When the day started (00:00 UTC).
    #[serde(serialize_with = "rfc3339_micros")]
    pub period_start: DateTime<Utc>,
    /// When it ends (the next 00:00 UTC): the day's tokens start again from zero.
    #[serde(serialize_with = "rfc3339_micros")]
    pub period_end: DateTime<Utc>,
    /// Tokens (prompt and completion) of the replies and titles that ended today.
    pub tokens_used: u64,
    /// Tokens you may spend a day; null for no limit.
    #[schema(required = true)]
    pub token_limit: Option<u64>,
    /// Your replies being written now.
    pub generations_running: usize,
    /// How many of your replies may be written at once.
    pub generation_limit: usize,
}

impl From<UsageReport> for UsageResponse {
    fn from(report: UsageReport) -> Self {
        Self {
            period_start: report.period_start,
            period_end: report.period_end,
            tokens_used: report.tokens_used,
            token_limit: report.token_limit,
            generations_running: report.generations_running,
            generation_limit: report.generation_limit,
        }
    }
}

/// An account, as an admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserResponse {
    /// The account's id.
    pub id: Uuid,
    /// The normalised email.
    pub email: String,
    /// `user` or `admin`.
    pub role: AccountRoleDto,
    /// Whether it is disabled (cannot log in).
    pub disabled: bool,
    /// When it was created (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339_micros")]
    pub created_at: DateTime<Utc>,
    /// How many chats it has.
    pub chats: u64,
    /// Tokens it spent today (UTC).
    pub tokens_used: u64,
    /// Its own daily token limit; null when the operator's default applies.
    #[schema(required = true)]
    pub token_limit: Option<u64>,
}

impl From<AccountSummary> for AdminUserResponse {
    fn from(summary: AccountSummary) -> Self {
        let user = summary.user;
        Self {
            id: user.id.as_uuid(),
            email: user.email.as_str().to_owned(),
            role: user.role.into(),
            disabled: user.disabled,
            created_at: user.created_at,
            chats: summary.chats,
            tokens_used: summary.tokens_used,
            token_limit: user.token_limit,
        }
    }
}

/// A change to an account: any of `role`, `disabled`, `token_limit`, at least one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminUserChange {
    /// A new role. Not null.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = AccountRoleDto, required = false)]
    pub role: Option<AccountRoleDto>,
    /// Disable (revokes its tokens, stops its replies, refuses its logins) or enable.
    /// Not null.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false)]
    pub disabled: Option<bool>,
    /// Its own daily token limit, 0 to 10^12, or `null` for the operator's default.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 1_000_000_000_000_u64)]
    pub token_limit: Option<Option<u64>>,
}

impl AdminUserChange {
    /// The change; a 422 for an empty one or a limit past [`TOKEN_LIMIT_MAX`].
    pub fn try_into_change(self) -> Result<AccountChange, ApiError> {
        if let Some(Some(limit)) = self.token_limit
            && limit > TOKEN_LIMIT_MAX
        {
            return Err(ApiError::Invalid(vec![wire::body_issue(
                vec!["token_limit".into()],
                BodyProblem::Other("Input should be less than or equal to 1000000000000"),
            )]));
        }
        let change = AccountChange {
            role: self.role.map(AccountRole::from),
            disabled: self.disabled,
            token_limit: self.token_limit,
        };
        if change == AccountChange::default() {
            return Err(ApiError::Invalid(vec![wire::body_issue(
                vec![],
                BodyProblem::Other("Give at least one of role, disabled, token_limit"),
            )]));
        }
        Ok(change)
    }
}

/// A new chat. Without a title (missing, null or blank) it is named after the current
/// UTC minute: `Chat YYYY-MM-DD HH:MM`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChatRequest {
    /// The title, at most 200 characters (as given), no NUL character; trimmed.
    #[serde(default)]
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000]*$",
        example = "Trip to Lisbon"
    )]
    pub title: Option<String>,
}

impl CreateChatRequest {
    /// The title given, if any (missing, null or blank is none).
    pub fn try_into_title(self) -> Result<Option<ChatTitle>, ApiError> {
        ChatTitle::optional(self.title.as_deref())
            .map_err(|error| ApiError::rejected(Source::Body, &error.into()))
    }
}

/// A change to a chat: any of `title`, `pinned`, `archived`, `folder_id`, at least one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChatRequest {
    /// A new title: not blank, at most 200 characters (as given), no NUL character;
    /// trimmed. Not null.
    #[serde(default, deserialize_with = "present")]
    #[schema(
        value_type = String,
        required = false,
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\u0000\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000]*$",
        example = "Lisbon, day 2"
    )]
    pub title: Option<String>,
    /// Pin (listed first) or unpin. Not null.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false)]
    pub pinned: Option<bool>,
    /// Archive (left out of the chat list, still searched) or bring back. Not null.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false)]
    pub archived: Option<bool>,
    /// File the chat in one of your folders, or `null` to take it out of its folder.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub folder_id: Option<Option<Uuid>>,
}

/// A field that may be missing but, when given, is not null.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// A field that may be missing (outer `None`) or null (`Some(None)`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

impl UpdateChatRequest {
    /// The change. With no field at all it is the missing `title` (what renaming,
    /// the first change a chat could take, always needed).
    pub fn try_into_update(self) -> Result<ChatUpdate, ApiError> {
        let title = match self.title {
            Some(title) => Some(
                ChatTitle::parse(&title)
                    .map_err(|error| ApiError::rejected(Source::Body, &error.into()))?,
            ),
            None => None,
        };
        let update = ChatUpdate {
            title,
            pinned: self.pinned,
            archived: self.archived,
            folder: self.folder_id.map(|folder| folder.map(FolderId::from_uuid)),
        };
        if update.is_empty() {
            return Err(ApiError::Invalid(vec![wire::body_issue(
                vec![],
                BodyProblem::Missing("title"),
            )]));
        }
        Ok(update)
    }
}

/// A chat.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatResponse {
    /// The chat's id.
    pub id: Uuid,
    /// The chat's title.
    pub title: String,
    /// When it was created (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339_micros")]
    pub created_at: DateTime<Utc>,
    /// The end of the path the chat shows (its active leaf); null while it is empty.
    #[schema(required = true)]
    pub active_message_id: Option<Uuid>,
    /// Whether it is pinned (listed before the others).
    pub pinned: bool,
    /// Whether it is archived (left out of the chat list unless `archived=true`).
    pub archived: bool,
    /// The folder it is filed in, or null.
    #[schema(required = true)]
    pub folder_id: Option<Uuid>,
}

impl From<Chat> for ChatResponse {
    fn from(chat: Chat) -> Self {
        Self {
            id: chat.id.as_uuid(),
            title: chat.title.as_str().to_owned(),
            created_at: chat.created_at,
            active_message_id: chat.active_message_id.map(|id| id.as_uuid()),
            pinned: chat.organisation.pinned,
            archived: chat.organisation.archived,
            folder_id: chat.organisation.folder.map(|id| id.as_uuid()),
        }
    }
}

/// A new folder, or a folder's new name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderRequest {
    /// The name: 1 to 100 characters after trimming (so no limit JSON Schema can say on
    /// the text as sent), no NUL character.
    #[schema(min_length = 1, example = "Travel")]
    pub name: String,
}

impl FolderRequest {
    /// The folder's name.
    pub fn try_into_name(self) -> Result<FolderName, ApiError> {
        FolderName::parse(&self.name)
            .map_err(|error| ApiError::rejected(Source::Body, &error.into()))
    }
}

/// A folder of chats.
#[derive(Debug, Serialize, ToSchema)]
pub struct FolderResponse {
    /// The folder's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// When it was created (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339_micros")]
    pub created_at: DateTime<Utc>,
}

impl From<Folder> for FolderResponse {
    fn from(folder: Folder) -> Self {
        Self {
            id: folder.id.as_uuid(),
            name: folder.name.as_str().to_owned(),
            created_at: folder.created_at,
        }
    }
}

/// A message or a chat title that matched a search.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHitResponse {
    /// The chat of the hit (open it with `GET /chats/{chat_id}`).
    pub chat_id: Uuid,
    /// The chat's title.
    pub chat_title: String,
    /// The message that matched; null when the chat's title matched.
    #[schema(required = true)]
    pub message_id: Option<Uuid>,
    /// Who wrote the message; null for a title.
    #[schema(required = true)]
    pub role: Option<RoleDto>,
    /// When the message (or, for a title, the chat) was created (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339_micros")]
    pub created_at: DateTime<Utc>,
    /// Plain text around the first match (no markup); `…` where the text was cut.
    #[schema(example = "…the best pastéis de nata in Lisbon are…")]
    pub snippet: String,
    /// Where the query's words are in `snippet`: `[start, end)` offsets in characters
    /// (Unicode code points), in order.
    #[schema(example = json!([[14, 21]]))]
    pub highlights: Vec<[usize; 2]>,
}

impl From<SearchHit> for SearchHitResponse {
    fn from(hit: SearchHit) -> Self {
        let found = hit.found;
        Self {
            chat_id: found.chat_id.as_uuid(),
            chat_title: found.chat_title.as_str().to_owned(),
            message_id: found.message_id.map(|id| id.as_uuid()),
            role: found.role.map(RoleDto::from),
            created_at: found.created_at,
            snippet: hit.snippet.text,
            highlights: hit
                .snippet
                .highlights
                .into_iter()
                .map(|h| [h.start, h.end])
                .collect(),
        }
    }
}

/// A message to post.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessageRequest {
    /// The text: not blank, at most 32,000 characters, no NUL character; kept exactly
    /// as written. ("Blank" is white space as Rust's `char::is_whitespace` defines it,
    /// which the pattern spells out.)
    #[schema(
        min_length = 1,
        max_length = 32000,
        pattern = r"^[^\u0000]*[^\u0000\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000]*$",
        example = "Remember that I prefer window seats."
    )]
    pub content: String,
}

impl PostMessageRequest {
    /// The message's text.
    pub fn try_into_content(self) -> Result<MessageContent, ApiError> {
        MessageContent::parse(self.content)
            .map_err(|error| ApiError::rejected(Source::Body, &error.into()))
    }
}

/// Who wrote a message: the chat's owner (`user`) or the assistant.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Role)]
pub enum RoleDto {
    User,
    Assistant,
}

impl From<Role> for RoleDto {
    fn from(role: Role) -> Self {
        match role {
            Role::User => Self::User,
            Role::Assistant => Self::Assistant,
        }
    }
}

/// A message of a chat.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    /// The message's id.
    pub id: Uuid,
    /// The chat it belongs to.
    pub chat_id: Uuid,
    /// The chat owner's id (on the assistant's messages too).
    pub user_id: Uuid,
    /// `user` or `assistant`.
    pub role: RoleDto,
    /// The text.
    pub content: String,
    /// When it was written (RFC 3339, UTC); messages are listed in this order.
    #[serde(serialize_with = "rfc3339_micros")]
    pub created_at: DateTime<Utc>,
    /// The message it follows; null for a first message of its chat.
    #[schema(required = true)]
    pub parent_id: Option<Uuid>,
    /// How far it got: `complete`, or for the assistant's messages `generating`,
    /// `stopped` or `failed`.
    pub status: StatusDto,
    /// Every message with the same parent, this one included, oldest first (the first
    /// messages of a chat are siblings of each other): what "‹ 2/3 ›" needs.
    pub sibling_ids: Vec<Uuid>,
    /// The tokens an assistant's reply took, once it ended; null for a user's message,
    /// a reply still being written, or the default assistant (no model).
    #[schema(required = true)]
    pub usage: Option<UsageDto>,
}

impl From<Message> for MessageResponse {
    fn from(message: Message) -> Self {
        Self {
            id: message.id.as_uuid(),
            chat_id: message.chat_id.as_uuid(),
            user_id: message.user_id.as_uuid(),
            role: message.role.into(),
            content: message.content.as_str().to_owned(),
            created_at: message.created_at,
            parent_id: message.parent_id.map(|id| id.as_uuid()),
            status: message.status.into(),
            sibling_ids: message.sibling_ids.iter().map(|id| id.as_uuid()).collect(),
            usage: message.usage.map(UsageDto::from),
        }
    }
}

/// How far a message got.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = MessageStatus)]
pub enum StatusDto {
    Complete,
    Generating,
    Stopped,
    Failed,
}

impl From<MessageStatus> for StatusDto {
    fn from(status: MessageStatus) -> Self {
        match status {
            MessageStatus::Complete => Self::Complete,
            MessageStatus::Generating => Self::Generating,
            MessageStatus::Stopped => Self::Stopped,
            MessageStatus::Failed => Self::Failed,
        }
    }
}

/// Which branch a chat shows.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetActiveRequest {
    /// A message of the chat: the path through it becomes the active one, down to the
    /// newest leaf below it.
    pub message_id: Uuid,
}

/// One event of a streamed reply, as an SSE parser reads it: `event` names it, `data` is
/// one line of JSON (by event: `message`, `reply` and `done` a MessageResponse, `delta` a
/// DeltaEvent, `title` a ChatResponse, `error` an ErrorBody), `id` numbers the reply's
/// own events (0 on `reply`, then 1, 2, … on its deltas and the next on its ending).
/// Documentation only: the stream is written event by event.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "the schema of the event stream, never built as a value"
)]
pub struct ServerSentEvent {
    /// The event's name.
    #[schema(example = "delta")]
    pub event: String,
    /// Its data: one line of JSON.
    #[schema(example = "{\"content\":\"Hel\"}")]
    pub data: String,
    /// Its number, on a reply's own events.
    #[schema(example = "1")]
    pub id: Option<String>,
}

/// A piece of the assistant's answer (`event: delta` of a streamed reply).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeltaEvent {
    /// The next piece of text; the reply is all pieces joined, in order.
    #[schema(example = "Hel")]
    pub content: String,
}

/// Writes a time as RFC 3339 UTC with microseconds (`2026-11-26T09:30:15.123456Z`), the
/// resolution the databases keep. Formatted by hand into a buffer: chrono's `Serialize`
/// goes through `fmt` one character at a time, which showed in the list routes' profile.
fn rfc3339_micros<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let year = at.year();
    if !(0..=9999).contains(&year) {
        return serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true));
    }
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for digit in text[at..at + width].iter_mut().rev() {
            *digit = b'0' + u8::try_from(value % 10).unwrap_or_default();
            value /= 10;
        }
    };
    put(0, 4, year.unsigned_abs());
    put(5, 2, at.month());
    put(8, 2, at.day());
    put(11, 2, at.hour());
    put(14, 2, at.minute());
    put(17, 2, at.second());
    put(20, 6, at.nanosecond() % 1_000_000_000 / 1_000);
    serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn serialized(at: DateTime<Utc>) -> String {
        rfc3339_micros(&at, serde_json::value::Serializer)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn times_are_written_with_microseconds_and_z_as_chrono_writes_them() {
        let at = Utc.with_ymd_and_hms(2026, 3, 7, 9, 5, 1).unwrap()
            + chrono::TimeDelta::microseconds(42);
        for at in [
            at,
            Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap(),
            DateTime::UNIX_EPOCH,
        ] {
            assert_eq!(
                serialized(at),
                at.to_rfc3339_opts(SecondsFormat::Micros, true)
            );
        }
        assert_eq!(serialized(at), "2026-03-07T09:05:01.000042Z");
    }
}
