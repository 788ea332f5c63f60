//! Request-rate quotas as token buckets: a bucket holds up to one second of requests and
//! refills at the quota's rate, like Cognito's per-second quotas. Several operations can
//! share one bucket (Cognito counts ListUsers and ListUsersInGroup against one quota).

use std::time::Instant;

/// One token bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket allowing `rate` requests per second (a burst of one second's worth,
    /// at least one request).
    pub fn new(rate: f64) -> TokenBucket {
        let capacity = rate.max(1.0);
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            refilled_at: Instant::now(),
        }
    }

    /// The quota in requests per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Takes a token if one is available at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.refilled_at = now;
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
    use std::time::{Duration, Instant};

    use super::TokenBucket;

    #[test]
    fn allows_a_burst_of_one_second_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(30.0);
        assert_eq!((0..40).filter(|_| bucket.try_take(start)).count(), 30);
        assert!(!bucket.try_take(start));
        let later = start + Duration::from_millis(100);
        assert_eq!((0..10).filter(|_| bucket.try_take(later)).count(), 3);
    }

    #[test]
    fn a_slow_quota_still_allows_one_request() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(0.5);
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start + Duration::from_secs(1)));
        assert!(bucket.try_take(start + Duration::from_secs(2)));
    }
}
