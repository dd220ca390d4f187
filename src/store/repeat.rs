//! Repeated store errors reach the log with growing gaps, not on every tick: a fault that
//! lasts (a damaged record, a database that became read-only) is reported at once, then
//! after 1 s, 2 s, 4 s ... up to every 5 minutes, each report saying how many were held back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The gap after the first report of an error.
pub const FIRST_GAP: Duration = Duration::from_secs(1);
/// The longest gap between two reports of the same error.
pub const MAX_GAP: Duration = Duration::from_secs(300);

/// The last error seen at one place in the code.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    message: String,
    /// The same error is held back until then.
    next: Instant,
    gap: Duration,
    /// Times it was held back since its last report.
    held: u64,
}

/// What to do with an error: report it (with the count held back since the last report),
/// or hold it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Report { held: u64 },
    Hold,
}

/// The policy, pure: a new or different error is reported at once; the same one again is
/// held back until its gap has passed, then reported and the gap doubled.
fn decide(seen: Option<&Seen>, message: &str, now: Instant) -> (Verdict, Seen) {
    match seen {
        Some(s) if s.message == message && now < s.next => (
            Verdict::Hold,
            Seen {
                held: s.held + 1,
                ..s.clone()
            },
        ),
        Some(s) if s.message == message => {
            let gap = (s.gap * 2).min(MAX_GAP);
            (
                Verdict::Report { held: s.held },
                Seen {
                    message: s.message.clone(),
                    next: now + s.gap,
                    gap,
                    held: 0,
                },
            )
        }
        _ => (
            Verdict::Report { held: 0 },
            Seen {
                message: message.to_owned(),
                next: now + FIRST_GAP,
                gap: FIRST_GAP * 2,
                held: 0,
            },
        ),
    }
}

/// One place that logs store errors (a `static` beside the log line).
#[derive(Debug, Default)]
pub struct Repeats {
    seen: Mutex<Option<Seen>>,
}

impl Repeats {
    pub const fn new() -> Self {
        Repeats {
            seen: Mutex::new(None),
        }
    }

    /// `Some(note)` when `message` is to be logged now, `note` to append to the line (empty,
    /// or how many times the same error was held back); None to hold it back.
    pub fn admit(&self, message: &str) -> Option<String> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (verdict, next) = decide(seen.as_ref(), message, Instant::now());
        *seen = Some(next);
        match verdict {
            Verdict::Hold => None,
            Verdict::Report { held: 0 } => Some(String::new()),
            Verdict::Report { held } => Some(format!(
                " (the same error {held} more time(s) since the last report)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_error_is_reported_with_doubling_gaps() {
        let t0 = Instant::now();
        let s = |secs: f64| t0 + Duration::from_secs_f64(secs);
        // (time, message, verdict)
        let table: &[(f64, &str, Verdict)] = &[
            (0.0, "a", Verdict::Report { held: 0 }),
            (0.25, "a", Verdict::Hold),
            (0.5, "a", Verdict::Hold),
            (1.0, "a", Verdict::Report { held: 2 }),
            (2.5, "a", Verdict::Hold),
            (3.0, "a", Verdict::Report { held: 1 }),
            (6.0, "a", Verdict::Hold),
            (7.0, "a", Verdict::Report { held: 1 }),
            // A different error is news: reported at once, its own gaps from the start.
            (7.1, "b", Verdict::Report { held: 0 }),
            (7.2, "b", Verdict::Hold),
            (7.3, "a", Verdict::Report { held: 0 }),
        ];
        let mut seen: Option<Seen> = None;
        for (at, msg, want) in table {
            let (got, next) = decide(seen.as_ref(), msg, s(*at));
            assert_eq!(got, *want, "at {at} s, {msg}");
            seen = Some(next);
        }
    }

    #[test]
    fn the_gap_stops_growing_at_the_maximum() {
        let mut now = Instant::now();
        let mut seen: Option<Seen> = None;
        for _ in 0..20 {
            let (v, next) = decide(seen.as_ref(), "a", now);
            assert!(matches!(v, Verdict::Report { .. }));
            now = next.next;
            seen = Some(next);
        }
        assert_eq!(seen.map(|s| s.gap), Some(MAX_GAP));
    }

    #[test]
    fn admit_holds_back_an_immediate_repeat() {
        let r = Repeats::new();
        assert_eq!(r.admit("x").as_deref(), Some(""));
        assert_eq!(r.admit("x"), None);
        assert_eq!(r.admit("y").as_deref(), Some(""));
    }
}
