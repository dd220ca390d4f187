//! Wall-clock helpers: milliseconds since the Unix epoch and RFC 3339 UTC with milliseconds.

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T10:30:00.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => "1970-01-01T00:00:00.000Z".to_owned(),
    }
}

/// `rfc3339_ms(now_ms())`.
pub fn now_rfc3339() -> String {
    rfc3339_ms(now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis() {
        assert_eq!(rfc3339_ms(1_764_066_600_123), "2025-11-25T10:30:00.123Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
