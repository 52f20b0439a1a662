//! Folders: a user's own groups of chats.

use chrono::{DateTime, Utc};

use crate::error::{Field, Problem, ValidationError, reject_nul};
use crate::ids::{FolderId, UserId};

/// Longest folder name, in characters (after trimming).
pub const FOLDER_NAME_MAX_CHARS: usize = 100;

/// A folder of chats, owned by one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// The folder's id.
    pub id: FolderId,
    /// Its owner: the only one who may see it, change it or file chats in it.
    pub owner: UserId,
    /// What it is called.
    pub name: FolderName,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A folder name: trimmed, 1 to [`FOLDER_NAME_MAX_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderName(String);

impl FolderName {
    /// Parses a name a user gave: trimmed, then not blank and not too long.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        reject_nul(Field::FolderName, input)?;
        let name = input.trim();
        if name.is_empty() {
            return Err(ValidationError::new(Field::FolderName, Problem::Blank));
        }
        if name.chars().count() > FOLDER_NAME_MAX_CHARS {
            return Err(ValidationError::new(
                Field::FolderName,
                Problem::TooManyChars {
                    max: FOLDER_NAME_MAX_CHARS,
                },
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// Reads back a name that was validated before it was stored.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_name_is_trimmed() {
        assert_eq!(FolderName::parse("  Work ").unwrap().as_str(), "Work");
    }

    #[test]
    fn a_blank_folder_name_is_refused() {
        assert_eq!(
            FolderName::parse("   ").unwrap_err(),
            ValidationError::new(Field::FolderName, Problem::Blank)
        );
    }

    #[test]
    fn a_name_of_a_hundred_characters_fits_after_trimming_and_one_more_does_not() {
        let fits = format!("  {}  ", "é".repeat(FOLDER_NAME_MAX_CHARS));
        assert!(FolderName::parse(&fits).is_ok());
        assert_eq!(
            FolderName::parse(&"é".repeat(FOLDER_NAME_MAX_CHARS + 1))
                .unwrap_err()
                .problem,
            Problem::TooManyChars { max: 100 }
        );
    }
}
