use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use memlayer_domain::{Session, UserId};
use memlayer_ports::{AccessToken, TokenError, TokenIssuer, TokenVerifier};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The claims of a MemLayer access token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The user's id.
    sub: String,
    /// Issued at, seconds since the epoch.
    iat: i64,
    /// Expires at, seconds since the epoch.
    exp: i64,
    /// Not before, seconds since the epoch (we never issue it; a token that has it
    /// must already be valid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    /// The account's token generation at issue time (see `User::token_generation`).
    /// Tokens issued before revocation existed have none: generation 0.
    #[serde(default, rename = "gen")]
    generation: i64,
}

/// HS256 JSON Web Tokens: issues and verifies access tokens.
///
/// Only HS256 is accepted (`alg: none` and every other algorithm are refused), with no
/// leeway: the same service issues and checks its tokens. A token is expired from its
/// `exp` second on (RFC 7519: "on or after"), not valid before its `nbf`, and its `sub`
/// must be a user id spelled exactly as we issue it (lower-case, hyphenated).
pub struct JwtTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime: TimeDelta,
}

impl JwtTokens {
    /// Tokens signed with `secret`, valid for `lifetime`.
    pub fn new(secret: &[u8], lifetime: TimeDelta) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            lifetime,
        }
    }
}

impl TokenIssuer for JwtTokens {
    fn issue(&self, session: Session, now: DateTime<Utc>) -> Result<AccessToken, TokenError> {
        let claims = Claims {
            sub: session.user.to_string(),
            iat: now.timestamp(),
            exp: (now + self.lifetime).timestamp(),
            nbf: None,
            generation: session.generation,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map(AccessToken)
            .map_err(|error| TokenError::Issue(error.into()))
    }
}

impl TokenVerifier for JwtTokens {
    fn verify(&self, token: &str) -> Result<Session, TokenError> {
        // Why a token is refused (signature, expiry, algorithm, subject) is all one to
        // the client: it must log in again.
        let claims = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_refused| TokenError::Invalid)?
            .claims;
        // jsonwebtoken accepts `exp == now`; RFC 7519 says expired "on or after".
        if claims.exp <= Utc::now().timestamp() {
            return Err(TokenError::Invalid);
        }
        let id = Uuid::parse_str(&claims.sub).map_err(|_not_a_uuid| TokenError::Invalid)?;
        // Only the spelling we issue: not upper case, braces, `urn:uuid:` or simple form.
        if id.hyphenated().to_string() != claims.sub {
            return Err(TokenError::Invalid);
        }
        Ok(Session::new(UserId::from_uuid(id), claims.generation))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"a test secret that is long enough!!";

    fn tokens() -> JwtTokens {
        JwtTokens::new(SECRET, TimeDelta::days(7))
    }

    fn sign(claims: &serde_json::Value, alg: Algorithm, secret: &[u8]) -> String {
        encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn claims(sub: &str, iat: i64, exp: i64) -> serde_json::Value {
        json!({ "sub": sub, "iat": iat, "exp": exp })
    }

    fn base64_url(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn an_issued_token_verifies_to_its_session() {
        let session = Session::new(UserId::generate(), 7);
        let token = tokens().issue(session, Utc::now()).unwrap();
        assert_eq!(tokens().verify(&token.0).unwrap(), session);
    }

    #[test]
    fn a_token_without_a_generation_is_of_generation_zero() {
        let now = Utc::now().timestamp();
        let user = Uuid::now_v7();
        let token = sign(
            &claims(&user.to_string(), now, now + 60),
            Algorithm::HS256,
            SECRET,
        );
        assert_eq!(
            tokens().verify(&token).unwrap(),
            Session::new(UserId::from_uuid(user), 0)
        );
    }

    #[test]
    fn a_token_not_valid_before_a_future_time_is_refused() {
        let now = Utc::now().timestamp();
        let mut claims = claims(&Uuid::now_v7().to_string(), now, now + 600);
        claims["nbf"] = json!(now + 300);
        let token = sign(&claims, Algorithm::HS256, SECRET);
        assert!(matches!(tokens().verify(&token), Err(TokenError::Invalid)));
    }

    #[test]
    fn a_token_whose_expiry_is_now_is_refused() {
        let now = Utc::now().timestamp();
        // Signed for "now" and for the next second, so the check cannot straddle a tick.
        for exp in [now, now - 1] {
            let token = sign(
                &claims(&Uuid::now_v7().to_string(), now - 60, exp),
                Algorithm::HS256,
                SECRET,
            );
            assert!(matches!(tokens().verify(&token), Err(TokenError::Invalid)));
        }
    }

    #[test]
    fn other_spellings_of_the_user_id_are_refused() {
        let now = Utc::now().timestamp();
        let id = Uuid::now_v7();
        for sub in [
            id.hyphenated().to_string().to_uppercase(),
            id.braced().to_string(),
            id.urn().to_string(),
            id.simple().to_string(),
        ] {
            let token = sign(&claims(&sub, now, now + 60), Algorithm::HS256, SECRET);
            assert!(
                matches!(tokens().verify(&token), Err(TokenError::Invalid)),
                "{sub}"
            );
        }
    }

    #[test]
    fn an_issued_token_carries_sub_iat_and_exp_seven_days_apart() {
        let now = Utc::now();
        let user = UserId::generate();
        let token = tokens().issue(Session::new(user, 0), now).unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        let data =
            decode::<Claims>(&token.0, &DecodingKey::from_secret(SECRET), &validation).unwrap();
        assert_eq!(data.claims.sub, user.to_string());
        assert_eq!(data.claims.iat, now.timestamp());
        assert_eq!(data.claims.exp - data.claims.iat, 7 * 24 * 3600);
        assert_eq!(data.header.alg, Algorithm::HS256);
    }

    #[test]
    fn an_expired_token_is_refused() {
        let token = tokens()
            .issue(
                Session::new(UserId::generate(), 0),
                Utc::now() - TimeDelta::days(8),
            )
            .unwrap();
        assert!(matches!(
            tokens().verify(&token.0),
            Err(TokenError::Invalid)
        ));
    }

    #[test]
    fn a_token_that_expired_a_second_ago_is_refused() {
        let now = Utc::now().timestamp();
        let token = sign(
            &claims(&Uuid::now_v7().to_string(), now - 60, now - 1),
            Algorithm::HS256,
            SECRET,
        );
        assert!(matches!(tokens().verify(&token), Err(TokenError::Invalid)));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = JwtTokens::new(b"another secret, just as long as it", TimeDelta::days(7));
        let token = other
            .issue(Session::new(UserId::generate(), 0), Utc::now())
            .unwrap();
        assert!(matches!(
            tokens().verify(&token.0),
            Err(TokenError::Invalid)
        ));
    }

    #[test]
    fn a_token_of_another_hmac_algorithm_is_refused() {
        let now = Utc::now().timestamp();
        let token = sign(
            &claims(&Uuid::now_v7().to_string(), now, now + 60),
            Algorithm::HS512,
            SECRET,
        );
        assert!(matches!(tokens().verify(&token), Err(TokenError::Invalid)));
    }

    #[test]
    fn an_unsigned_alg_none_token_is_refused() {
        let now = Utc::now().timestamp();
        let payload = format!(
            r#"{{"sub":"{}","iat":{now},"exp":{}}}"#,
            Uuid::now_v7(),
            now + 60
        );
        let b64 = |s: &str| base64_url(s.as_bytes());
        let token = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&payload)
        );
        assert!(matches!(tokens().verify(&token), Err(TokenError::Invalid)));
    }

    #[test]
    fn a_token_without_a_subject_is_refused() {
        let now = Utc::now().timestamp();
        let claims = json!({ "iat": now, "exp": now + 60 });
        let token = sign(&claims, Algorithm::HS256, SECRET);
        assert!(matches!(tokens().verify(&token), Err(TokenError::Invalid)));
    }

    #[test]
    fn a_token_whose_subject_is_not_a_user_id_is_refused() {
        let now = Utc::now().timestamp();
        let token = sign(&claims("admin", now, now + 60), Algorithm::HS256, SECRET);
        assert!(matches!(tokens().verify(&token), Err(TokenError::Invalid)));
    }

    #[test]
    fn a_token_with_a_tampered_payload_is_refused() {
        let token = tokens()
            .issue(Session::new(UserId::generate(), 0), Utc::now())
            .unwrap()
            .0;
        let parts: Vec<&str> = token.split('.').collect();
        let now = Utc::now().timestamp();
        let forged = base64_url(
            format!(
                r#"{{"sub":"{}","iat":{now},"exp":{}}}"#,
                Uuid::now_v7(),
                now + 60
            )
            .as_bytes(),
        );
        let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
        assert!(matches!(
            tokens().verify(&tampered),
            Err(TokenError::Invalid)
        ));
    }

    #[test]
    fn garbage_is_refused() {
        for token in ["", "abc", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9"] {
            assert!(
                matches!(tokens().verify(token), Err(TokenError::Invalid)),
                "{token:?}"
            );
        }
    }
}
