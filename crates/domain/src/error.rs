use std::fmt;

/// What kind of rule a value broke; the stable, machine-readable part of a
/// [`ValidationError`] (FastAPI/pydantic use the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationKind {
    /// A required value is absent.
    Missing,
    /// A string is shorter than allowed (or blank where text is required).
    TooShort,
    /// A string is longer than allowed.
    TooLong,
    /// A value has the right type but is not acceptable (an email without `@`, …).
    Invalid,
}

impl ValidationKind {
    /// The pydantic-compatible type name used in 422 bodies.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::TooShort => "string_too_short",
            Self::TooLong => "string_too_long",
            Self::Invalid => "value_error",
        }
    }
}

/// Where in a request an input came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// The JSON body.
    Body,
    /// The query string.
    Query,
}

/// One field that broke one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Where the field came from.
    pub location: Location,
    /// The input field, as the client named it (`email`, `title`, …).
    pub field: &'static str,
    /// Which rule was broken.
    pub kind: ValidationKind,
    /// A sentence for a human.
    pub message: String,
}

impl ValidationError {
    /// A validation error on `field` of the body.
    pub fn new(field: &'static str, kind: ValidationKind, message: impl Into<String>) -> Self {
        Self {
            location: Location::Body,
            field,
            kind,
            message: message.into(),
        }
    }
}

impl ValidationError {
    /// The same error, on a query parameter.
    pub fn in_query(self) -> Self {
        Self {
            location: Location::Query,
            ..self
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
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
pub(crate) fn reject_nul(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.contains('\0') {
        Err(ValidationError::new(
            field,
            ValidationKind::Invalid,
            "must not contain the NUL character (\\u0000)",
        ))
    } else {
        Ok(())
    }
}
