use std::fmt;

/// Which value of an input broke a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// An account's email address.
    Email,
    /// An account's password.
    Password,
    /// A chat's title.
    Title,
    /// A message's text.
    Content,
    /// A search query.
    Query,
    /// A folder's name.
    FolderName,
}

impl Field {
    /// The field's name in the domain's words (for logs and messages).
    pub fn name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Password => "password",
            Self::Title => "title",
            Self::Content => "content",
            Self::Query => "query",
            Self::FolderName => "folder name",
        }
    }
}

/// Which rule a value broke, with the limit it broke when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Problem {
    /// Empty, or only white space, where text is required.
    Blank,
    /// Fewer characters than allowed.
    TooFewChars {
        /// The fewest allowed.
        min: usize,
    },
    /// More characters than allowed.
    TooManyChars {
        /// The most allowed.
        max: usize,
    },
    /// More bytes than allowed (bcrypt reads no further).
    TooManyBytes {
        /// The most allowed.
        max: usize,
    },
    /// Holds the NUL character, which PostgreSQL's `text` cannot store.
    ContainsNul,
    /// Not of the form `name@example.com`.
    NotAnEmail,
    /// Holds an invisible or text-direction control character (zero-width, bidi,
    /// other format characters), which would make look-alike values.
    InvisibleCharacter,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blank => f.write_str("is blank"),
            Self::TooFewChars { min } => write!(f, "has fewer than {min} characters"),
            Self::TooManyChars { max } => write!(f, "has more than {max} characters"),
            Self::TooManyBytes { max } => write!(f, "has more than {max} bytes"),
            Self::ContainsNul => f.write_str("contains the NUL character"),
            Self::NotAnEmail => f.write_str("is not an email address"),
            Self::InvisibleCharacter => f.write_str("contains an invisible character"),
        }
    }
}

/// One field that broke one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationError {
    /// The field.
    pub field: Field,
    /// The rule it broke.
    pub problem: Problem,
}

impl ValidationError {
    /// `field` broke the rule `problem`.
    pub fn new(field: Field, problem: Problem) -> Self {
        Self { field, problem }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field.name(), self.problem)
    }
}

impl std::error::Error for ValidationError {}

/// Every field error of one input, so a client can show them all at once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    /// Both values, or the errors of every field that failed.
    pub fn both<A, B>(
        a: Result<A, ValidationError>,
        b: Result<B, ValidationError>,
    ) -> Result<(A, B), Self> {
        match (a, b) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            (a, b) => Err(Self(a.err().into_iter().chain(b.err()).collect())),
        }
    }
}

impl From<ValidationError> for ValidationErrors {
    fn from(error: ValidationError) -> Self {
        Self(vec![error])
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let messages: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&messages.join("; "))
    }
}

impl std::error::Error for ValidationErrors {}

/// Rejects the one character PostgreSQL's `text` cannot hold, on every backend alike.
pub(crate) fn reject_nul(field: Field, value: &str) -> Result<(), ValidationError> {
    if value.contains('\0') {
        Err(ValidationError::new(field, Problem::ContainsNul))
    } else {
        Ok(())
    }
}
