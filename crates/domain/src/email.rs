use std::fmt;

use unicode_normalization::UnicodeNormalization;

use crate::error::{Field, Problem, ValidationError, reject_nul};

const FIELD: Field = Field::Email;
/// The longest address, in characters (RFC 5321 allows 254 octets; characters keep the
/// rule the same as the OpenAPI schema's `maxLength`).
const MAX_LEN: usize = 254;

/// An email address, trimmed, Unicode-normalised (NFC) and lower-cased, so that two
/// spellings of one address are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// A piece of an email to search for, compared as emails are: trimmed, NFC,
    /// lower-cased (as [`Email::parse`] does).
    pub fn normalise_fragment(input: &str) -> String {
        let lower: String = input.trim().nfc().collect::<String>().to_lowercase();
        lower.nfc().collect()
    }

    /// Parses what a user typed: trims surrounding white space, normalises to Unicode
    /// NFC (precomposed and decomposed spellings are one address), lower-cases, and
    /// checks the shape `local@domain.tld` without white space. Invisible characters
    /// (zero-width, bidi controls, other format characters) are refused: they would make
    /// look-alike accounts.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        reject_nul(FIELD, input)?;
        if input.chars().any(is_invisible) {
            return Err(ValidationError::new(FIELD, Problem::InvisibleCharacter));
        }
        let email = Self::normalise_fragment(input);
        if email.chars().count() > MAX_LEN {
            return Err(ValidationError::new(
                FIELD,
                Problem::TooManyChars { max: MAX_LEN },
            ));
        }
        if !Self::is_well_formed(&email) {
            return Err(ValidationError::new(FIELD, Problem::NotAnEmail));
        }
        Ok(Self(email))
    }

    /// Reads back an address that was parsed before it was stored.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_well_formed(email: &str) -> bool {
        let Some((local, domain)) = email.rsplit_once('@') else {
            return false;
        };
        let labels_ok = domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
        !local.is_empty()
            && !local.contains('@')
            && domain.contains('.')
            && labels_ok
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
    }
}

/// Characters that render as nothing or reorder text: zero-width characters, bidi
/// controls, joiners, variation selectors, tags and the other format characters
/// (Unicode category Cf) that have no place in an address.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_is_trimmed_and_lower_cased() {
        let email = Email::parse("  Ada.Lovelace@Example.COM \n").unwrap();
        assert_eq!(email.as_str(), "ada.lovelace@example.com");
    }

    #[test]
    fn two_spellings_of_one_address_are_equal() {
        assert_eq!(
            Email::parse("A@B.io").unwrap(),
            Email::parse("a@b.io ").unwrap()
        );
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for bad in [
            "",
            "   ",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a b@c.io",
            "a@b..io",
            "a@-b.io",
            "a@b@c.io",
        ] {
            let error = Email::parse(bad).unwrap_err();
            assert_eq!(
                error,
                ValidationError::new(Field::Email, Problem::NotAnEmail),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unusual_but_valid_local_parts_are_accepted() {
        for good in [
            "o'brien+tag@example.co.uk",
            "!#$%&*=?^_`{|}~@x.io",
            "0@a.com",
        ] {
            assert!(Email::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn an_address_longer_than_smtp_allows_is_rejected() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(
            Email::parse(&long).unwrap_err().problem,
            Problem::TooManyChars { max: 254 }
        );
    }

    #[test]
    fn precomposed_and_decomposed_spellings_are_one_address() {
        let nfc = Email::parse("jos\u{e9}@example.com").unwrap();
        let nfd = Email::parse("jose\u{301}@example.com").unwrap();
        assert_eq!(nfc, nfd);
        assert_eq!(nfd.as_str(), "jos\u{e9}@example.com");
    }

    #[test]
    fn invisible_and_bidi_control_characters_are_rejected() {
        for bad in [
            "a\u{200B}@b.io",
            "a@b\u{200D}.io",
            "\u{FEFF}a@b.io",
            "a\u{202E}@b.io",
            "a\u{2066}b@c.io",
            "a\u{00AD}b@c.io",
        ] {
            assert_eq!(
                Email::parse(bad).unwrap_err().problem,
                Problem::InvisibleCharacter,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_nul_character_is_rejected() {
        assert_eq!(
            Email::parse("a\0@b.io").unwrap_err().problem,
            Problem::ContainsNul
        );
    }
}
