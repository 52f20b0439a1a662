use std::fmt;

use crate::error::{Field, Problem, ValidationError, reject_nul};

const FIELD: Field = Field::Password;
/// Fewest characters a new password may have.
pub const MIN_CHARS: usize = 8;
/// bcrypt reads at most 72 bytes; a longer password would be silently cut, so it is refused.
pub const MAX_BYTES: usize = 72;

/// A password that satisfies the policy: at least 8 characters, at most 72 bytes.
///
/// Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Checks a new password against the policy. A NUL character is refused: bcrypt
    /// would end the password there, so `P` and `P + "\0…"` would both match.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        reject_nul(FIELD, input)?;
        if input.len() > MAX_BYTES {
            return Err(ValidationError::new(
                FIELD,
                Problem::TooManyBytes { max: MAX_BYTES },
            ));
        }
        if input.chars().count() < MIN_CHARS {
            return Err(ValidationError::new(
                FIELD,
                Problem::TooFewChars { min: MIN_CHARS },
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// A password offered at login (or to confirm an action). It is not held to the
    /// policy (that may change), but one with a NUL character is invalid input, as in
    /// every text, and one longer than bcrypt can read can never be right: `Ok(None)`.
    pub fn candidate(input: &str) -> Result<Option<Self>, ValidationError> {
        reject_nul(FIELD, input)?;
        Ok((input.len() <= MAX_BYTES).then(|| Self(input.to_owned())))
    }

    /// The secret itself, for the hasher.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A stored password hash (bcrypt's modular crypt format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a hash made by a hasher or read from storage.
    pub fn new(hash: String) -> Self {
        Self(hash)
    }

    /// The encoded hash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_of_eight_characters_is_accepted() {
        assert!(Password::parse("12345678").is_ok());
    }

    #[test]
    fn a_password_of_seven_characters_is_too_short() {
        assert_eq!(
            Password::parse("1234567").unwrap_err().problem,
            Problem::TooFewChars { min: 8 }
        );
    }

    #[test]
    fn length_is_counted_in_characters_for_the_minimum() {
        assert!(Password::parse("ééééééé").is_err());
        assert!(Password::parse("éééééééé").is_ok());
    }

    #[test]
    fn seventy_two_bytes_is_accepted_and_seventy_three_is_too_long() {
        assert!(Password::parse(&"a".repeat(72)).is_ok());
        let error = Password::parse(&"a".repeat(73)).unwrap_err();
        assert_eq!(
            error,
            ValidationError::new(Field::Password, Problem::TooManyBytes { max: 72 })
        );
    }

    #[test]
    fn the_byte_limit_counts_multibyte_characters_as_bytes() {
        // 37 two-byte characters: 37 characters, 74 bytes.
        assert_eq!(
            Password::parse(&"é".repeat(37)).unwrap_err().problem,
            Problem::TooManyBytes { max: 72 }
        );
    }

    #[test]
    fn a_login_candidate_longer_than_bcrypt_reads_is_never_right() {
        assert!(Password::candidate(&"a".repeat(73)).unwrap().is_none());
        assert!(Password::candidate("short").unwrap().is_some());
    }

    #[test]
    fn a_nul_character_is_refused_in_a_new_password_and_at_login() {
        assert_eq!(
            Password::parse("password\0x").unwrap_err().problem,
            Problem::ContainsNul
        );
        assert!(Password::candidate("password\0").is_err());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let password = Password::parse("correct horse").unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }
}
