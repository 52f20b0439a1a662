use memlayer_domain::{AccountRole, Email, Password, Session, User, UserId};
use memlayer_ports::{AccessToken, CreateUserError};

use crate::{AppError, MemLayer};

impl MemLayer {
    /// Creates an account and logs it in.
    ///
    /// The password is hashed before the database is touched, so no connection is held
    /// during the slow bcrypt work.
    pub fn register(&self, email: Email, password: Password) -> Result<AccessToken, AppError> {
        self.ensure_registration_open()?;
        let user = self.create_account(email, &password, AccountRole::User)?;
        Ok(self.ports.token_issuer.issue(
            Session::new(user.id, user.token_generation),
            user.created_at,
        )?)
    }

    /// Stores a new account with `role`, its password hashed first (registration, and
    /// the admins' and the operator's accounts).
    pub(crate) fn create_account(
        &self,
        email: Email,
        password: &Password,
        role: AccountRole,
    ) -> Result<User, AppError> {
        let hash = self
            .ports
            .hasher
            .hash(password)
            .map_err(AppError::Internal)?;
        let user = User {
            role,
            ..User::new(email, hash, self.ports.clock.now())
        };
        self.ports
            .users
            .create(&user)
            .map_err(|error| match error {
                CreateUserError::EmailTaken => AppError::EmailTaken,
                CreateUserError::Repository(error) => error.into(),
            })?;
        Ok(user)
    }

    /// Exchanges an email and password for an access token.
    ///
    /// An unknown email and a wrong password fail alike, in the same time. The password
    /// is a [`Password::candidate`]: `None` when longer than bcrypt reads, which can
    /// never be right.
    pub fn login(
        &self,
        email: &Email,
        password: Option<Password>,
    ) -> Result<AccessToken, AppError> {
        let Some(password) = password else {
            return Err(AppError::InvalidCredentials);
        };
        let user = self.ports.users.find_by_email(email)?;
        let matches = self
            .ports
            .hasher
            .verify(&password, user.as_ref().map(|user| &user.password_hash))
            .map_err(AppError::Internal)?;
        match user {
            // Only with the right password: a stranger learns nothing of the account.
            Some(user) if matches && user.disabled => Err(AppError::AccountDisabled),
            Some(user) if matches => Ok(self.ports.token_issuer.issue(
                Session::new(user.id, user.token_generation),
                self.ports.clock.now(),
            )?),
            _ => Err(AppError::InvalidCredentials),
        }
    }

    /// The session a bearer token was issued for. Checks the signature and expiry only
    /// (no I/O); the use cases check that the session is still current (the account
    /// exists and its tokens were not revoked since), in a query they make anyway.
    pub fn authenticate(&self, token: &str) -> Result<Session, AppError> {
        Ok(self.ports.token_verifier.verify(token)?)
    }

    /// The authenticated user's account.
    pub fn current_user(&self, session: Session) -> Result<User, AppError> {
        self.current_account(session)
    }

    /// Changes the password, given the current one, and revokes every token issued
    /// before: the answer is a fresh token, the only one that works afterwards.
    ///
    /// A wrong current password is [`AppError::WrongPassword`]. The new password is
    /// checked against the policy before anything slow happens.
    pub fn change_password(
        &self,
        session: Session,
        current_password: Option<Password>,
        new_password: Password,
    ) -> Result<AccessToken, AppError> {
        let user = self.confirm_password(session, current_password)?;
        let hash = self
            .ports
            .hasher
            .hash(&new_password)
            .map_err(AppError::Internal)?;
        let generation = self
            .ports
            .users
            .revoke_tokens(session, Some(&hash))?
            .ok_or(AppError::Unauthenticated)?;
        Ok(self
            .ports
            .token_issuer
            .issue(Session::new(user.id, generation), self.ports.clock.now())?)
    }

    /// Revokes every token of the account, this session's included.
    pub fn log_out_everywhere(&self, session: Session) -> Result<(), AppError> {
        self.ports
            .users
            .revoke_tokens(session, None)?
            .map(|_| ())
            .ok_or(AppError::Unauthenticated)
    }

    /// Deletes the account with its chats and messages, given its password. Its tokens
    /// stop working and the email may register again. [`AppError::LastAdmin`] for the
    /// last enabled admin.
    pub fn delete_account(
        &self,
        session: Session,
        password: Option<Password>,
    ) -> Result<(), AppError> {
        self.confirm_password(session, password)?;
        if self.ports.users.delete(session)? {
            Ok(())
        } else {
            Err(AppError::Unauthenticated)
        }
    }

    /// The account, if `session` is current.
    pub(crate) fn current_account(&self, session: Session) -> Result<User, AppError> {
        self.ports
            .users
            .find_by_id(session.user)?
            .filter(|user| user.accepts(session))
            .ok_or(AppError::Unauthenticated)
    }

    /// The account, if `session` is current and `candidate` (a [`Password::candidate`])
    /// is its password.
    fn confirm_password(
        &self,
        session: Session,
        candidate: Option<Password>,
    ) -> Result<User, AppError> {
        let user = self.current_account(session)?;
        let Some(candidate) = candidate else {
            return Err(AppError::WrongPassword);
        };
        let matches = self
            .ports
            .hasher
            .verify(&candidate, Some(&user.password_hash))
            .map_err(AppError::Internal)?;
        if matches {
            Ok(user)
        } else {
            Err(AppError::WrongPassword)
        }
    }

    /// Which of `sessions` are no longer current (their tokens were revoked, or their
    /// account deleted), in one query: for the streams that follow replies, which end
    /// when their session does.
    pub fn stale_sessions(&self, sessions: &[Session]) -> Result<Vec<Session>, AppError> {
        let users: Vec<UserId> = sessions.iter().map(|session| session.user).collect();
        let current = self.ports.users.token_generations(&users)?;
        Ok(sessions
            .iter()
            .filter(|session| {
                !current.iter().any(|&(user, generation)| {
                    user == session.user && generation == session.generation
                })
            })
            .copied()
            .collect())
    }

    /// [`AppError::Unauthenticated`] unless `session` is current: the account exists and
    /// its tokens were not revoked since this one was issued.
    pub(crate) fn ensure_current(&self, session: Session) -> Result<(), AppError> {
        if self.ports.users.is_current(session)? {
            Ok(())
        } else {
            Err(AppError::Unauthenticated)
        }
    }
}

#[cfg(test)]
mod tests {
    use memlayer_domain::PasswordHash;
    use memlayer_ports::{RepositoryError, TokenError};
    use mockall::predicate::eq;

    use super::*;
    use crate::testing::{
        Fixture, NOW, any_session, candidate, email, password, session_of, user_with_email,
        with_account,
    };

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

        let token = fx
            .app()
            .register(email("  Ada@Example.com "), password("correct horse"));

        assert_eq!(token.unwrap(), AccessToken("jwt".into()));
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
            .register(email("ada@example.com"), password("correct horse"))
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
            .register(email("ada@example.com"), password("correct horse"))
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
            .with(eq(Session::new(id, 0)), eq(NOW))
            .returning(|_, _| Ok(AccessToken("jwt".into())));

        let token = fx
            .app()
            .login(&email("ADA@example.com"), candidate("correct horse"))
            .unwrap();

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
            .login(&email("ada@example.com"), candidate("wrong password"))
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
            .login(&email("nobody@example.com"), candidate("whatever1"))
            .unwrap_err();

        assert!(matches!(error, AppError::InvalidCredentials), "{error:?}");
    }

    #[test]
    fn logging_in_with_a_password_longer_than_bcrypt_reads_is_refused_without_truncation() {
        let fx = Fixture::new();

        let error = fx
            .app()
            .login(&email("ada@example.com"), candidate(&"a".repeat(73)))
            .unwrap_err();

        assert!(matches!(error, AppError::InvalidCredentials), "{error:?}");
    }

    #[test]
    fn a_valid_token_authenticates_its_user() {
        let mut fx = Fixture::new();
        let session = Session::new(UserId::generate(), 2);
        fx.token_verifier
            .expect_verify()
            .with(eq("t"))
            .returning(move |_| Ok(session));

        assert_eq!(fx.app().authenticate("t").unwrap(), session);
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

        assert_eq!(
            fx.app().current_user(session_of(&expected)).unwrap(),
            expected
        );
    }

    #[test]
    fn a_deleted_account_is_no_longer_a_current_user() {
        let mut fx = Fixture::new();
        fx.users.expect_find_by_id().returning(|_| Ok(None));

        let error = fx.app().current_user(any_session()).unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn a_token_of_an_earlier_generation_is_no_longer_a_current_user() {
        let mut fx = Fixture::new();
        let mut user = user_with_email("ada@example.com");
        let stale = session_of(&user);
        user.token_generation = 1;
        fx.users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(user.clone())));

        let error = fx.app().current_user(stale).unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn changing_the_password_stores_the_new_hash_revokes_tokens_and_issues_a_fresh_one() {
        let user = user_with_email("ada@example.com");
        let session = session_of(&user);
        let mut fx = with_account(&user);
        fx.hasher
            .expect_verify()
            .withf(|password, hash| password.expose() == "old password" && hash.is_some())
            .returning(|_, _| Ok(true));
        fx.hasher
            .expect_hash()
            .withf(|password| password.expose() == "new password")
            .returning(|_| Ok(PasswordHash::new("$2b$new".into())));
        fx.users
            .expect_revoke_tokens()
            .withf(move |s, hash| {
                *s == session && hash.map(PasswordHash::as_str) == Some("$2b$new")
            })
            .times(1)
            .returning(|_, _| Ok(Some(1)));
        fx.token_issuer
            .expect_issue()
            .with(eq(Session::new(user.id, 1)), eq(NOW))
            .returning(|_, _| Ok(AccessToken("fresh".into())));

        let token = fx
            .app()
            .change_password(session, candidate("old password"), password("new password"))
            .unwrap();

        assert_eq!(token, AccessToken("fresh".into()));
    }

    #[test]
    fn changing_the_password_with_a_wrong_current_one_is_refused_and_changes_nothing() {
        let user = user_with_email("ada@example.com");
        let mut fx = with_account(&user);
        fx.hasher.expect_verify().returning(|_, _| Ok(false));
        fx.users.expect_revoke_tokens().never();

        let error = fx
            .app()
            .change_password(
                session_of(&user),
                candidate("wrong guess"),
                password("new password"),
            )
            .unwrap_err();

        assert!(matches!(error, AppError::WrongPassword), "{error:?}");
    }

    #[test]
    fn changing_the_password_with_a_revoked_token_is_unauthenticated() {
        let mut user = user_with_email("ada@example.com");
        let stale = session_of(&user);
        user.token_generation = 5;
        let mut fx = with_account(&user);
        fx.hasher.expect_verify().never();

        let error = fx
            .app()
            .change_password(stale, candidate("old password"), password("new password"))
            .unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn a_password_change_that_loses_a_race_with_a_revocation_is_unauthenticated() {
        let user = user_with_email("ada@example.com");
        let mut fx = with_account(&user);
        fx.hasher.expect_verify().returning(|_, _| Ok(true));
        fx.hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("h".into())));
        fx.users.expect_revoke_tokens().returning(|_, _| Ok(None));

        let error = fx
            .app()
            .change_password(
                session_of(&user),
                candidate("old password"),
                password("new password"),
            )
            .unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn logging_out_everywhere_revokes_the_sessions_generation() {
        let mut fx = Fixture::new();
        let session = any_session();
        fx.users
            .expect_revoke_tokens()
            .withf(move |s, hash| *s == session && hash.is_none())
            .times(1)
            .returning(|_, _| Ok(Some(1)));

        assert!(fx.app().log_out_everywhere(session).is_ok());
    }

    #[test]
    fn logging_out_everywhere_with_a_revoked_token_is_unauthenticated() {
        let mut fx = Fixture::new();
        fx.users.expect_revoke_tokens().returning(|_, _| Ok(None));

        let error = fx.app().log_out_everywhere(any_session()).unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn deleting_the_account_with_its_password_deletes_it() {
        let user = user_with_email("ada@example.com");
        let session = session_of(&user);
        let mut fx = with_account(&user);
        fx.hasher.expect_verify().returning(|_, _| Ok(true));
        fx.users
            .expect_delete()
            .with(eq(session))
            .times(1)
            .returning(|_| Ok(true));

        assert!(
            fx.app()
                .delete_account(session, candidate("password1"))
                .is_ok()
        );
    }

    #[test]
    fn deleting_the_account_with_a_wrong_password_deletes_nothing() {
        let user = user_with_email("ada@example.com");
        let mut fx = with_account(&user);
        fx.hasher.expect_verify().returning(|_, _| Ok(false));
        fx.users.expect_delete().never();

        let error = fx
            .app()
            .delete_account(session_of(&user), candidate("wrong guess"))
            .unwrap_err();

        assert!(matches!(error, AppError::WrongPassword), "{error:?}");
    }

    #[test]
    fn deleting_the_account_while_the_database_is_down_is_unavailable() {
        let user = user_with_email("ada@example.com");
        let mut fx = with_account(&user);
        fx.hasher.expect_verify().returning(|_, _| Ok(true));
        fx.users
            .expect_delete()
            .returning(|_| Err(RepositoryError::Unavailable("down".into()).into()));

        let error = fx
            .app()
            .delete_account(session_of(&user), candidate("password1"))
            .unwrap_err();

        assert!(matches!(error, AppError::Unavailable(_)), "{error:?}");
    }
}
