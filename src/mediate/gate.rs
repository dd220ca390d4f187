//! What keeps the LLM out of the way: at most ORCA_LLM_CONCURRENCY calls at once, each
//! bounded by ORCA_LLM_TIMEOUT_SEC with at most one retry, and a circuit breaker that lets
//! the rules decide for a minute after repeated failures.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::client::LlmError;

/// Failures in a row that open the breaker.
pub const FAILURES_TO_OPEN: u32 = 3;
/// How long an open breaker stays open.
pub const OPEN_FOR: Duration = Duration::from_secs(60);

/// The circuit breaker's state: a pure policy (times are given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    /// Some(time left) while open.
    pub fn open_for(&self, now: Instant) -> Option<Duration> {
        self.open_until
            .and_then(|t| t.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Records a call's end; true when this failure opened the breaker.
    pub fn record(&mut self, ok: bool, now: Instant) -> bool {
        if ok {
            self.failures = 0;
            self.open_until = None;
            return false;
        }
        self.failures += 1;
        if self.failures >= FAILURES_TO_OPEN && self.open_for(now).is_none() {
            self.open_until = Some(now + OPEN_FOR);
            // After it closes, one more failure opens it again.
            self.failures = FAILURES_TO_OPEN - 1;
            return true;
        }
        false
    }
}

/// Concurrency, timeout, retry and breaker around every LLM call.
pub struct Gate {
    permits: Semaphore,
    timeout: Duration,
    breaker: Mutex<Breaker>,
}

impl Gate {
    pub fn new(concurrency: usize, timeout: Duration) -> Gate {
        Gate {
            permits: Semaphore::new(concurrency.max(1)),
            timeout,
            breaker: Mutex::new(Breaker::default()),
        }
    }

    /// Some(seconds left) while the breaker is open.
    pub fn open_secs(&self) -> Option<u64> {
        let b = self.breaker.lock().ok()?;
        b.open_for(Instant::now()).map(|d| d.as_secs().max(1))
    }

    /// Runs `call` (made anew for the retry) under the gate.
    pub async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, LlmError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        if let Some(secs_left) = self.open_secs() {
            return Err(LlmError::BreakerOpen { secs_left });
        }
        let Ok(_permit) = self.permits.acquire().await else {
            return Err(LlmError::Transport("the LLM gate is closed".into()));
        };
        // The breaker may have opened while this call waited for its turn.
        if let Some(secs_left) = self.open_secs() {
            return Err(LlmError::BreakerOpen { secs_left });
        }
        let ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut answer = Err(LlmError::Timeout { ms });
        for try_no in 0..2 {
            answer = match tokio::time::timeout(self.timeout, call()).await {
                Ok(a) => a,
                Err(_) => Err(LlmError::Timeout { ms }),
            };
            match &answer {
                Err(e) if try_no == 0 && e.retryable() => continue,
                _ => break,
            }
        }
        if let Ok(mut b) = self.breaker.lock() {
            if b.record(answer.is_ok(), Instant::now()) {
                tracing::warn!(
                    "LLM: {FAILURES_TO_OPEN} failures in a row; rules decide for the next {} s",
                    OPEN_FOR.as_secs()
                );
            }
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_table() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        // (ok, seconds after t0, opened now, open afterwards)
        let steps: [(bool, u64, bool, bool); 7] = [
            (false, 0, false, false),
            (false, 1, false, false),
            (true, 2, false, false),
            (false, 3, false, false),
            (false, 4, false, false),
            (false, 5, true, true),
            (false, 66, true, true),
        ];
        for (ok, at, opened, open) in steps {
            let now = t0 + Duration::from_secs(at);
            assert_eq!(b.record(ok, now), opened, "at {at}");
            assert_eq!(b.open_for(now).is_some(), open, "at {at}");
        }
        assert!(b.open_for(t0 + Duration::from_secs(200)).is_none());
    }

    #[tokio::test]
    async fn one_retry_then_the_breaker() {
        let gate = Gate::new(1, Duration::from_secs(5));
        let calls = std::sync::atomic::AtomicU32::new(0);
        let bad = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err::<(), _>(LlmError::Malformed("x".into()))
        };
        for _ in 0..3 {
            assert_eq!(gate.run(bad).await.unwrap_err().kind(), "malformed_json");
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 6);
        assert_eq!(gate.run(bad).await.unwrap_err().kind(), "breaker_open");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 6);
        assert!(gate.open_secs().is_some());
    }
}
