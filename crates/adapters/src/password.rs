use memlayer_domain::{Password, PasswordHash};
use memlayer_ports::{BoxError, PasswordHasher};

/// bcrypt password hashing.
///
/// The domain refuses passwords over 72 bytes, so bcrypt never truncates one.
#[derive(Debug, Clone)]
pub struct BcryptHasher {
    cost: u32,
    /// Verified against when an account does not exist, so that costs the same time.
    dummy: PasswordHash,
}

impl BcryptHasher {
    /// A hasher of the given cost (4 to 31; 12 in production, 4 in tests).
    pub fn new(cost: u32) -> Result<Self, BoxError> {
        let dummy = bcrypt::hash("memlayer timing equaliser", cost)?;
        Ok(Self {
            cost,
            dummy: PasswordHash::new(dummy),
        })
    }
}

impl PasswordHasher for BcryptHasher {
    fn hash(&self, password: &Password) -> Result<PasswordHash, BoxError> {
        Ok(PasswordHash::new(bcrypt::hash(
            password.expose(),
            self.cost,
        )?))
    }

    fn verify(&self, password: &Password, hash: Option<&PasswordHash>) -> Result<bool, BoxError> {
        match hash {
            Some(hash) => Ok(bcrypt::verify(password.expose(), hash.as_str())?),
            None => {
                bcrypt::verify(password.expose(), self.dummy.as_str())?;
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> BcryptHasher {
        BcryptHasher::new(4).unwrap()
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hasher = hasher();
        let hash = hasher
            .hash(&Password::parse("correct horse").unwrap())
            .unwrap();

        assert!(
            hasher
                .verify(&Password::parse("correct horse").unwrap(), Some(&hash))
                .unwrap()
        );
        assert!(
            !hasher
                .verify(&Password::parse("wrong horse").unwrap(), Some(&hash))
                .unwrap()
        );
    }

    #[test]
    fn hashes_are_salted() {
        let hasher = hasher();
        let password = Password::parse("correct horse").unwrap();
        assert_ne!(
            hasher.hash(&password).unwrap(),
            hasher.hash(&password).unwrap()
        );
    }

    #[test]
    fn a_hash_uses_the_configured_cost() {
        let hash = hasher()
            .hash(&Password::parse("correct horse").unwrap())
            .unwrap();
        assert!(hash.as_str().starts_with("$2b$04$"), "{}", hash.as_str());
    }

    #[test]
    fn a_72_byte_password_differs_from_one_that_shares_71_bytes() {
        let hasher = hasher();
        let base = "a".repeat(71);
        let hash = hasher
            .hash(&Password::parse(&format!("{base}b")).unwrap())
            .unwrap();
        assert!(
            !hasher
                .verify(&Password::parse(&format!("{base}c")).unwrap(), Some(&hash))
                .unwrap()
        );
    }

    #[test]
    fn verifying_without_an_account_is_always_false() {
        let password = Password::parse("memlayer timing equaliser").unwrap();
        assert!(!hasher().verify(&password, None).unwrap());
    }
}
