//! Keeping the database password out of messages and logs.

/// `url` without its passwords, for messages: the `user:password@` part and any query
/// parameter whose name mentions a password (`password`, `sslpassword`).
pub(crate) fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut redacted = match base.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((credentials, host)) => match credentials.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
                None => base.to_owned(),
            },
            None => base.to_owned(),
        },
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                    format!("{name}=***")
                }
                _ => param.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&params.join("&"));
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_redacted_of_its_password_only() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(
            redact("sqlite://data/memlayer.db"),
            "sqlite://data/memlayer.db"
        );
    }

    #[test]
    fn a_password_in_the_query_is_redacted_too() {
        assert_eq!(
            redact("postgres://app@db/x?password=s3cr@t&sslmode=require"),
            "postgres://app@db/x?password=***&sslmode=require"
        );
        assert_eq!(
            redact("postgres://app:pw@db/x?sslmode=require&sslpassword=k3y"),
            "postgres://app:***@db/x?sslmode=require&sslpassword=***"
        );
        assert_eq!(
            redact("postgresql:///x?host=/run/pg&user=app&PASSWORD=s"),
            "postgresql:///x?host=/run/pg&user=app&PASSWORD=***"
        );
    }
}
