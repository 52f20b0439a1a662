use chrono::{DateTime, SubsecRound, Utc};
use memlayer_ports::Clock;

/// The system clock, truncated to microseconds (what both databases store), so a
/// timestamp returned to a client equals the one read back later.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Timelike;

    use super::*;

    #[test]
    fn the_clock_reads_whole_microseconds() {
        assert_eq!(SystemClock.now().nanosecond() % 1_000, 0);
    }
}
