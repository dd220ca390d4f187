//! Generic supervision of one agent process: started with an argument vector in its own
//! process group in an opened working folder, the prompt on stdin, stdout read line by line
//! (saved raw, handed to the agent's [`LineSink`]), stderr's tail kept, a timeout and a
//! cancel that stop the whole tree (SIGTERM, SIGKILL after a grace), and every process the
//! attempt started, however it detached, ended with it (see [`super::escape`]).

use std::os::fd::BorrowedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::process::ProcessTree;
use super::spawn::{self, AgentChild, SpawnError};
use super::stream::{read_line_bounded, LineRead};
use super::{Progress, ProgressSender};
use crate::workspace::{in_folder, FolderError};

/// How much of the agent's stderr is kept.
pub const STDERR_TAIL_BYTES: usize = 4096;
/// Longer prompts up to this size are written to the agent's stdin in place once it has
/// started: a Linux pipe normally holds 64 KiB, so the write does not wait for the agent.
const PROMPT_INLINE_BYTES: usize = 16 * 1024;
/// Prompts up to this size are put into the stdin pipe before the agent starts: a new pipe
/// holds at least one page whatever the system's pipe limits, so the write cannot wait.
const PROMPT_PREFILL_BYTES: usize = 4096;
/// How long to wait for the pipes to close after the agent exited (a process that escaped
/// could hold them open forever).
const DRAIN: Duration = Duration::from_secs(2);
/// The environment variable that marks every process of one attempt (inherited by the
/// agent's descendants, however they detach): see [`super::escape`].
pub const RUN_MARK_VAR: &str = "ORCA_RUN";

/// What an agent makes of its stdout, one line at a time.
pub trait LineSink: Send + 'static {
    /// One non-empty line (without its newline); true when the progress changed.
    fn line(&mut self, line: &[u8]) -> bool;
    /// A line longer than the stream's limit was skipped.
    fn skipped_long_line(&mut self) {}
    /// The progress to report now.
    fn progress(&self, pid: u32) -> Progress;
}

/// One process to supervise.
#[derive(Debug)]
pub struct Spec<'a> {
    pub program: &'a str,
    pub args: &'a [String],
    /// Set on top of Orca's environment.
    pub env: &'a [(String, String)],
    /// Orca's variables the agent does not get.
    pub remove_env: &'a [String],
    pub cwd: &'a Path,
    pub cwd_fd: Option<BorrowedFd<'a>>,
    pub prompt: &'a str,
    pub timeout: Duration,
    /// Time between SIGTERM and SIGKILL on timeout.
    pub grace: Duration,
    /// Time between SIGTERM and SIGKILL on cancel.
    pub cancel_grace: Duration,
    pub raw_log: &'a Path,
    /// The value of [`RUN_MARK_VAR`] for this attempt (unique in this daemon).
    pub run_mark: &'a str,
}

/// How the process ended.
#[derive(Debug)]
pub enum Ended {
    /// It exited (or could not be waited for) before the timeout and any cancel.
    Exited(std::io::Result<ExitStatus>),
    TimedOut(std::io::Result<ExitStatus>),
    Cancelled(std::io::Result<ExitStatus>),
}

/// A supervised run that has ended, its pipes drained.
#[derive(Debug)]
pub struct Finished<S> {
    pub ended: Ended,
    pub pid: u32,
    /// Shell-style: the code, or 128 + the signal that ended the process.
    pub exit_code: Option<i32>,
    pub stderr_tail: String,
    pub sink: S,
}

/// Runs `spec` to its end; `Err` when it could not be started.
pub async fn supervise<S: LineSink + Default>(
    spec: Spec<'_>,
    sink: S,
    mut cancel: watch::Receiver<bool>,
    progress: ProgressSender,
) -> Result<Finished<S>, SpawnError> {
    let mut env = spec.env.to_vec();
    env.push((RUN_MARK_VAR.into(), spec.run_mark.into()));
    let stdin = match prefilled_stdin(spec.prompt) {
        Some(r) => spawn::Stdin::From(r.into()),
        None => spawn::Stdin::Pipe,
    };
    let mut child = spawn::spawn(spawn::Launch {
        program: spec.program,
        args: spec.args,
        env: &env,
        remove_env: spec.remove_env,
        cwd: spec.cwd,
        cwd_fd: spec.cwd_fd,
        stdin,
    })?;
    let pid = child.id();
    let mut reaper = Reaper {
        tree: ProcessTree::new(pid),
        mark: spec.run_mark.to_owned(),
        armed: true,
    };

    if let Some(mut stdin) = child.stdin.take() {
        // The agent may exit without reading; a broken pipe is not our failure. A prompt
        // that fits in the new, empty pipe is written at once; a longer one by a task of
        // its own, so that an agent writing before it reads cannot stall this one.
        if spec.prompt.len() <= PROMPT_INLINE_BYTES {
            let _ = stdin.write_all(spec.prompt.as_bytes()).await;
            let _ = stdin.shutdown().await;
        } else {
            let prompt = spec.prompt.to_owned();
            tokio::spawn(async move {
                let _ = stdin.write_all(prompt.as_bytes()).await;
                let _ = stdin.shutdown().await;
            });
        }
    }
    // Both pipes are read by one task (stdout line by line, stderr's tail), until both
    // close or `stop` says the agent is gone and an escaped process holds them open.
    let tail = Arc::new(Mutex::new(Vec::<u8>::new()));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (stop_err_tx, stop_err_rx) = oneshot::channel::<()>();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let mut output_task = tokio::spawn({
        let (raw_log, progress, tail) = (spec.raw_log.to_path_buf(), progress, Arc::clone(&tail));
        async move {
            let out = async {
                match stdout {
                    Some(o) => read_stdout(o, raw_log, sink, progress, pid, stop_rx).await,
                    None => sink,
                }
            };
            let err = async {
                if let Some(e) = stderr {
                    read_stderr(e, tail, stop_err_rx).await;
                }
            };
            tokio::join!(out, err).0
        }
    });

    enum Why {
        Exited(std::io::Result<ExitStatus>),
        Timeout,
        Cancel,
    }
    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    let why = tokio::select! {
        biased;
        s = child.wait() => Why::Exited(s),
        _ = cancel_requested(&mut cancel) => Why::Cancel,
        _ = &mut deadline => Why::Timeout,
    };
    // A process that has already exited when the timer fires (the daemon was stopped or
    // slow to look) ended on its own: its exit counts, not the timeout.
    let why = match why {
        Why::Timeout => match child.try_wait() {
            Ok(Some(s)) => Why::Exited(Ok(s)),
            _ => Why::Timeout,
        },
        w => w,
    };
    let ended = match why {
        Why::Exited(s) => {
            // Whatever is left in the agent's own group is an orphan of this run.
            reaper.tree.signal_all(Signal::SIGKILL);
            Ended::Exited(s)
        }
        Why::Timeout => Ended::TimedOut(stop_tree(&mut child, &mut reaper.tree, spec.grace).await),
        Why::Cancel => {
            Ended::Cancelled(stop_tree(&mut child, &mut reaper.tree, spec.cancel_grace).await)
        }
    };
    reaper.tree.kill_survivors();
    super::escape::kill_marked(&reaper.mark);
    reaper.armed = false;

    // Drain the pipes: normally they close with the agent; never wait forever.
    let drain_until = Instant::now() + DRAIN;
    let sink = match tokio::time::timeout_at(drain_until, &mut output_task).await {
        Ok(r) => r.ok(),
        Err(_) => {
            let _ = stop_tx.send(());
            let _ = stop_err_tx.send(());
            output_task.await.ok()
        }
    };
    let stderr_tail = {
        let t = tail.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&t).into_owned()
    };
    let status = match &ended {
        Ended::Exited(s) | Ended::TimedOut(s) | Ended::Cancelled(s) => s,
    };
    let exit_code = status.as_ref().ok().and_then(exit_code);
    Ok(Finished {
        ended,
        pid,
        exit_code,
        stderr_tail,
        sink: sink.unwrap_or_default(),
    })
}

/// The mark of one run's processes: unique in this process and among processes.
pub fn run_mark(req: &super::RunRequest) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}.{n}.{}.{}", std::process::id(), req.task_id, req.attempt)
}

/// Runs `program args` with no input and reads at most `limit` bytes of its stdout within
/// `within`: Some((exited successfully, output)), None when it could not start, printed
/// more than `limit` or did not finish in time (it is killed then). Nothing it prints is
/// held beyond `limit + 1` bytes.
pub async fn output_bounded(
    program: &str,
    args: &[String],
    limit: usize,
    within: Duration,
) -> Option<(bool, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let pid = child.id();
    let mut stdout = child.stdout.take()?;
    let work = async {
        let mut buf = Vec::with_capacity(256);
        (&mut stdout)
            .take(limit as u64 + 1)
            .read_to_end(&mut buf)
            .await
            .ok()?;
        if buf.len() > limit {
            return None;
        }
        let status = child.wait().await.ok()?;
        Some((status.success(), buf))
    };
    let out = tokio::time::timeout(within, work).await.ok().flatten();
    if out.is_none() {
        // Its group too: what it started must not hold on either.
        if let Some(pid) = pid {
            super::process::kill_group(pid);
        }
    }
    out
}

/// Shell-style exit code: the code, or 128 + the signal that ended the process.
pub fn exit_code(status: &ExitStatus) -> Option<i32> {
    status.code().or_else(|| status.signal().map(|s| 128 + s))
}

/// Resolves when `cancel` turns true (never, if its sender is gone).
async fn cancel_requested(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// SIGTERM to the agent's group and every descendant's group; SIGKILL after `grace`.
async fn stop_tree(
    child: &mut AgentChild,
    tree: &mut ProcessTree,
    grace: Duration,
) -> std::io::Result<ExitStatus> {
    tree.refresh();
    tree.signal_all(Signal::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(s) => s,
        Err(_) => {
            tree.refresh();
            tree.signal_all(Signal::SIGKILL);
            child.wait().await
        }
    }
}

/// SIGKILLs the agent's whole tree if `run` is dropped half-way (the scheduler gave up).
struct Reaper {
    tree: ProcessTree,
    mark: String,
    armed: bool,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if self.armed {
            self.tree.refresh();
            self.tree.signal_all(Signal::SIGKILL);
            super::escape::kill_marked(&self.mark);
        }
    }
}

/// The agent's raw log: a buffered std file written in place. Writes land in a 64 KiB buffer
/// and reach the page cache in one short `write(2)` when it fills, so they never need
/// tokio's blocking pool (a thread hand-off per flush costs more than the write itself).
struct RawLog(std::io::BufWriter<std::fs::File>);

impl tokio::io::AsyncWrite for RawLog {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(std::io::Write::write(&mut self.0, buf))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(std::io::Write::flush(&mut self.0))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// A pipe already holding `prompt` (and closed for writing), for a prompt of at most
/// [`PROMPT_PREFILL_BYTES`]; None for a longer one or when the pipe cannot be made (then
/// the prompt is written after the start, as for a long one).
fn prefilled_stdin(prompt: &str) -> Option<std::io::PipeReader> {
    use std::io::Write as _;
    if prompt.len() > PROMPT_PREFILL_BYTES {
        return None;
    }
    let (reader, mut writer) = std::io::pipe().ok()?;
    writer.write_all(prompt.as_bytes()).ok()?;
    Some(reader)
}

fn open_raw_log(path: &Path) -> Option<RawLog> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    };
    match in_folder(dir, open) {
        Ok(f) => Some(RawLog(std::io::BufWriter::with_capacity(16 * 1024, f))),
        Err(FolderError::Make(e)) => {
            tracing::warn!(
                "cannot create {} for the agent's raw log: {e}",
                dir.display()
            );
            None
        }
        Err(FolderError::Op(e)) => {
            tracing::warn!("cannot open the agent's raw log {}: {e}", path.display());
            None
        }
    }
}

/// A buffered reader of a pipe that reads into the spare room of its buffer: unlike
/// `tokio::io::BufReader`, whose buffer is zeroed when made, nothing is written twice.
struct PipeReader {
    pipe: pipe::Receiver,
    buf: Vec<u8>,
    pos: usize,
    cap: usize,
}

impl PipeReader {
    fn new(pipe: pipe::Receiver, cap: usize) -> PipeReader {
        PipeReader {
            pipe,
            buf: Vec::new(),
            pos: 0,
            cap: cap.max(1),
        }
    }
}

impl tokio::io::AsyncRead for PipeReader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use tokio::io::AsyncBufRead;
        let this = self.get_mut();
        let avail = std::task::ready!(std::pin::Pin::new(&mut *this).poll_fill_buf(cx))?;
        let n = avail.len().min(out.remaining());
        out.put_slice(&avail[..n]);
        std::pin::Pin::new(this).consume(n);
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncBufRead for PipeReader {
    fn poll_fill_buf(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.pos >= this.buf.len() {
            this.buf.clear();
            this.pos = 0;
            this.buf.reserve(this.cap);
            loop {
                std::task::ready!(this.pipe.poll_read_ready(cx))?;
                match this.pipe.try_read_buf(&mut this.buf) {
                    Ok(_) => break, // 0 bytes: the end
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return std::task::Poll::Ready(Err(e)),
                }
            }
        }
        std::task::Poll::Ready(Ok(&this.buf[this.pos..]))
    }

    fn consume(self: std::pin::Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.pos = (this.pos + amt).min(this.buf.len());
    }
}

/// Reads stdout line by line: raw log, parsing, progress. Ends at EOF or on `stop`.
async fn read_stdout<S: LineSink>(
    stdout: pipe::Receiver,
    raw_log: PathBuf,
    mut st: S,
    progress: ProgressSender,
    pid: u32,
    mut stop: oneshot::Receiver<()>,
) -> S {
    let mut log = open_raw_log(&raw_log);
    // Lines longer than the buffer are still read whole (`read_line_bounded` gathers them);
    // a small buffer keeps each run from zeroing and faulting in 64 KiB.
    let mut reader = PipeReader::new(stdout, 8 * 1024);
    let mut buf = Vec::new();
    let mut last_sent = st.progress(pid);
    let _ = progress.send(Box::new(last_sent.clone()));
    loop {
        let read = tokio::select! {
            biased;
            Ok(()) = &mut stop => break,
            r = read_line_bounded(&mut reader, &mut buf, super::stream::MAX_LINE_BYTES, log.as_mut()) => r,
        };
        match read {
            Ok(LineRead::Line) => {}
            Ok(LineRead::TooLong) => {
                st.skipped_long_line();
                continue;
            }
            Ok(LineRead::Eof) | Err(_) => break,
        }
        if buf.trim_ascii().is_empty() {
            continue;
        }
        if st.line(&buf) {
            let p = st.progress(pid);
            if p != last_sent {
                let _ = progress.send(Box::new(p.clone()));
                last_sent = p;
            }
        }
    }
    if let Some(mut l) = log {
        if let Err(e) = l.flush().await {
            tracing::warn!(
                "cannot write the agent's raw log {}: {e}",
                raw_log.display()
            );
        }
    }
    st
}

/// Keeps the last [`STDERR_TAIL_BYTES`] of stderr in `tail`. Ends at EOF or on `stop`.
async fn read_stderr(
    stderr: pipe::Receiver,
    tail: Arc<Mutex<Vec<u8>>>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let ready = tokio::select! {
            biased;
            Ok(()) = &mut stop => break,
            r = stderr.readable() => r,
        };
        if ready.is_err() {
            break;
        }
        // Read into the stack once there is something (or the end) to read: most agents
        // write nothing to stderr, and a buffer kept per run would be allocated for nothing.
        let mut chunk = [0u8; 4096];
        match stderr.try_read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                t.extend_from_slice(&chunk[..n]);
                if t.len() > STDERR_TAIL_BYTES {
                    let cut = t.len() - STDERR_TAIL_BYTES;
                    t.drain(..cut);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pipe_reader_gives_whole_lines_across_reads_and_a_long_line_beyond_its_buffer() {
        use std::io::Write as _;
        let (r, mut w) = std::io::pipe().expect("pipe");
        // The checked constructor makes the read end non-blocking itself.
        let rx = pipe::Receiver::from_owned_fd(r.into()).expect("receiver");
        let long = "x".repeat(100);
        let writer = std::thread::spawn(move || {
            for chunk in [
                "first li",
                "ne\nsecond\n",
                &format!("{long}\n"),
                "last, no newline",
            ] {
                w.write_all(chunk.as_bytes()).expect("write");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        // A buffer of 16 bytes: the long line takes several fills.
        let mut reader = PipeReader::new(rx, 16);
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        loop {
            let r = read_line_bounded(&mut reader, &mut buf, 1024, None::<&mut RawLog>)
                .await
                .expect("read");
            if r == LineRead::Eof {
                break;
            }
            lines.push(String::from_utf8_lossy(&buf).into_owned());
        }
        writer.join().expect("writer");
        assert_eq!(
            lines,
            ["first line", "second", &"x".repeat(100), "last, no newline"]
        );
    }

    #[test]
    fn raw_log_folder_is_made_when_missing_and_a_file_in_its_way_is_no_log() {
        use std::io::Write as _;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("logs/runs/t.1.ndjson");
        let mut log = open_raw_log(&path).expect("opened");
        log.0.write_all(b"line\n").unwrap();
        drop(log);
        // Appends to an existing log.
        let mut log = open_raw_log(&path).expect("opened again");
        log.0.write_all(b"more\n").unwrap();
        drop(log);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "line\nmore\n");
        std::fs::write(d.path().join("blocked"), "a file").unwrap();
        assert!(open_raw_log(&d.path().join("blocked/runs/t.1.ndjson")).is_none());
    }
}
