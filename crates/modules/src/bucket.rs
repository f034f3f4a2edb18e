//! A token bucket: `burst` at once, refilled at a steady rate. Used for
//! registrations per address (register.rs) and messages per room
//! occupant (muc).

use std::time::{Duration, Instant};

/// One bucket's state.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    tokens: f64,
    counted: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(burst: u32) -> Bucket {
        Bucket {
            tokens: f64::from(burst.max(1)),
            counted: Instant::now(),
        }
    }

    /// Takes one token, earning one per `every` since last counted, up to
    /// `burst`; false when none is left.
    pub fn take(&mut self, burst: u32, every: Duration) -> bool {
        let now = Instant::now();
        let per_token = every.as_secs_f64().max(1e-6);
        let earned = now.duration_since(self.counted).as_secs_f64() / per_token;
        self.tokens = (self.tokens + earned).min(f64::from(burst.max(1)));
        self.counted = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_nothing_until_refilled() {
        let mut b = Bucket::full(3);
        let hour = Duration::from_secs(3600);
        assert!(b.take(3, hour) && b.take(3, hour) && b.take(3, hour));
        assert!(!b.take(3, hour));
        // Time earns tokens back.
        std::thread::sleep(Duration::from_millis(3));
        assert!(b.take(3, Duration::from_millis(1)));
    }
}
