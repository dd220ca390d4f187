//! Starting an agent process: `std::process::Command` (glibc takes its posix_spawn path, no
//! copy of the address space) with an argument vector, in its own process group, with pipes,
//! in a working folder given as an open descriptor, and a pidfd to wait on without racing a
//! reused pid. No shell in between; a name without `/` is found on the child's PATH.
//!
//! Linux-only (pidfd, `/proc/self/fd`): a port replaces this module.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};

use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

/// What the child's standard input is.
#[derive(Debug)]
pub enum Stdin {
    /// A new pipe; its write end is [`AgentChild::stdin`].
    Pipe,
    /// This descriptor (e.g. the read end of a pipe already holding the prompt).
    From(OwnedFd),
}

/// One program to start.
#[derive(Debug)]
pub struct Launch<'a> {
    /// A path, or a name looked up on PATH (the child's PATH when `env` sets one).
    pub program: &'a str,
    /// Arguments after the program (argv[0] is `program`).
    pub args: &'a [String],
    /// Variables set on top of this process's environment (later ones win).
    pub env: &'a [(String, String)],
    /// Variables of this process's environment the child does not get.
    pub remove_env: &'a [String],
    /// The working folder, as shown in messages (and opened when `cwd_fd` is None).
    pub cwd: &'a Path,
    /// The working folder already opened (checked against the allowed root on this very
    /// descriptor): the child starts in it, the path is not resolved again.
    pub cwd_fd: Option<BorrowedFd<'a>>,
    pub stdin: Stdin,
}

/// The step of the start that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Arguments, pipes, the pidfd or the start itself, in this process.
    Setup = 1,
    /// Opening the working folder.
    Chdir,
    /// execve of the program (every PATH candidate failed).
    Exec,
}

/// Why a start failed, and where.
#[derive(Debug)]
pub struct SpawnError {
    pub stage: Stage,
    pub error: io::Error,
}

impl SpawnError {
    fn setup(error: io::Error) -> SpawnError {
        SpawnError {
            stage: Stage::Setup,
            error,
        }
    }
}

/// A started child. Dropping it before it was reaped kills it (SIGKILL) and reaps it.
#[derive(Debug)]
pub struct AgentChild {
    pid: u32,
    child: Option<Child>,
    /// Readable once the child has ended.
    pidfd: AsyncFd<OwnedFd>,
    status: Option<ExitStatus>,
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
}

impl AgentChild {
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// The child's pidfd (valid as long as this handle lives, even once reaped).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.get_ref().as_fd()
    }

    /// The exit status if the child has ended (reaping it), without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        reap(self.pid, &mut self.child, &mut self.status)
    }

    /// Waits for the child to end and reaps it; cancel-safe, and returns the same status
    /// again once reaped.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(s);
            }
            // Readable once the child has ended: only then is it reaped.
            let mut ready = self.pidfd.readable().await?;
            if reap(self.pid, &mut self.child, &mut self.status)?.is_none() {
                ready.clear_ready();
            }
        }
    }
}

impl Drop for AgentChild {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        super::escape::agent_forgotten(self.pid as i32);
        // Not reaped, so the pid is still this child's: it cannot name another process.
        let _ = child.kill();
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        // SIGKILLed but not gone yet: reap it when it is, without blocking this thread.
        match (
            tokio::runtime::Handle::try_current(),
            self.pidfd.get_ref().try_clone(),
        ) {
            (Ok(rt), Ok(fd)) => {
                rt.spawn(async move {
                    if let Ok(fd) = register(fd) {
                        let _ = fd.readable().await;
                    }
                    let _ = child.wait();
                });
            }
            _ => {
                let _ = child.wait();
            }
        }
    }
}

/// The exit status of `child` if it has ended, reaping it (once; the status is kept). The
/// escape sweep's list of live agents drops the pid as it is reaped.
fn reap(
    pid: u32,
    child: &mut Option<Child>,
    status: &mut Option<ExitStatus>,
) -> io::Result<Option<ExitStatus>> {
    if status.is_none() {
        if let Some(c) = child.as_mut() {
            *status = super::escape::reaping(pid as i32, || match c.try_wait() {
                Ok(s) => (Ok(s), s.is_some()),
                Err(e) => (Err(e), false),
            })?;
        }
    }
    Ok(*status)
}

/// A pidfd watched by the runtime (readable once its process has ended).
fn register(pidfd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the descriptor; nothing else closes or replaces it while it
    // is registered (tokio's safe constructor is deprecated for want of this promise).
    unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// Starts `l`. Returns once the program has been exec'd (or failed to be).
pub fn spawn(l: Launch<'_>) -> Result<AgentChild, SpawnError> {
    for (k, _) in l.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(SpawnError::setup(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("environment variable name {k:?} is empty or contains `=`"),
            )));
        }
    }
    let opened;
    let cwd_fd = match l.cwd_fd {
        Some(fd) => fd,
        None => {
            opened = open_dir(l.cwd).map_err(|error| SpawnError {
                stage: Stage::Chdir,
                error,
            })?;
            opened.as_fd()
        }
    };
    let mut cmd = std::process::Command::new(l.program);
    cmd.args(l.args)
        // The descriptor is open in the child until exec (close-on-exec): it starts in the
        // very folder that was opened, whatever its path names by now.
        .current_dir(format!("/proc/self/fd/{}", cwd_fd.as_raw_fd()))
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for k in l.remove_env {
        cmd.env_remove(k);
    }
    cmd.envs(l.env.iter().map(|(k, v)| (k, v)));
    match l.stdin {
        Stdin::Pipe => cmd.stdin(Stdio::piped()),
        Stdin::From(fd) => cmd.stdin(Stdio::from(fd)),
    };
    let mut child = cmd.spawn().map_err(|error| SpawnError {
        stage: match error.kind() {
            io::ErrorKind::InvalidInput => Stage::Setup,
            _ if is_resource_limit(&error) => Stage::Setup,
            _ => Stage::Exec,
        },
        error,
    })?;
    let pid = child.id();
    super::escape::agent_started(pid as i32);
    let pidfd = rustix::process::Pid::from_raw(pid as i32)
        .ok_or_else(|| io::Error::other("the child has no pid"))
        .and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
                .map_err(|e| annotate_pidfd(e.into()))
        })
        .and_then(register);
    let pidfd = match pidfd {
        Ok(fd) => fd,
        Err(e) => {
            super::escape::agent_forgotten(pid as i32);
            let _ = child.kill();
            let _ = child.wait();
            return Err(SpawnError::setup(e));
        }
    };
    let pipes = (|| -> io::Result<_> {
        let stdin = child
            .stdin
            .take()
            .map(|s| pipe::Sender::from_owned_fd(OwnedFd::from(s)))
            .transpose()?;
        let stdout = child
            .stdout
            .take()
            .map(|s| pipe::Receiver::from_owned_fd(OwnedFd::from(s)))
            .transpose()?;
        let stderr = child
            .stderr
            .take()
            .map(|s| pipe::Receiver::from_owned_fd(OwnedFd::from(s)))
            .transpose()?;
        Ok((stdin, stdout, stderr))
    })();
    let mut agent = AgentChild {
        pid,
        child: Some(child),
        pidfd,
        status: None,
        stdin: None,
        stdout: None,
        stderr: None,
    };
    let (stdin, stdout, stderr) = pipes.map_err(SpawnError::setup)?;
    (agent.stdin, agent.stdout, agent.stderr) = (stdin, stdout, stderr);
    Ok(agent)
}

/// Opens a folder for [`Launch::cwd_fd`] (following links: for a path already checked).
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        path,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// Which limit a failure for lack of descriptors, processes or memory reached, and what to
/// raise; None for any other failure.
pub fn limit_reached(e: &io::Error) -> Option<&'static str> {
    use rustix::io::Errno;
    Some(match e.raw_os_error().map(Errno::from_raw_os_error)? {
        Errno::MFILE => {
            "Orca's limit on open files is reached: raise it (`ulimit -n`), or lower MAX_CONCURRENT_TASKS"
        }
        Errno::NFILE => "the system's limit on open files is reached, or lower MAX_CONCURRENT_TASKS",
        Errno::AGAIN => {
            "the limit on processes is reached: raise it (`ulimit -u`), or lower MAX_CONCURRENT_TASKS"
        }
        Errno::NOMEM => "the machine is out of memory, or lower MAX_CONCURRENT_TASKS",
        _ => return None,
    })
}

/// Whether a start failed for lack of descriptors, processes or memory.
pub fn is_resource_limit(e: &io::Error) -> bool {
    use rustix::io::Errno;
    e.raw_os_error().is_some_and(|n| {
        [Errno::MFILE, Errno::NFILE, Errno::AGAIN, Errno::NOMEM]
            .iter()
            .any(|x| x.raw_os_error() == n)
    })
}

fn annotate_pidfd(err: io::Error) -> io::Error {
    if err.raw_os_error() == Some(rustix::io::Errno::NOSYS.raw_os_error()) {
        io::Error::new(
            err.kind(),
            format!("pidfd_open(2) is missing ({err}); Orca needs Linux 5.3 or later"),
        )
    } else {
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn launch<'a>(program: &'a str, args: &'a [String], cwd: &'a Path) -> Launch<'a> {
        Launch {
            program,
            args,
            env: &[],
            remove_env: &[],
            cwd,
            cwd_fd: None,
            stdin: Stdin::Pipe,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    async fn read_all(r: Option<pipe::Receiver>) -> String {
        let mut s = String::new();
        if let Some(mut r) = r {
            r.read_to_string(&mut s).await.expect("read");
        }
        s
    }

    /// A line of /proc/<pid>/status, e.g. `SigIgn`.
    fn status_field(pid: u32, field: &str) -> String {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .map(|v| v.trim().to_owned())
            .expect("field")
    }

    #[tokio::test]
    async fn runs_the_program_with_its_args_pipes_and_exit_code() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = strings(&["-c", "echo out $0; echo err >&2; exit 3", "zero"]);
        let mut c = spawn(launch("sh", &args, dir.path())).expect("spawn");
        drop(c.stdin.take());
        let (out, err) = (read_all(c.stdout.take()), read_all(c.stderr.take()));
        let (out, err) = tokio::join!(out, err);
        let status = c.wait().await.expect("wait");
        assert_eq!(out, "out zero\n");
        assert_eq!(err, "err\n");
        assert_eq!(status.code(), Some(3));
        // Reaped once; asking again gives the same status.
        assert_eq!(c.wait().await.expect("again").code(), Some(3));
    }

    #[tokio::test]
    async fn stdin_from_a_pipe_or_a_given_descriptor() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = spawn(launch("cat", &[], dir.path())).expect("spawn");
        let mut w = c.stdin.take().expect("stdin pipe");
        w.write_all(b"through the pipe").await.expect("write");
        drop(w);
        assert_eq!(read_all(c.stdout.take()).await, "through the pipe");
        assert!(c.wait().await.expect("wait").success());

        let (r, mut w) = std::io::pipe().expect("pipe");
        w.write_all(b"prefilled").expect("write");
        drop(w);
        let mut l = launch("cat", &[], dir.path());
        l.stdin = Stdin::From(r.into());
        let mut c = spawn(l).expect("spawn");
        assert!(c.stdin.is_none());
        assert_eq!(read_all(c.stdout.take()).await, "prefilled");
        assert!(c.wait().await.expect("wait").success());
    }

    #[tokio::test]
    async fn working_folder_and_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let canon = dir.path().canonicalize().expect("canon");
        let env = vec![
            ("ORCA_SPAWN_TEST".to_owned(), "first".to_owned()),
            ("ORCA_SPAWN_TEST".to_owned(), "last wins".to_owned()),
            ("HOME".to_owned(), "/nowhere".to_owned()),
        ];
        let args = strings(&["-c", "pwd; echo \"$ORCA_SPAWN_TEST|$HOME\"; env | grep -c '^HOME='; test -n \"$PATH\" && echo path"]);
        let mut l = launch("sh", &args, &canon);
        l.env = &env;
        let mut c = spawn(l).expect("spawn");
        let out = read_all(c.stdout.take()).await;
        assert!(c.wait().await.expect("wait").success());
        assert_eq!(
            out,
            format!("{}\nlast wins|/nowhere\n1\npath\n", canon.display())
        );
    }

    #[tokio::test]
    async fn own_process_group_default_signals_and_killed_on_drop() {
        own_group_default_signals_killed_on_drop().await;
    }

    async fn own_group_default_signals_killed_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let usr2 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2())
            .expect("handler");
        let args = strings(&["30"]);
        let c = spawn(launch("sleep", &args, dir.path())).expect("spawn");
        let pid = c.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let info = crate::runner::process::parse_stat(&stat).expect("parse");
        assert_eq!(info.pgid, pid as i32, "its own process group");
        // Rust ignores SIGPIPE and the runtime handles signals (SIGUSR2 just above): the
        // agent catches nothing and blocks nothing, and SIGPIPE is its default again; what
        // else this process ignores, it inherits (as from a shell). glibc's posix_spawn
        // leaves its own two internal signals (32 and 33, below SIGRTMIN) ignored.
        let mask = |pid: u32, f: &str| u64::from_str_radix(&status_field(pid, f), 16).expect("hex");
        let pipe_bit = 1u64 << (nix::sys::signal::Signal::SIGPIPE as i32 - 1);
        assert_ne!(
            mask(std::process::id(), "SigCgt")
                & (1 << (nix::sys::signal::Signal::SIGUSR2 as i32 - 1)),
            0
        );
        assert_eq!(mask(pid, "SigCgt"), 0);
        assert_eq!(mask(pid, "SigBlk"), 0);
        let glibc_internal = (1u64 << 31) | (1u64 << 32);
        assert_eq!(
            mask(pid, "SigIgn") & !glibc_internal,
            mask(std::process::id(), "SigIgn") & !pipe_bit & !glibc_internal
        );
        drop(usr2);
        drop(c);
        // Killed at once, reaped by a task of the runtime once it has died.
        let mut gone = false;
        for _ in 0..200 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            if !Path::new(&format!("/proc/{pid}")).exists() {
                gone = true;
                break;
            }
        }
        assert!(gone, "sleep {pid} outlived its handle");
    }

    #[tokio::test]
    async fn failures_name_their_stage_and_cause() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = spawn(launch("/nonexistent/agent", &[], dir.path())).expect_err("missing");
        assert_eq!(
            (e.stage, e.error.kind()),
            (Stage::Exec, io::ErrorKind::NotFound)
        );

        let e = spawn(launch("no-such-agent-on-path", &[], dir.path())).expect_err("missing");
        assert_eq!(
            (e.stage, e.error.kind()),
            (Stage::Exec, io::ErrorKind::NotFound)
        );

        let script = dir.path().join("not-executable");
        std::fs::write(&script, "#!/bin/sh\n").expect("write");
        let p = script.to_string_lossy().into_owned();
        let e = spawn(launch(&p, &[], dir.path())).expect_err("not executable");
        assert_eq!(
            (e.stage, e.error.kind()),
            (Stage::Exec, io::ErrorKind::PermissionDenied)
        );

        let missing = dir.path().join("gone");
        let e = spawn(launch("sh", &[], &missing)).expect_err("no cwd");
        assert_eq!(
            (e.stage, e.error.kind()),
            (Stage::Chdir, io::ErrorKind::NotFound)
        );

        let args = vec!["a\0b".to_owned()];
        let e = spawn(launch("sh", &args, dir.path())).expect_err("nul");
        assert_eq!(
            (e.stage, e.error.kind()),
            (Stage::Setup, io::ErrorKind::InvalidInput)
        );

        for bad in ["", "A=B"] {
            let env = vec![(bad.to_owned(), "x".to_owned())];
            let mut l = launch("sh", &[], dir.path());
            l.env = &env;
            let e = spawn(l).expect_err("bad variable name");
            assert_eq!(
                (e.stage, e.error.kind()),
                (Stage::Setup, io::ErrorKind::InvalidInput)
            );
            assert!(
                e.error.to_string().contains("empty or contains `=`"),
                "{}",
                e.error
            );
        }
    }

    #[tokio::test]
    async fn a_name_is_looked_up_on_the_childs_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir");
        let tool = bin.join("orca-spawn-tool");
        std::fs::write(&tool, "#!/bin/sh\necho found on PATH\n").expect("write");
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        // A non-executable file of the same name earlier on PATH is skipped, like execvp.
        let early = dir.path().join("early");
        std::fs::create_dir(&early).expect("mkdir");
        std::fs::write(early.join("orca-spawn-tool"), "x").expect("write");
        let env = vec![(
            "PATH".to_owned(),
            format!(
                "/nonexistent:{}:{}:/usr/bin:/bin",
                early.display(),
                bin.display()
            ),
        )];
        let mut l = launch("orca-spawn-tool", &[], dir.path());
        l.env = &env;
        let mut c = spawn(l).expect("spawn");
        assert_eq!(read_all(c.stdout.take()).await, "found on PATH\n");
        assert!(c.wait().await.expect("wait").success());
    }

    #[tokio::test]
    async fn many_starts_from_one_thread() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..50 {
            let args = strings(&["-c", "exit $0", &i.to_string()]);
            let mut c = spawn(launch("sh", &args, dir.path())).expect("spawn");
            assert_eq!(c.wait().await.expect("wait").code(), Some(i));
        }
    }
}
