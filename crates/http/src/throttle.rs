//! Per-client rate limiting of the credential routes (`/auth/login`, `/auth/register`,
//! `/auth/password`, `DELETE /auth/me`), so passwords cannot be guessed at speed. A
//! refusal is an ordinary JSON 429 that still passes through CORS. The
//! budgets live in the database ([`AttemptLimit`]), so every instance of the service
//! spends from the same one; this module only says who the client is. The limit is its
//! own app data: without one, every attempt is admitted.

use std::future::{Ready, ready};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::web::{self, Data};
use actix_web::{FromRequest, HttpRequest};
use memlayer_app::AttemptLimit;

use crate::error::ApiError;

/// A budget of attempts per client (an IPv4 address, an IPv6 /64), shared through the
/// database by every instance.
pub struct AuthRateLimit {
    limit: Arc<AttemptLimit>,
    trust_forwarded_for: bool,
}

impl AuthRateLimit {
    /// Spends from `limit`'s budgets, one per client. With `trust_forwarded_for`, the
    /// client is the last address of `X-Forwarded-For`, the one the proxy in front
    /// appended (only behind exactly one such proxy: without it, clients could forge
    /// the header).
    pub fn new(limit: AttemptLimit, trust_forwarded_for: bool) -> Self {
        Self {
            limit: Arc::new(limit),
            trust_forwarded_for,
        }
    }

    /// Spends one of `client`'s attempts on the blocking pool (storage blocks); 429 when
    /// its budget is used up, 503 when the database is unavailable.
    async fn admit(&self, client: String) -> Result<(), ApiError> {
        let limit = self.limit.clone();
        Ok(web::block(move || limit.spend(&client)).await??)
    }
}

/// Who sent `req`: its peer, or with `trust_forwarded_for` the address the proxy in front
/// appended to `X-Forwarded-For` (when there is one).
fn client(req: &HttpRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        // The proxy in front appends the address it saw; whatever comes before it, the
        // client may have written itself.
        let nearest = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .last();
        if let Some(ip) = nearest.and_then(|addr| parse_ip(addr.trim())) {
            return Some(ip);
        }
    }
    req.peer_addr().map(|addr| addr.ip())
}

/// The name of the budget `ip` draws on, as stored: `198.51.100.9`, `2001:db8:1:2::/64`.
fn budget_key(ip: IpAddr) -> String {
    match bucket(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{v6}/64"),
    }
}

/// The budget an address draws on: an IPv4 address is its own; an IPv4-mapped IPv6
/// address (`::ffff:198.51.100.9`) is the IPv4 address it maps; any other IPv6 address
/// shares its /64 (one host, or one subscriber's network, usually has a whole /64, so
/// per-address budgets would be no limit at all).
pub(crate) fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

/// An IP address, with or without a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_ip(addr: &str) -> Option<IpAddr> {
    addr.parse()
        .ok()
        .or_else(|| addr.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

/// A request to a credential route, and whose budget it spends from. Extracting it
/// spends nothing: the handler spends an attempt ([`Attempt::spend`]) once the request
/// is otherwise sound, so a request that cannot be authenticated (401) or read (422)
/// costs no budget, whichever extractor finishes first.
pub struct Attempt {
    budget: Option<(Data<AuthRateLimit>, String)>,
}

impl Attempt {
    /// Spends one of the client's attempts, or refuses with 429 and `Retry-After`.
    /// Without a configured limit, admits everything.
    pub(crate) async fn spend(&self) -> Result<(), ApiError> {
        match &self.budget {
            Some((limit, client)) => limit.admit(client.clone()).await,
            None => Ok(()),
        }
    }

    /// Gives back the attempt [`Attempt::spend`] took, for a request refused without
    /// any work done (the password hasher was too busy). A failure is only logged: the
    /// client keeps its refusal either way.
    pub(crate) async fn refund(&self) {
        let Some((limit, client)) = &self.budget else {
            return;
        };
        let (limit, client) = (limit.limit.clone(), client.clone());
        let refunded = web::block(move || limit.refund(&client)).await;
        if let Err(error) = refunded
            .map_err(ApiError::from)
            .and_then(|refunded| refunded.map_err(ApiError::from))
        {
            error.log();
        }
    }
}

impl FromRequest for Attempt {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let limit = req.app_data::<Data<AuthRateLimit>>().cloned();
        let budget = limit.and_then(|limit| {
            let client = budget_key(client(req, limit.trust_forwarded_for)?);
            Some((limit, client))
        });
        ready(Ok(Self { budget }))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn request_from(peer: &str) -> HttpRequest {
        // The client claims 198.51.100.7; the proxy appended the address it saw.
        TestRequest::default()
            .peer_addr(peer.parse().unwrap())
            .insert_header(("x-forwarded-for", "198.51.100.7, 203.0.113.9"))
            .to_http_request()
    }

    #[test]
    fn ipv6_addresses_share_their_64_and_mapped_ipv4_is_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(bucket(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("::ffff:198.51.100.9")), ip("198.51.100.9"));
        assert_eq!(bucket(ip("198.51.100.9")), ip("198.51.100.9"));
        assert_ne!(bucket(ip("2001:db8:1:3::1")), bucket(ip("2001:db8:1:2::1")));
    }

    #[test]
    fn a_budget_is_named_by_its_address_or_its_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(budget_key(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
        assert_eq!(budget_key(ip("::ffff:198.51.100.9")), "198.51.100.9");
        assert_eq!(budget_key(ip("198.51.100.9")), "198.51.100.9");
    }

    #[test]
    fn forwarded_addresses_count_only_when_trusted() {
        assert_eq!(
            client(&request_from("10.0.0.1:1"), true),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(
            client(&request_from("10.0.0.1:1"), false),
            Some("10.0.0.1".parse().unwrap())
        );
    }
}
