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
}

impl User {
    /// Whether `session` is one of this account's current sessions.
    pub fn accepts(&self, session: Session) -> bool {
        session.user == self.id && session.generation == self.token_generation
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
