use memlayer_domain::{Email, Password, User, UserId, ValidationErrors};
use memlayer_ports::{AccessToken, CreateUserError};

use crate::{AppError, MemLayer};

impl MemLayer {
    /// Creates an account and logs it in.
    ///
    /// The password is hashed before the database is touched, so no connection is held
    /// during the slow bcrypt work.
    pub fn register(&self, email: &str, password: &str) -> Result<AccessToken, AppError> {
        let (email, password) =
            ValidationErrors::both(Email::parse(email), Password::parse(password))?;

        let password_hash = self
            .ports
            .hasher
            .hash(&password)
            .map_err(AppError::Internal)?;
        let now = self.ports.clock.now();
        let user = User {
            id: UserId::generate(),
            email,
            password_hash,
            created_at: now,
        };
        self.ports
            .users
            .create(&user)
            .map_err(|error| match error {
                CreateUserError::EmailTaken => AppError::EmailTaken,
                CreateUserError::Repository(error) => error.into(),
            })?;
        Ok(self.ports.token_issuer.issue(user.id, now)?)
    }

    /// Exchanges an email and password for an access token.
    ///
    /// An unknown email and a wrong password fail alike, in the same time.
    pub fn login(&self, email: &str, password: &str) -> Result<AccessToken, AppError> {
        let email = Email::parse(email)?;
        let Some(password) = Password::candidate(password) else {
            return Err(AppError::InvalidCredentials);
        };
        let user = self.ports.users.find_by_email(&email)?;
        let matches = self
            .ports
            .hasher
            .verify(&password, user.as_ref().map(|user| &user.password_hash))
            .map_err(AppError::Internal)?;
        match user {
            Some(user) if matches => Ok(self
                .ports
                .token_issuer
                .issue(user.id, self.ports.clock.now())?),
            _ => Err(AppError::InvalidCredentials),
        }
    }

    /// The user a bearer token was issued to. Checks the signature and expiry only; the
    /// use cases check that the account still exists.
    pub fn authenticate(&self, token: &str) -> Result<UserId, AppError> {
        Ok(self.ports.token_verifier.verify(token)?)
    }

    /// The authenticated user's account.
    pub fn current_user(&self, user: UserId) -> Result<User, AppError> {
        self.ports
            .users
            .find_by_id(user)?
            .ok_or(AppError::Unauthenticated)
    }

    /// [`AppError::Unauthenticated`] if the token's account was deleted since.
    pub(crate) fn ensure_user_exists(&self, user: UserId) -> Result<(), AppError> {
        if self.ports.users.exists(user)? {
            Ok(())
        } else {
            Err(AppError::Unauthenticated)
        }
    }
}

#[cfg(test)]
mod tests {
    use memlayer_domain::{PasswordHash, ValidationKind};
    use memlayer_ports::{RepositoryError, TokenError};
    use mockall::predicate::eq;

    use super::*;
    use crate::testing::{Fixture, NOW, user_with_email};

    #[test]
    fn registering_stores_a_normalised_account_and_returns_its_token() {
        let mut fx = Fixture::new();
        fx.hasher
            .expect_hash()
            .withf(|password| password.expose() == "correct horse")
            .returning(|_| Ok(PasswordHash::new("$2b$hash".into())));
        fx.users
            .expect_create()
            .withf(|user| {
                user.email.as_str() == "ada@example.com"
                    && user.password_hash.as_str() == "$2b$hash"
                    && user.created_at == NOW
            })
            .times(1)
            .returning(|_| Ok(()));
        fx.token_issuer
            .expect_issue()
            .with(mockall::predicate::always(), eq(NOW))
            .returning(|_, _| Ok(AccessToken("jwt".into())));

        let token = fx.app().register("  Ada@Example.com ", "correct horse");

        assert_eq!(token.unwrap(), AccessToken("jwt".into()));
    }

    #[test]
    fn registering_reports_every_invalid_field_at_once_and_stores_nothing() {
        let fx = Fixture::new();

        let error = fx.app().register("not-an-email", "short").unwrap_err();

        let AppError::Invalid(errors) = error else {
            panic!("{error:?}")
        };
        let fields: Vec<_> = errors.0.iter().map(|e| (e.field, e.kind)).collect();
        assert_eq!(
            fields,
            [
                ("email", ValidationKind::Invalid),
                ("password", ValidationKind::TooShort)
            ]
        );
    }

    #[test]
    fn registering_a_taken_email_is_a_conflict() {
        let mut fx = Fixture::new();
        fx.hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("h".into())));
        fx.users
            .expect_create()
            .returning(|_| Err(CreateUserError::EmailTaken));

        let error = fx
            .app()
            .register("ada@example.com", "correct horse")
            .unwrap_err();

        assert!(matches!(error, AppError::EmailTaken), "{error:?}");
    }

    #[test]
    fn registering_while_the_database_is_down_is_unavailable() {
        let mut fx = Fixture::new();
        fx.hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("h".into())));
        fx.users.expect_create().returning(|_| {
            Err(CreateUserError::Repository(RepositoryError::Unavailable(
                "down".into(),
            )))
        });

        let error = fx
            .app()
            .register("ada@example.com", "correct horse")
            .unwrap_err();

        assert!(matches!(error, AppError::Unavailable(_)), "{error:?}");
    }

    #[test]
    fn logging_in_with_the_right_password_returns_a_token() {
        let mut fx = Fixture::new();
        let user = user_with_email("ada@example.com");
        let id = user.id;
        fx.users
            .expect_find_by_email()
            .withf(|email| email.as_str() == "ada@example.com")
            .returning(move |_| Ok(Some(user.clone())));
        fx.hasher
            .expect_verify()
            .withf(|password, hash| password.expose() == "correct horse" && hash.is_some())
            .returning(|_, _| Ok(true));
        fx.token_issuer
            .expect_issue()
            .with(eq(id), eq(NOW))
            .returning(|_, _| Ok(AccessToken("jwt".into())));

        let token = fx.app().login("ADA@example.com", "correct horse").unwrap();

        assert_eq!(token, AccessToken("jwt".into()));
    }

    #[test]
    fn logging_in_with_a_wrong_password_is_refused() {
        let mut fx = Fixture::new();
        let user = user_with_email("ada@example.com");
        fx.users
            .expect_find_by_email()
            .returning(move |_| Ok(Some(user.clone())));
        fx.hasher.expect_verify().returning(|_, _| Ok(false));

        let error = fx
            .app()
            .login("ada@example.com", "wrong password")
            .unwrap_err();

        assert!(matches!(error, AppError::InvalidCredentials), "{error:?}");
    }

    #[test]
    fn logging_in_with_an_unknown_email_still_runs_the_hasher_and_is_refused_alike() {
        let mut fx = Fixture::new();
        fx.users.expect_find_by_email().returning(|_| Ok(None));
        fx.hasher
            .expect_verify()
            .withf(|_, hash| hash.is_none())
            .times(1)
            .returning(|_, _| Ok(false));

        let error = fx
            .app()
            .login("nobody@example.com", "whatever1")
            .unwrap_err();

        assert!(matches!(error, AppError::InvalidCredentials), "{error:?}");
    }

    #[test]
    fn logging_in_with_a_password_longer_than_bcrypt_reads_is_refused_without_truncation() {
        let fx = Fixture::new();

        let error = fx
            .app()
            .login("ada@example.com", &"a".repeat(73))
            .unwrap_err();

        assert!(matches!(error, AppError::InvalidCredentials), "{error:?}");
    }

    #[test]
    fn logging_in_with_a_malformed_email_is_invalid_input() {
        let error = Fixture::new().app().login("nope", "whatever1").unwrap_err();

        assert!(matches!(error, AppError::Invalid(_)), "{error:?}");
    }

    #[test]
    fn a_valid_token_authenticates_its_user() {
        let mut fx = Fixture::new();
        let id = UserId::generate();
        fx.token_verifier
            .expect_verify()
            .with(eq("t"))
            .returning(move |_| Ok(id));

        assert_eq!(fx.app().authenticate("t").unwrap(), id);
    }

    #[test]
    fn an_invalid_token_is_unauthenticated() {
        let mut fx = Fixture::new();
        fx.token_verifier
            .expect_verify()
            .returning(|_| Err(TokenError::Invalid));

        let error = fx.app().authenticate("t").unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn the_current_user_is_read_from_storage() {
        let mut fx = Fixture::new();
        let user = user_with_email("ada@example.com");
        let expected = user.clone();
        fx.users
            .expect_find_by_id()
            .with(eq(user.id))
            .returning(move |_| Ok(Some(user.clone())));

        assert_eq!(fx.app().current_user(expected.id).unwrap(), expected);
    }

    #[test]
    fn a_deleted_account_is_no_longer_a_current_user() {
        let mut fx = Fixture::new();
        fx.users.expect_find_by_id().returning(|_| Ok(None));

        let error = fx.app().current_user(UserId::generate()).unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }
}
