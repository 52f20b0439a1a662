//! Folders: a user's own groups of chats.

use memlayer_domain::{Folder, FolderId, FolderName, Session};

use crate::{AppError, MemLayer};

impl MemLayer {
    /// Every folder of the user's, oldest first.
    pub fn list_folders(&self, session: Session) -> Result<Vec<Folder>, AppError> {
        let folders = self.ports.folders.list_for_owner(session)?;
        if folders.is_empty() {
            // No folders may also mean no account, or revoked tokens: those get 401.
            self.ensure_current(session)?;
        }
        Ok(folders)
    }

    /// Creates a folder for the user.
    pub fn create_folder(&self, session: Session, name: FolderName) -> Result<Folder, AppError> {
        let folder = Folder {
            id: FolderId::generate(),
            owner: session.user,
            name,
            created_at: self.ports.clock.now(),
        };
        if self.ports.folders.create(&folder, session.generation)? {
            Ok(folder)
        } else {
            Err(AppError::Unauthenticated)
        }
    }

    /// Renames one of the user's folders.
    pub fn rename_folder(
        &self,
        session: Session,
        folder: FolderId,
        name: FolderName,
    ) -> Result<Folder, AppError> {
        let mut folder = self.owned_folder(session, folder)?;
        if !self.ports.folders.rename(folder.id, &name)? {
            return Err(AppError::FolderNotFound);
        }
        folder.name = name;
        Ok(folder)
    }

    /// Deletes one of the user's folders; its chats stay, in no folder.
    pub fn delete_folder(&self, session: Session, folder: FolderId) -> Result<(), AppError> {
        let folder = self.owned_folder(session, folder)?;
        if self.ports.folders.delete(folder.id)? {
            Ok(())
        } else {
            Err(AppError::FolderNotFound)
        }
    }

    /// The folder, if the session is current and the folder is its user's: missing is
    /// [`AppError::FolderNotFound`], someone else's [`AppError::NotFolderOwner`].
    fn owned_folder(&self, session: Session, folder: FolderId) -> Result<Folder, AppError> {
        let found = self.ports.folders.find(folder)?;
        self.ensure_current(session)?;
        match found {
            None => Err(AppError::FolderNotFound),
            Some(folder) if folder.owner != session.user => Err(AppError::NotFolderOwner),
            Some(folder) => Ok(folder),
        }
    }
}

#[cfg(test)]
mod tests {
    use memlayer_domain::UserId;
    use mockall::predicate::eq;

    use super::*;
    use crate::testing::{Fixture, NOW, any_session, folder_owned_by};

    fn name(text: &str) -> FolderName {
        FolderName::parse(text).unwrap()
    }

    #[test]
    fn creating_a_folder_stores_it_for_the_user_now() {
        let mut fx = Fixture::new();
        let session = any_session();
        let user = session.user;
        fx.folders
            .expect_create()
            .withf(move |folder, generation| {
                folder.owner == user
                    && folder.name.as_str() == "Work"
                    && folder.created_at == NOW
                    && *generation == 0
            })
            .times(1)
            .returning(|_, _| Ok(true));

        let folder = fx.app().create_folder(session, name("Work")).unwrap();

        assert_eq!(folder.name.as_str(), "Work");
    }

    #[test]
    fn creating_a_folder_with_a_revoked_token_is_unauthenticated() {
        let mut fx = Fixture::new();
        fx.folders.expect_create().returning(|_, _| Ok(false));

        let error = fx
            .app()
            .create_folder(any_session(), name("Work"))
            .unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn renaming_ones_folder_returns_it_renamed() {
        let mut fx = Fixture::new();
        let session = any_session();
        let folder = folder_owned_by(session.user);
        let id = folder.id;
        fx.folders
            .expect_find()
            .with(eq(id))
            .returning(move |_| Ok(Some(folder.clone())));
        fx.users.expect_is_current().returning(|_| Ok(true));
        fx.folders
            .expect_rename()
            .withf(move |folder, name| *folder == id && name.as_str() == "Home")
            .times(1)
            .returning(|_, _| Ok(true));

        let renamed = fx.app().rename_folder(session, id, name("Home")).unwrap();

        assert_eq!(renamed.name.as_str(), "Home");
    }

    #[test]
    fn someone_elses_folder_is_forbidden_and_a_missing_one_not_found() {
        for (found, owned_by_another) in [
            (Some(folder_owned_by(UserId::generate())), true),
            (None, false),
        ] {
            let mut fx = Fixture::new();
            fx.folders
                .expect_find()
                .returning(move |_| Ok(found.clone()));
            fx.users.expect_is_current().returning(|_| Ok(true));
            fx.folders.expect_delete().never();

            let error = fx
                .app()
                .delete_folder(any_session(), FolderId::generate())
                .unwrap_err();

            if owned_by_another {
                assert!(matches!(error, AppError::NotFolderOwner), "{error:?}");
            } else {
                assert!(matches!(error, AppError::FolderNotFound), "{error:?}");
            }
        }
    }

    #[test]
    fn a_revoked_token_gets_unauthenticated_even_on_its_own_folder() {
        let mut fx = Fixture::new();
        let session = any_session();
        let folder = folder_owned_by(session.user);
        let id = folder.id;
        fx.folders
            .expect_find()
            .returning(move |_| Ok(Some(folder.clone())));
        fx.users.expect_is_current().returning(|_| Ok(false));
        fx.folders.expect_delete().never();

        let error = fx.app().delete_folder(session, id).unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }

    #[test]
    fn listing_no_folders_checks_that_the_account_still_exists() {
        let mut fx = Fixture::new();
        fx.folders.expect_list_for_owner().returning(|_| Ok(vec![]));
        fx.users.expect_is_current().returning(|_| Ok(false));

        let error = fx.app().list_folders(any_session()).unwrap_err();

        assert!(matches!(error, AppError::Unauthenticated), "{error:?}");
    }
}
