//! Running one check: the command of a criterion that ends in a backticked command, split
//! by shell-words rules (no shell in between), in its own process group with a time limit.

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::CheckResult;
use crate::artifacts::result::{CheckRun, Verdict};
use crate::runner::process::ProcessTree;
use crate::task::Criterion;

/// The output kept of a check (its last bytes), in bytes.
pub const TAIL_BYTES: usize = 4096;
/// The default of the task key `check_timeout_sec`.
pub const DEFAULT_TIMEOUT_SEC: u64 = 120;
/// How long the output is still read after the check's processes are gone (a descendant
/// that escaped into its own session may hold the pipe open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(20);

/// The command of a criterion that is a check: the text between the last pair of backticks
/// when the line ends with the closing one (`Tests pass: \`cargo test\``).
pub fn check_command(text: &str) -> Option<&str> {
    let body = text.trim_end().strip_suffix('`')?;
    let open = body.rfind('`')?;
    let cmd = body[open + 1..].trim();
    (!cmd.is_empty()).then_some(cmd)
}

/// Whether the task was cancelled (asked now and then while a check runs).
pub type Cancelled<'a> = &'a (dyn Fn() -> bool + Sync);

/// A [`Cancelled`] that never is.
pub fn never() -> bool {
    false
}

/// Runs the check of every criterion that has one, in order, in `dir`; `remove_env` are
/// the variables the check must not see (the secrets agents do not get either). A cancel
/// kills the running check (its whole group) and skips the rest: those after it get no
/// result.
pub fn run_checks(
    criteria: &[Criterion],
    dir: &Path,
    timeout: Duration,
    remove_env: &[String],
    cancelled: Cancelled<'_>,
) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for (i, c) in criteria.iter().enumerate() {
        let Some(cmd) = check_command(&c.text) else {
            continue;
        };
        if cancelled() {
            break;
        }
        out.push(run_check_cancellable(
            i, cmd, dir, timeout, remove_env, cancelled,
        ));
    }
    out
}

/// Runs one check command: exit 0 is met; any other end (an exit code, a signal, the time
/// limit, a command that cannot start) is unmet, with the reason.
pub fn run_check(
    criterion: usize,
    command: &str,
    dir: &Path,
    timeout: Duration,
    remove_env: &[String],
) -> CheckResult {
    run_check_cancellable(criterion, command, dir, timeout, remove_env, &never)
}

/// [`run_check`], killed (unmet, reason `cancelled`) as soon as `cancelled()` says so.
pub fn run_check_cancellable(
    criterion: usize,
    command: &str,
    dir: &Path,
    timeout: Duration,
    remove_env: &[String],
    cancelled: Cancelled<'_>,
) -> CheckResult {
    let started = Instant::now();
    let unmet = |reason: String, exit_code, timed_out, output_tail: String| CheckResult {
        criterion,
        verdict: Verdict::Unmet,
        reason,
        run: CheckRun {
            command: command.to_owned(),
            exit_code,
            timed_out,
            output_tail,
            duration_ms: elapsed_ms(started),
        },
    };
    let argv = match shell_words::split(command) {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => {
            return unmet(
                "cannot start: the command is empty".into(),
                None,
                false,
                String::new(),
            )
        }
        Err(e) => {
            return unmet(
                format!(
                    "cannot start: the command cannot be split into words ({e}); check its quotes"
                ),
                None,
                false,
                String::new(),
            )
        }
    };
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => {
            return unmet(
                format!("cannot start: no pipe for its output: {e}"),
                None,
                false,
                String::new(),
            )
        }
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => {
            return unmet(
                format!("cannot start: no pipe for its output: {e}"),
                None,
                false,
                String::new(),
            )
        }
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .process_group(0);
    for name in remove_env {
        cmd.env_remove(name);
    }
    let spawned = cmd.spawn();
    // Our copies of the write end go now: the reader ends when the check's processes do.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "cannot start: '{}' was not found (is it installed and on PATH?)",
                    argv[0]
                )
            } else {
                format!("cannot start '{}': {e}", argv[0])
            };
            return unmet(why, None, false, String::new());
        }
    };
    let tail = Arc::new(Mutex::new(Vec::<u8>::new()));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let reading = {
        let tail = Arc::clone(&tail);
        std::thread::Builder::new()
            .name("orca-check-output".into())
            .spawn(move || {
                read_tail(reader, &tail);
                let _ = done_tx.send(());
            })
    };
    let mut tree = ProcessTree::new(child.id());
    let deadline = started + timeout;
    let waited = wait_until(&mut child, &mut tree, deadline, cancelled);
    let status = match waited {
        Waited::Exited(s) => Some(s),
        Waited::TimedOut | Waited::Cancelled => None,
    };
    // Whatever is left of the check (a background child in its group, a descendant that
    // left it) is killed, as an agent's are.
    kill_all(&child, &mut tree);
    if status.is_none() {
        // Reaped after the kill: the time ran out.
        let _ = child.wait();
    }
    if reading.is_ok() {
        let _ = done_rx.recv_timeout(DRAIN_GRACE);
    }
    let output_tail = tail.lock().map(|t| tail_text(&t)).unwrap_or_default();
    match waited {
        Waited::Cancelled => unmet(CANCELLED.into(), None, false, output_tail),
        Waited::TimedOut => unmet(
            format!("timed out after {} s", timeout.as_secs()),
            None,
            true,
            output_tail,
        ),
        Waited::Exited(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
            (Some(0), _) => CheckResult {
                criterion,
                verdict: Verdict::Met,
                reason: "exit code 0".into(),
                run: CheckRun {
                    command: command.to_owned(),
                    exit_code: Some(0),
                    timed_out: false,
                    output_tail,
                    duration_ms: elapsed_ms(started),
                },
            },
            (Some(code), _) => unmet(format!("exit code {code}"), Some(code), false, output_tail),
            (None, Some(sig)) => unmet(format!("killed by signal {sig}"), None, false, output_tail),
            (None, None) => unmet(
                "ended without an exit code".into(),
                None,
                false,
                output_tail,
            ),
        },
    }
}

/// The reason of a check killed by a cancel of its task.
pub const CANCELLED: &str = "cancelled while it ran";

/// How waiting for a check ended.
enum Waited {
    Exited(std::process::ExitStatus),
    TimedOut,
    Cancelled,
}

/// Waits for the check to exit until `deadline` or a cancel.
fn wait_until(
    child: &mut Child,
    tree: &mut ProcessTree,
    deadline: Instant,
    cancelled: Cancelled<'_>,
) -> Waited {
    let mut polls = 0u32;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Waited::Exited(s),
            Ok(None) => {}
            // Not waitable: treated as ended (its processes are killed next).
            Err(_) => return Waited::TimedOut,
        }
        if cancelled() {
            return Waited::Cancelled;
        }
        if Instant::now() >= deadline {
            return Waited::TimedOut;
        }
        // Descendants are looked up now and then, so that one that leaves the group is
        // still known when the check ends.
        if polls.is_multiple_of(10) {
            tree.refresh();
        }
        polls = polls.wrapping_add(1);
        std::thread::sleep(POLL);
    }
}

/// SIGKILL to the check's process group and to every descendant seen.
fn kill_all(child: &Child, tree: &mut ProcessTree) {
    if let Ok(pid) = i32::try_from(child.id()) {
        if pid > 1 {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    tree.refresh();
    tree.signal_all(Signal::SIGKILL);
    tree.kill_survivors();
}

/// Reads `r` to its end, keeping only the last [`TAIL_BYTES`] (plus a little slack).
fn read_tail(mut r: impl Read, tail: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if let Ok(mut t) = tail.lock() {
                    t.extend_from_slice(&buf[..n]);
                    if t.len() > 2 * TAIL_BYTES {
                        let cut = t.len() - TAIL_BYTES;
                        t.drain(..cut);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The last [`TAIL_BYTES`] of `bytes` as text, starting at a character boundary.
pub fn tail_text(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(TAIL_BYTES);
    let mut s = &bytes[start..];
    // Skip continuation bytes of a character cut at the start.
    while let Some((&b, rest)) = s.split_first() {
        if b & 0xC0 == 0x80 {
            s = rest;
        } else {
            break;
        }
    }
    String::from_utf8_lossy(s).into_owned()
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_is_a_criterion_ending_in_a_backticked_command() {
        let table = [
            (
                "Tests pass: `cargo test --quiet`",
                Some("cargo test --quiet"),
            ),
            ("`make check`  ", Some("make check")),
            ("use `x` then `y z`", Some("y z")),
            ("no command", None),
            ("`cargo test` is run", None),
            ("empty ``", None),
            ("one backtick`", None),
            ("spaces `  `", None),
        ];
        for (text, want) in table {
            assert_eq!(check_command(text), want, "{text}");
        }
    }

    #[test]
    fn the_tail_is_bounded_and_starts_at_a_character() {
        let mut b = "é".repeat(TAIL_BYTES).into_bytes();
        b.push(b'!');
        let t = tail_text(&b);
        assert!(t.len() <= TAIL_BYTES, "{}", t.len());
        assert!(t.ends_with("é!"));
        assert!(!t.contains('\u{FFFD}'));
        assert_eq!(tail_text(b"short"), "short");
    }

    #[test]
    fn exit_codes_start_failures_and_bad_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let ok = run_check(0, "true", dir.path(), Duration::from_secs(10), &[]);
        assert_eq!((ok.verdict, ok.run.exit_code), (Verdict::Met, Some(0)));
        let bad = run_check(
            1,
            "sh -c 'echo oops; exit 3'",
            dir.path(),
            Duration::from_secs(10),
            &[],
        );
        assert_eq!((bad.verdict, bad.run.exit_code), (Verdict::Unmet, Some(3)));
        assert_eq!(bad.run.output_tail, "oops\n");
        assert_eq!(bad.reason, "exit code 3");
        let missing = run_check(
            2,
            "orca-no-such-command-x",
            dir.path(),
            Duration::from_secs(10),
            &[],
        );
        assert_eq!(missing.verdict, Verdict::Unmet);
        assert!(
            missing.reason.contains("was not found"),
            "{}",
            missing.reason
        );
        let quotes = run_check(3, "echo 'open", dir.path(), Duration::from_secs(10), &[]);
        assert!(quotes.reason.contains("quotes"), "{}", quotes.reason);
        // No shell: `;` is an argument.
        let literal = run_check(4, "echo a; false", dir.path(), Duration::from_secs(10), &[]);
        assert_eq!(literal.verdict, Verdict::Met);
        assert_eq!(literal.run.output_tail, "a; false\n");
    }

    #[test]
    fn a_cancel_kills_the_running_check_and_skips_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let crit = |t: &str| Criterion {
            text: t.into(),
            checked: false,
        };
        let criteria = [crit("Hangs: `sleep 600`"), crit("Next: `true`")];
        let since = Instant::now();
        let cancel = move || since.elapsed() > Duration::from_millis(200);
        let got = run_checks(
            &criteria,
            dir.path(),
            Duration::from_secs(600),
            &[],
            &cancel,
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].verdict, Verdict::Unmet);
        assert_eq!(got[0].reason, CANCELLED);
        assert!(!got[0].run.timed_out);
    }
}
