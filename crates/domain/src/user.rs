use chrono::{DateTime, Utc};

use crate::email::Email;
use crate::ids::UserId;
use crate::password::PasswordHash;

/// A registered account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's id (the JWT `sub`).
    pub id: UserId,
    /// The normalised email address; unique.
    pub email: Email,
    /// The bcrypt hash of the password.
    pub password_hash: PasswordHash,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// The generation of the account's access tokens: raised by one each time every
    /// earlier token is revoked (a password change, "log out everywhere"). Only tokens
    /// of the current generation are accepted.
    pub token_generation: i64,
    /// What the account may do.
    pub role: AccountRole,
    /// Whether an admin disabled the account: it cannot log in.
    pub disabled: bool,
    /// The tokens the account may spend in a UTC day, when an admin set its own limit
    /// (else the operator's default applies).
    pub token_limit: Option<u64>,
}

/// What an account may do: use the service, or also administer its accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AccountRole {
    /// Uses the service.
    #[default]
    User,
    /// Also administers accounts.
    Admin,
}

impl AccountRole {
    /// The wire and storage name: `user` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    /// Parses the wire and storage name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "user" => Some(Self::User),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

impl User {
    /// A new account (a `user`, enabled, in its first token generation).
    pub fn new(email: Email, password_hash: PasswordHash, created_at: DateTime<Utc>) -> Self {
        Self {
            id: UserId::generate(),
            email,
            password_hash,
            created_at,
            token_generation: 0,
            role: AccountRole::User,
            disabled: false,
            token_limit: None,
        }
    }

    /// Whether `session` is one of this account's current sessions.
    pub fn accepts(&self, session: Session) -> bool {
        session.user == self.id && session.generation == self.token_generation
    }

    /// Whether the account administers accounts now: an admin, not disabled.
    pub fn is_admin(&self) -> bool {
        self.role == AccountRole::Admin && !self.disabled
    }
}

/// What a valid access token proves: who it was issued to, and in which of the account's
/// token generations. It is current while the account exists and its generation is
/// still this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Session {
    /// The account.
    pub user: UserId,
    /// The account's token generation when the token was issued.
    pub generation: i64,
}

impl Session {
    /// A session of `user` in token generation `generation`.
    pub const fn new(user: UserId, generation: i64) -> Self {
        Self { user, generation }
    }
}
