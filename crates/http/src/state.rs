use std::sync::Arc;

use memlayer_app::MemLayer;
use memlayer_app::ports::HealthCheck;
use tokio::sync::Semaphore;

use crate::throttle::AuthRateLimit;

/// What every handler shares: the application and the readiness probe.
pub struct ApiState {
    /// The use cases.
    pub app: MemLayer,
    /// Checks that the database answers, for `/health/ready`.
    pub health: Arc<dyn HealthCheck>,
    /// The per-client budget of `/auth/login` and `/auth/register` calls; `None`: no limit.
    pub auth_rate_limit: Option<AuthRateLimit>,
    /// How many logins and registrations (bcrypt) may run at once. The others wait here,
    /// without holding a thread, so a login storm cannot take the threads and CPUs that
    /// chat traffic needs.
    pub bcrypt_slots: Semaphore,
}
