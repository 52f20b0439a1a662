//! Administering accounts: the admin routes and the operator's `memlayer admin`
//! commands. Every change is logged as one structured line (who, what, to whom).

use memlayer_domain::{
    AccountRole, Cursor, Email, Page, PageRequest, Password, Session, User, UserId,
};
use memlayer_ports::{AccountChange, AccountSummary};

use crate::{AppError, MemLayer};

/// Who made an admin change, for the log.
#[derive(Debug, Clone, Copy)]
enum Actor {
    Admin(UserId),
    Operator,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Admin(id) => write!(f, "{}", id.as_uuid()),
            Self::Operator => f.write_str("operator"),
        }
    }
}

/// One structured log line per admin change.
fn log(actor: Actor, action: &str, target: &User, detail: &str) {
    tracing::info!(
        target: "memlayer::admin",
        actor = %actor,
        action,
        user = %target.id.as_uuid(),
        email = target.email.as_str(),
        detail,
        "admin action"
    );
}

/// An account for an admin to create: its email and password, checked.
#[derive(Debug)]
pub struct AdminNewAccount {
    /// The email.
    pub email: Email,
    /// The password, checked against the policy.
    pub password: Password,
}

impl MemLayer {
    /// The session's account, if it is current and an enabled admin (the role is read
    /// now, so a change of role applies to the tokens an account already has).
    fn admin(&self, session: Session) -> Result<User, AppError> {
        let user = self.current_account(session)?;
        if user.is_admin() {
            Ok(user)
        } else {
            Err(AppError::AdminsOnly)
        }
    }

    /// A page of accounts whose email holds `email_contains`, newest first.
    pub fn admin_list_users(
        &self,
        session: Session,
        email_contains: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<AccountSummary>, AppError> {
        self.admin(session)?;
        // One more than asked: whether another page follows.
        let fetched = self.ports.users.list(
            email_contains,
            page.after(),
            page.limit().saturating_add(1),
            self.today(),
        )?;
        Ok(Page::from_overfetch(fetched, page.limit(), |summary| {
            Cursor {
                created_at: summary.user.created_at,
                id: summary.user.id.as_uuid(),
            }
        }))
    }

    /// Creates an account, whether or not registration is open.
    pub fn admin_create_user(
        &self,
        session: Session,
        account: AdminNewAccount,
    ) -> Result<AccountSummary, AppError> {
        let admin = self.admin(session)?;
        let user = self.create_account(account.email, &account.password, AccountRole::User)?;
        log(Actor::Admin(admin.id), "create", &user, "");
        Ok(AccountSummary {
            user,
            chats: 0,
            tokens_used: 0,
        })
    }

    /// Changes an account's role, disabled state or token limit.
    pub fn admin_change_user(
        &self,
        session: Session,
        id: UserId,
        change: AccountChange,
    ) -> Result<AccountSummary, AppError> {
        let admin = self.admin(session)?;
        let user = self
            .ports
            .users
            .change(id, &change)?
            .ok_or(AppError::UserNotFound)?;
        log(Actor::Admin(admin.id), "change", &user, &describe(&change));
        self.ports
            .users
            .summary(id, self.today())?
            .ok_or(AppError::UserNotFound)
    }

    /// Deletes an account with its chats and messages.
    pub fn admin_delete_user(&self, session: Session, id: UserId) -> Result<(), AppError> {
        let admin = self.admin(session)?;
        let user = self
            .ports
            .users
            .find_by_id(id)?
            .ok_or(AppError::UserNotFound)?;
        if !self.ports.users.delete_by_id(id)? {
            return Err(AppError::UserNotFound);
        }
        log(Actor::Admin(admin.id), "delete", &user, "");
        Ok(())
    }

    /// The operator's `memlayer admin grant|revoke EMAIL`: makes the account an admin,
    /// or a user again. [`AppError::UserNotFound`] for an unknown email.
    pub fn operator_set_role(&self, email: &Email, role: AccountRole) -> Result<User, AppError> {
        let user = self
            .ports
            .users
            .find_by_email(email)?
            .ok_or(AppError::UserNotFound)?;
        let change = AccountChange {
            role: Some(role),
            ..AccountChange::default()
        };
        let user = self
            .ports
            .users
            .change(user.id, &change)?
            .ok_or(AppError::UserNotFound)?;
        log(Actor::Operator, "change", &user, &describe(&change));
        Ok(user)
    }

    /// The operator's `memlayer admin create EMAIL`: a new admin account, whether or not
    /// registration is open.
    pub fn operator_create_admin(&self, account: AdminNewAccount) -> Result<User, AppError> {
        let user = self.create_account(account.email, &account.password, AccountRole::Admin)?;
        log(Actor::Operator, "create", &user, "role=admin");
        Ok(user)
    }
}

/// What a change sets, for the log: `role=admin disabled=true token_limit=default`.
fn describe(change: &AccountChange) -> String {
    let mut parts = Vec::new();
    if let Some(role) = change.role {
        parts.push(format!("role={}", role.as_str()));
    }
    if let Some(disabled) = change.disabled {
        parts.push(format!("disabled={disabled}"));
    }
    match change.token_limit {
        Some(Some(limit)) => parts.push(format!("token_limit={limit}")),
        Some(None) => parts.push("token_limit=default".to_owned()),
        None => {}
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, email, first_page, session_of, user_with_email, with_account};
    use memlayer_domain::AccountRole;
    use memlayer_ports::{AccountChange, AccountChangeError};

    #[test]
    fn only_a_current_enabled_admin_reaches_the_admin_use_cases() {
        let user = user_with_email("ada@example.com");
        let admin = User {
            role: AccountRole::Admin,
            ..user_with_email("root@example.com")
        };
        let disabled = User {
            disabled: true,
            ..admin.clone()
        };
        for (account, session, expected) in [
            (&user, session_of(&user), "AdminsOnly"),
            (&disabled, session_of(&disabled), "AdminsOnly"),
            (&admin, Session::new(admin.id, 1), "Unauthenticated"),
        ] {
            let mut fx = with_account(account);
            fx.users.expect_list().never();
            let error = fx
                .app()
                .admin_list_users(session, None, first_page(10))
                .unwrap_err();
            assert_eq!(format!("{error:?}"), expected);
        }
    }

    #[test]
    fn a_refused_change_is_the_last_admin_and_an_unknown_account_is_not_found() {
        let admin = User {
            role: AccountRole::Admin,
            ..user_with_email("root@example.com")
        };
        let mut fx = with_account(&admin);
        let target = UserId::generate();
        fx.users.expect_change().returning(move |id, _| {
            if id == target {
                Ok(None)
            } else {
                Err(AccountChangeError::LastAdmin)
            }
        });
        let app = fx.app();
        let demote = AccountChange {
            role: Some(AccountRole::User),
            ..AccountChange::default()
        };

        let last = app.admin_change_user(session_of(&admin), admin.id, demote);
        let unknown = app.admin_change_user(session_of(&admin), target, demote);

        assert!(matches!(last, Err(AppError::LastAdmin)), "{last:?}");
        assert!(
            matches!(unknown, Err(AppError::UserNotFound)),
            "{unknown:?}"
        );
    }

    #[test]
    fn the_operator_grants_by_email_and_an_unknown_email_is_not_found() {
        let mut fx = Fixture::new();
        fx.users.expect_find_by_email().returning(|_| Ok(None));
        fx.users.expect_change().never();

        let error = fx
            .app()
            .operator_set_role(&email("nobody@example.com"), AccountRole::Admin)
            .unwrap_err();

        assert!(matches!(error, AppError::UserNotFound), "{error:?}");
    }
}
