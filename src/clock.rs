//! Wall-clock helpers: milliseconds since the Unix epoch and RFC 3339 UTC with milliseconds.

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T10:30:00.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    // Years 0000-9999 by hand (every event line carries one: no formatting machinery);
    // anything else through jiff.
    const MAX_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    const MIN_MS: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
    if !(MIN_MS..=MAX_MS).contains(&ms) {
        return match jiff::Timestamp::from_millisecond(ms) {
            Ok(ts) => format!("{ts:.3}"),
            Err(_) => "1970-01-01T00:00:00.000Z".to_owned(),
        };
    }
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    let mut out = [0u8; 24];
    let mut put = |at: usize, v: i64, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, y, 4);
    put(5, m, 2);
    put(8, d, 2);
    put(11, h, 2);
    put(14, min, 2);
    put(17, s, 2);
    put(20, milli, 3);
    for (at, c) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ] {
        out[at] = c;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// Year, month, day of the proleptic Gregorian calendar for days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
    }

    proptest::proptest! {
        /// The hand-made format is jiff's, over the whole range it covers and beyond.
        #[test]
        fn formats_as_jiff_does(ms in -62_167_219_300_000i64..253_402_300_900_000) {
            let want = jiff::Timestamp::from_millisecond(ms).map(|t| format!("{t:.3}")).unwrap();
            proptest::prop_assert_eq!(rfc3339_ms(ms), want);
        }
    }
}
