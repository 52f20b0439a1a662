//! Zero-setup mode: without `JWT_SECRET`, a random development secret is generated once
//! and kept next to the SQLite database, so tokens survive a restart.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use secrecy::SecretString;

/// The secret stored beside `db_path` (`<folder>/jwt-secret`), created if missing.
pub fn load_or_create(db_path: &Path) -> io::Result<SecretString> {
    let file = secret_file(db_path);
    tracing::warn!(
        file = %file.display(),
        "JWT_SECRET is not set: using a development secret kept next to the database. \
         Production must set JWT_SECRET (at least 32 random bytes)."
    );
    match std::fs::read_to_string(&file) {
        Ok(secret) if secret.trim().len() >= crate::config::MIN_SECRET_BYTES => {
            Ok(SecretString::from(secret.trim()))
        }
        Ok(_) => Err(io::Error::other(format!(
            "{} holds no usable secret: delete it to have a new one made",
            file.display()
        ))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => create(&file),
        Err(error) => Err(error),
    }
}

fn secret_file(db_path: &Path) -> PathBuf {
    db_path
        .parent()
        .unwrap_or(Path::new("."))
        .join("jwt-secret")
}

fn create(file: &Path) -> io::Result<SecretString> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| io::Error::other(error.to_string()))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(mut handle) => {
            handle.write_all(secret.as_bytes())?;
            handle.sync_all()?;
            Ok(SecretString::from(secret))
        }
        // Another instance made it first: use theirs.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            Ok(SecretString::from(std::fs::read_to_string(file)?.trim()))
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn temp_db() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("memlayer-secret-{}", uuid::Uuid::now_v7()));
        dir.join("memlayer.db")
    }

    #[test]
    fn a_secret_is_made_once_and_read_back_after_a_restart() {
        let db = temp_db();
        let first = load_or_create(&db).unwrap();
        let second = load_or_create(&db).unwrap();
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert_eq!(first.expose_secret().len(), 64);
        std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_secret_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let db = temp_db();
        load_or_create(&db).unwrap();
        let mode = std::fs::metadata(secret_file(&db))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_corrupt_secret_file_is_reported_not_replaced() {
        let db = temp_db();
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        std::fs::write(secret_file(&db), "short").unwrap();
        assert!(load_or_create(&db).is_err());
        std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
    }
}
