use std::sync::Arc;

use memlayer_app::MemLayer;
use memlayer_app::ports::HealthCheck;

/// What every handler shares: the application and the readiness probe.
pub struct ApiState {
    /// The use cases.
    pub app: MemLayer,
    /// Checks that the database answers, for `/health/ready`.
    pub health: Arc<dyn HealthCheck>,
}
