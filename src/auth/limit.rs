//! Per-user login failure limits: after a few failed logins in a row, a user's next
//! attempts must wait (1 s, doubling up to a minute), so nobody can use the proxy to
//! hammer the server, or the proxy itself, with password guesses.

use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

/// Failures in a row that cost nothing.
const FREE_FAILURES: u32 = 5;
/// The longest wait after a run of failures.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// A user's failures are forgotten this long after the last one.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// At most this many users are tracked, so spraying user names cannot grow memory.
const MAX_TRACKED: usize = 10_000;

struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long after the last failure the next attempt must wait.
    fn wait(&self) -> Duration {
        if self.count < FREE_FAILURES {
            return Duration::ZERO;
        }
        let doublings = (self.count - FREE_FAILURES).min(6);
        (Duration::from_secs(1) * (1 << doublings)).min(MAX_WAIT)
    }
}

#[derive(Default)]
pub struct FailureLimiter {
    users: DashMap<String, Failures>,
}

impl FailureLimiter {
    /// `Err(retry_in)` while `user` must wait before trying again.
    pub fn check(&self, user: &str) -> Result<(), Duration> {
        let Some(f) = self.users.get(user) else {
            return Ok(());
        };
        let until = f.last + f.wait();
        let now = Instant::now();
        if now < until {
            return Err(until - now);
        }
        Ok(())
    }

    pub fn failed(&self, user: &str) {
        let now = Instant::now();
        if let Some(mut f) = self.users.get_mut(user) {
            f.count += 1;
            f.last = now;
            return;
        }
        if self.users.len() >= MAX_TRACKED {
            self.users
                .retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if self.users.len() >= MAX_TRACKED {
                tracing::warn!(user, "too many users with failed logins to track another");
                return;
            }
        }
        self.users.insert(
            user.to_string(),
            Failures {
                count: 1,
                last: now,
            },
        );
    }

    pub fn succeeded(&self, user: &str) {
        self.users.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moves `user`'s last failure back by `by`, as if that much time had passed.
    fn age(limiter: &FailureLimiter, user: &str, by: Duration) {
        let mut f = limiter.users.get_mut(user).unwrap();
        f.last -= by;
    }

    #[tokio::test]
    async fn waits_grow_after_free_failures_and_reset_on_success() {
        let limiter = FailureLimiter::default();
        for _ in 0..FREE_FAILURES {
            assert!(limiter.check("app").is_ok());
            limiter.failed("app");
        }
        let wait = limiter.check("app").unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        assert!(limiter.check("other").is_ok(), "limits are per user");
        age(&limiter, "app", Duration::from_secs(1));
        assert!(limiter.check("app").is_ok());
        limiter.failed("app");
        assert!(limiter.check("app").unwrap_err() > Duration::from_millis(1900));
        for _ in 0..20 {
            limiter.failed("app");
        }
        assert!(limiter.check("app").unwrap_err() > MAX_WAIT - Duration::from_secs(1));
        limiter.succeeded("app");
        assert!(limiter.check("app").is_ok());
    }
}
