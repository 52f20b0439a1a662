//! Reading one variable: a number in a range, or any value through a function, with a
//! default; a bad value is a [`ConfigError`] naming the variable and what was expected.

use std::fmt;

use super::ConfigError;

/// `name` as a number in `range`; `default` when unset.
pub(super) fn parse<'a, T>(
    get: impl Fn(&str) -> Option<&'a str>,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let expected = format!("a whole number from {} to {}", range.start(), range.end());
    parse_with(
        get,
        name,
        Some(default),
        |v| v.parse().ok().filter(|n| range.contains(n)),
        &expected,
    )
}

/// `name` as `read` makes it; `default` when unset (`None`: then it is required).
pub(super) fn parse_with<'a, T>(
    get: impl Fn(&str) -> Option<&'a str>,
    name: &'static str,
    default: Option<T>,
    read: impl Fn(&str) -> Option<T>,
    expected: &str,
) -> Result<T, ConfigError> {
    let error = |value: &str| ConfigError {
        name,
        value: value.to_owned(),
        reason: format!("expected {expected}"),
    };
    match get(name) {
        Some(value) => read(value).ok_or_else(|| error(value)),
        None => default.ok_or_else(|| error("")),
    }
}
