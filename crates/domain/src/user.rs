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
}
