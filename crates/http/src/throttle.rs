//! Per-client rate limiting of the credential routes (`/auth/login`, `/auth/register`),
//! so passwords cannot be guessed at speed. An extractor, so a refusal is an ordinary
//! JSON 429 that still passes through CORS. The limit is its own app data: without one,
//! every attempt is admitted.

use std::future::{Ready, ready};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::dev::Payload;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// How often (in checks) idle clients are forgotten, so memory stays bounded.
const FORGET_EVERY: u64 = 4_096;

/// A budget of attempts per client IP address, refilled continuously.
pub struct AuthRateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    trust_forwarded_for: bool,
    checks: AtomicU64,
}

impl AuthRateLimit {
    /// `per_minute` attempts a minute per client, all of which may come at once. With
    /// `trust_forwarded_for`, the client is the last address of `X-Forwarded-For`, the
    /// one the proxy in front appended (only behind exactly one such proxy: without it,
    /// clients could forge the header).
    pub fn per_minute(per_minute: NonZeroU32, trust_forwarded_for: bool) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            trust_forwarded_for,
            checks: AtomicU64::new(0),
        }
    }

    fn admit(&self, req: &HttpRequest) -> Result<(), ApiError> {
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(FORGET_EVERY)
        {
            self.limiter.retain_recent();
        }
        let Some(client) = self.client(req).map(bucket) else {
            return Ok(());
        };
        self.limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::TooManyRequests(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        })
    }

    fn client(&self, req: &HttpRequest) -> Option<IpAddr> {
        if self.trust_forwarded_for {
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

/// Admits a request to a credential route within its client's budget, or refuses it
/// with 429 and `Retry-After`. Without a configured limit, admits everything.
#[derive(Debug)]
pub struct AuthThrottle;

impl FromRequest for AuthThrottle {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let limit = req.app_data::<Data<AuthRateLimit>>();
        ready(match limit {
            Some(limit) => limit.admit(req).map(|()| Self),
            None => Ok(Self),
        })
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
    fn a_client_gets_its_budget_then_waits_and_others_are_unaffected() {
        let limit = AuthRateLimit::per_minute(NonZeroU32::new(2).unwrap(), false);

        assert!(limit.admit(&request_from("10.0.0.1:1000")).is_ok());
        assert!(limit.admit(&request_from("10.0.0.1:1001")).is_ok());
        let refused = limit.admit(&request_from("10.0.0.1:1002")).unwrap_err();
        assert!(
            matches!(refused, ApiError::TooManyRequests(secs) if (1..=30).contains(&secs)),
            "{refused:?}"
        );
        assert!(limit.admit(&request_from("10.0.0.2:1000")).is_ok());
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
    fn forwarded_addresses_count_only_when_trusted() {
        let trusting = AuthRateLimit::per_minute(NonZeroU32::new(1).unwrap(), true);
        let ignoring = AuthRateLimit::per_minute(NonZeroU32::new(1).unwrap(), false);

        assert_eq!(
            trusting.client(&request_from("10.0.0.1:1")),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(
            ignoring.client(&request_from("10.0.0.1:1")),
            Some("10.0.0.1".parse().unwrap())
        );
    }
}
