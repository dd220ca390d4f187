//! Retry backoff for transient failures: exponential, capped.

use std::time::Duration;

/// Delay before retry number `n` (1-based): `base * 2^(n-1)`, capped at `cap`.
pub fn delay(base: Duration, cap: Duration, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let b = Duration::from_millis(100);
        let c = Duration::from_secs(1);
        assert_eq!(delay(b, c, 1), Duration::from_millis(100));
        assert_eq!(delay(b, c, 2), Duration::from_millis(200));
        assert_eq!(delay(b, c, 3), Duration::from_millis(400));
        assert_eq!(delay(b, c, 5), c);
        assert_eq!(delay(b, c, 40), c);
    }
}
