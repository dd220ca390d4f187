//! Starting an agent process on Linux: clone(2) sharing our memory until execve (as vfork
//! does) on a stack kept per thread, in its own process group, with pipes and a pidfd.
//!
//! What std's `Command` does through posix_spawn, without the per-start costs that showed in
//! the daemon's profile: the child's stack mapped and unmapped each time (an unmap flushes
//! the TLB of every core running the daemon), the whole environment copied, descriptor
//! checks, and SIGCHLD (the child reports its end only through its pidfd, which the runtime
//! polls). No shell: the program is exec'd with an argument vector, found on PATH like
//! execvp does when its name has no `/`. On x86_64 with Linux 5.5 or later the start is
//! clone3(2) with CLONE_CLEAR_SIGHAND, so the child need not ask about each signal's handler.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::OnceLock;

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
    pub cwd: &'a Path,
    pub stdin: Stdin,
}

/// The step of the start that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Arguments, pipes or clone(2), in this process.
    Setup = 1,
    /// setpgid(0, 0) in the child.
    Group,
    /// chdir to the working folder in the child.
    Chdir,
    /// Standard descriptors in the child.
    Stdio,
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

    /// Waits for the child to end and reaps it; cancel-safe, and returns the same status
    /// again once reaped.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(s) = self.status {
                return Ok(s);
            }
            // Readable once the child has ended: only then is it reaped (no waitpid first).
            let mut ready = self.pidfd.readable().await?;
            match reap(self.pid, libc::WNOHANG)? {
                Some(s) => self.status = Some(s),
                None => ready.clear_ready(),
            }
        }
    }
}

impl Drop for AgentChild {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        // Not reaped, so the pid is still this child's: it cannot name another process.
        // SAFETY: kill(2) has no memory preconditions.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        if let Ok(Some(_)) = reap(self.pid, libc::WNOHANG) {
            return;
        }
        // SIGKILLed but not gone yet: reap it when it is, without blocking this thread.
        let pid = self.pid;
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let Ok(fd) = self.pidfd.get_ref().try_clone() else {
                    return;
                };
                rt.spawn(async move {
                    if let Ok(fd) = register(fd) {
                        let _ = fd.readable().await;
                    }
                    let _ = reap(pid, 0);
                });
            }
            Err(_) => {
                let _ = reap(pid, 0);
            }
        }
    }
}

/// A pidfd watched by the runtime (readable once its process has ended).
fn register(pidfd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the descriptor; nothing else closes or replaces it.
    unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// waitpid for one child (also one that reports its end with no signal); None when it
/// has not ended and `flags` has WNOHANG.
fn reap(pid: u32, flags: c_int) -> io::Result<Option<ExitStatus>> {
    loop {
        let mut status: c_int = 0;
        // SAFETY: waitpid writes only into `status`.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, flags | libc::__WALL) };
        if r == pid as libc::pid_t {
            return Ok(Some(ExitStatus::from_raw(status)));
        }
        if r == 0 {
            return Ok(None);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Starts `l`. Returns once the program has been exec'd (or failed to be).
pub fn spawn(l: Launch<'_>) -> Result<AgentChild, SpawnError> {
    let program = cstring(l.program.as_bytes())?;
    let mut argv_owned = Vec::with_capacity(l.args.len() + 1);
    argv_owned.push(program.clone());
    for a in l.args {
        argv_owned.push(cstring(a.as_bytes())?);
    }
    let argv = null_terminated(argv_owned.iter().map(|c| c.as_ptr()));
    let env = Environment::new(l.env)?;
    let candidates = candidates(&program, env.path())?;
    let candidate_ptrs = null_terminated(candidates.iter().map(|c| c.as_ptr()));
    let cwd = cstring(l.cwd.as_os_str().as_bytes())?;

    let (stdin_child, stdin_parent) = match l.stdin {
        Stdin::From(fd) => (fd, None),
        Stdin::Pipe => {
            let (r, w) = pipe_pair().map_err(SpawnError::setup)?;
            (r, Some(w))
        }
    };
    let (out_r, out_w) = pipe_pair().map_err(SpawnError::setup)?;
    let (err_r, err_w) = pipe_pair().map_err(SpawnError::setup)?;
    // The daemon's own ends are read and written on the runtime: non-blocking. (A pipe's
    // status flags are otherwise empty, so they are set, not or-ed in.)
    for fd in [Some(&out_r), Some(&err_r), stdin_parent.as_ref()]
        .into_iter()
        .flatten()
    {
        set_nonblocking(fd).map_err(SpawnError::setup)?;
    }

    let args = ChildArgs {
        candidates: candidate_ptrs.as_ptr(),
        argv: argv.as_ptr(),
        envp: env.ptrs.as_ptr(),
        cwd: cwd.as_ptr(),
        fds: [
            stdin_child.as_raw_fd(),
            out_w.as_raw_fd(),
            err_w.as_raw_fd(),
        ],
        stage: AtomicI32::new(0),
        errno: AtomicI32::new(0),
    };
    let (pid, pidfd) = clone_child(&args).map_err(SpawnError::setup)?;
    drop((stdin_child, out_w, err_w));

    let stage = args.stage.load(Ordering::Acquire);
    if stage != 0 {
        // The child has _exit'ed: reap it and say what failed.
        let _ = reap(pid, 0);
        let stage = match stage {
            s if s == Stage::Group as i32 => Stage::Group,
            s if s == Stage::Chdir as i32 => Stage::Chdir,
            s if s == Stage::Stdio as i32 => Stage::Stdio,
            _ => Stage::Exec,
        };
        return Err(SpawnError {
            stage,
            error: io::Error::from_raw_os_error(args.errno.load(Ordering::Acquire)),
        });
    }
    let child = (|| -> io::Result<AgentChild> {
        Ok(AgentChild {
            pid,
            pidfd: register(pidfd)?,
            status: None,
            stdin: stdin_parent
                .map(pipe::Sender::from_owned_fd_unchecked)
                .transpose()?,
            stdout: Some(pipe::Receiver::from_owned_fd_unchecked(out_r)?),
            stderr: Some(pipe::Receiver::from_owned_fd_unchecked(err_r)?),
        })
    })();
    child.map_err(|e| {
        // Running but not registrable (no runtime?): do not leave it behind.
        // SAFETY: the pid is our unreaped child.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        let _ = reap(pid, 0);
        SpawnError::setup(e)
    })
}

fn cstring(bytes: &[u8]) -> Result<CString, SpawnError> {
    CString::new(bytes).map_err(|_| {
        SpawnError::setup(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` contains a NUL byte",
                String::from_utf8_lossy(bytes).replace('\0', "\\0")
            ),
        ))
    })
}

fn null_terminated<'a>(ptrs: impl Iterator<Item = *const c_char> + 'a) -> Vec<*const c_char> {
    let mut v: Vec<*const c_char> = ptrs.collect();
    v.push(std::ptr::null());
    v
}

/// A pipe, both ends close-on-exec: (read end, write end).
fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// This process's environment as `KEY=VALUE` strings, read once: the daemon never changes
/// its own environment, and copying it for every start cost more than the start itself.
fn inherited() -> &'static [(Box<[u8]>, CString)] {
    static BASE: OnceLock<Vec<(Box<[u8]>, CString)>> = OnceLock::new();
    BASE.get_or_init(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let key = k.into_vec();
                let mut kv = key.clone();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                Some((key.into_boxed_slice(), CString::new(kv).ok()?))
            })
            .collect()
    })
}

/// The child's environment: ours, with `overrides` set on top.
struct Environment {
    /// Strings of `overrides` (the inherited ones are 'static).
    _own: Vec<CString>,
    ptrs: Vec<*const c_char>,
    path: Option<OsString>,
}

impl Environment {
    fn new(overrides: &[(String, String)]) -> Result<Environment, SpawnError> {
        // The last setting of a key wins, as with Command::env.
        let mut own: Vec<(&str, CString)> = Vec::with_capacity(overrides.len());
        for (k, v) in overrides.iter().rev() {
            if own.iter().any(|(seen, _)| *seen == k.as_str()) {
                continue;
            }
            if k.is_empty() || k.contains('=') {
                return Err(SpawnError::setup(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("environment variable name `{k}` is empty or contains `=`"),
                )));
            }
            own.push((k, cstring(format!("{k}={v}").as_bytes())?));
        }
        let overridden = |key: &[u8]| own.iter().any(|(k, _)| k.as_bytes() == key);
        let base = inherited();
        // PATH as the child will have it: ours unless overridden.
        let path = own
            .iter()
            .find(|(k, _)| *k == "PATH")
            .map(|(_, kv)| kv)
            .or_else(|| base.iter().find(|(k, _)| &**k == b"PATH").map(|(_, kv)| kv))
            .map(|kv| OsString::from_vec(kv.as_bytes()["PATH=".len()..].to_vec()));
        let ptrs = null_terminated(
            base.iter()
                .filter(|(k, _)| !overridden(k))
                .map(|(_, kv)| kv.as_ptr())
                .chain(own.iter().map(|(_, kv)| kv.as_ptr())),
        );
        Ok(Environment {
            _own: own.into_iter().map(|(_, c)| c).collect(),
            ptrs,
            path,
        })
    }

    fn path(&self) -> Option<&OsString> {
        self.path.as_ref()
    }
}

/// Where execve looks for `program`: itself when it names a path, else each PATH entry (an
/// empty entry is the working folder), as execvp does; glibc's default path without PATH.
fn candidates(program: &CString, path: Option<&OsString>) -> Result<Vec<CString>, SpawnError> {
    let name = program.as_bytes();
    if name.is_empty() {
        return Err(SpawnError {
            stage: Stage::Exec,
            error: io::Error::from_raw_os_error(libc::ENOENT),
        });
    }
    if name.contains(&b'/') {
        return Ok(vec![program.clone()]);
    }
    let path = path.map_or(&b"/bin:/usr/bin"[..], |p| p.as_bytes());
    path.split(|b| *b == b':')
        .map(|dir| {
            let mut full = if dir.is_empty() {
                b".".to_vec()
            } else {
                dir.to_vec()
            };
            full.push(b'/');
            full.extend_from_slice(name);
            cstring(&full)
        })
        .collect()
}

/// What the child reads (through the shared memory) and writes back on failure.
struct ChildArgs {
    candidates: *const *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    /// New stdin, stdout, stderr (all at least 3: a Rust program always has 0-2 open).
    fds: [RawFd; 3],
    stage: AtomicI32,
    errno: AtomicI32,
}

/// The child's stack: one per thread, mapped once with a guard page below it. The parent
/// thread is suspended until the child has exec'd or exited, so one stack per thread is
/// never used twice at a time.
struct ChildStack {
    base: *mut c_void,
    len: usize,
}

const CHILD_STACK_BYTES: usize = 64 * 1024;

impl ChildStack {
    fn new() -> io::Result<ChildStack> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .unwrap_or(4096)
            .max(4096);
        let len = CHILD_STACK_BYTES + page;
        // SAFETY: a new private anonymous mapping; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // The lowest page traps an overflow instead of writing past the stack.
        // SAFETY: the first page of our own mapping.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The highest address, 16-byte aligned (stacks grow down).
    fn top(&self) -> *mut c_void {
        let top = self.base as usize + self.len;
        (top & !15) as *mut c_void
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer used (its thread is ending).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

thread_local! {
    static STACK: RefCell<Option<ChildStack>> = const { RefCell::new(None) };
}

/// clone(2) with CLONE_VM | CLONE_VFORK | CLONE_PIDFD and no exit signal; signals blocked
/// around it so that none of our handlers can run in the child. Returns (pid, pidfd).
fn clone_child(args: &ChildArgs) -> io::Result<(u32, OwnedFd)> {
    STACK.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(ChildStack::new()?);
        }
        let Some(stack) = slot.as_ref() else {
            return Err(io::Error::other("no child stack"));
        };
        // SAFETY: sigset_t is plain data; sigfillset/pthread_sigmask only write into it.
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        }
        let mut pidfd: c_int = -1;
        let pid = match clone3_clearing_handlers(args, stack, &mut pidfd) {
            Some(started) => started,
            None => {
                // SAFETY: the child runs `child_main` on its own stack and only makes system
                // calls on data `args` points to, which outlives it (this thread is
                // suspended until the child execs or exits: CLONE_VFORK). With CLONE_PIDFD
                // the kernel writes the pidfd into `pidfd` (the parent-tid argument).
                let pid = unsafe {
                    libc::clone(
                        child_main,
                        stack.top(),
                        libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD,
                        args as *const ChildArgs as *mut c_void,
                        &mut pidfd as *mut c_int,
                    )
                };
                if pid < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(pid)
                }
            }
        };
        // SAFETY: restores this thread's mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        let pid = pid.map_err(|err| match err.raw_os_error() {
            // CLONE_PIDFD is Linux 5.2; waiting on a pidfd, 5.3.
            Some(libc::EINVAL | libc::ENOSYS) => io::Error::new(
                err.kind(),
                format!(
                    "clone(2) refused to start a process ({err}); Orca needs Linux 5.3 or later"
                ),
            ),
            _ => err,
        })?;
        // SAFETY: the kernel gave us this new descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        Ok((pid as u32, fd))
    })
}

/// Whether clone3(2) with CLONE_CLEAR_SIGHAND works here: 0 not tried yet, 1 yes, 2 no.
static CLONE3: AtomicU8 = AtomicU8::new(0);

/// clone3's argument block, first version (64 bytes, Linux 5.3).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// Starts the child with clone3(2) and CLONE_CLEAR_SIGHAND (Linux 5.5): the kernel resets
/// every handled signal to its default in the child, which otherwise asks about each of 64
/// signals before exec (62 system calls per start, ~13 µs here). None when this kernel or
/// architecture cannot, or a test forbids it: the caller then uses clone(2).
fn clone3_clearing_handlers(
    args: &ChildArgs,
    stack: &ChildStack,
    pidfd: &mut c_int,
) -> Option<io::Result<c_int>> {
    if !cfg!(target_arch = "x86_64") || CLONE3.load(Ordering::Relaxed) == 2 || clone3_forbidden() {
        return None;
    }
    const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
    let mut ca = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD) as u64
            | CLONE_CLEAR_SIGHAND,
        pidfd: pidfd as *mut c_int as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: 0,
        stack: stack.base as u64,
        stack_size: (stack.top() as usize - stack.base as usize) as u64,
        tls: 0,
    };
    let ret = clone3_raw(&mut ca, args);
    if ret >= 0 {
        CLONE3.store(1, Ordering::Relaxed);
        return Some(Ok(ret as c_int));
    }
    let errno = -ret as i32;
    if matches!(
        errno,
        libc::ENOSYS | libc::EINVAL | libc::E2BIG | libc::EPERM
    ) {
        // An older kernel (or a seccomp filter that refuses clone3): clone(2) from now on.
        CLONE3.store(2, Ordering::Relaxed);
        return None;
    }
    Some(Err(io::Error::from_raw_os_error(errno)))
}

#[cfg(test)]
thread_local! {
    /// Set by a test to start its children through the clone(2) path.
    static NO_CLONE3: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this start must take the clone(2) path (only ever in tests).
fn clone3_forbidden() -> bool {
    #[cfg(test)]
    return NO_CLONE3.with(|c| c.get());
    #[cfg(not(test))]
    false
}

/// The raw clone3 system call; the child, on the stack the arguments name, calls
/// `child_main_cleared(args)` and exits with what it returns (it execs or `_exit`s first).
/// Returns the child's pid or minus the error number.
#[cfg(target_arch = "x86_64")]
fn clone3_raw(ca: &mut CloneArgs, args: &ChildArgs) -> i64 {
    let ret: i64;
    let entry: extern "C" fn(*mut c_void) -> c_int = child_main_cleared;
    // SAFETY: clone3 with CLONE_VM | CLONE_VFORK: the child runs on its own stack (the
    // kernel sets its stack pointer to stack + stack_size, 16-byte aligned as the call
    // needs) and this thread waits until it has exec'd or exited. In the child only rax,
    // rcx and r11 differ from here; r12 and r13 carry the argument and the function, and
    // the child never comes back into this frame. The kernel writes the pidfd.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "mov edi, eax",
            "mov eax, 60", // exit(2), should child_main ever return
            "syscall",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") ca as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") args as *const ChildArgs as *mut c_void,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

#[cfg(not(target_arch = "x86_64"))]
fn clone3_raw(_ca: &mut CloneArgs, _args: &ChildArgs) -> i64 {
    -i64::from(libc::ENOSYS)
}

/// The child started by clone(2): it resets our signal handlers itself.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` the suspended parent passed to clone.
    child(unsafe { &*(arg as *const ChildArgs) }, false)
}

/// The child started by clone3 with CLONE_CLEAR_SIGHAND: the kernel has reset them.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
extern "C" fn child_main_cleared(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` the suspended parent passed to clone3.
    child(unsafe { &*(arg as *const ChildArgs) }, true)
}

/// The child, between clone and execve: sharing the parent's memory, so it only makes
/// system calls (no allocation, no locks, no panics). Every signal is blocked on entry.
fn child(a: &ChildArgs, handlers_cleared: bool) -> c_int {
    let fail = |stage: Stage| -> c_int {
        // SAFETY: errno is this (shared) thread's errno; _exit never returns.
        unsafe {
            a.errno.store(*libc::__errno_location(), Ordering::Release);
            a.stage.store(stage as i32, Ordering::Release);
            libc::_exit(127)
        }
    };
    // SAFETY: only system calls on valid pointers, as glibc's posix_spawn child does.
    unsafe {
        // Our handlers must not run here, nor be inherited: handled signals go back to
        // their default (exec would do it too, but a signal could come first), and SIGPIPE,
        // which Rust ignores, is the agent's default again; other ignored signals stay so.
        // Raw rt_sigaction, so that the C library's own signals are seen too. The kernel's
        // struct starts with the handler, and all zeros is SIG_DFL with no flags or mask.
        let dfl = [0u64; 4];
        let none = std::ptr::null::<u64>();
        if handlers_cleared {
            // CLONE_CLEAR_SIGHAND: the kernel has reset every handler and left ignored
            // signals be, so only SIGPIPE is left to restore.
            libc::syscall(libc::SYS_rt_sigaction, libc::SIGPIPE, dfl.as_ptr(), none, 8);
        } else {
            for sig in 1..65 {
                if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                    continue;
                }
                let mut cur = [0u64; 4];
                if libc::syscall(libc::SYS_rt_sigaction, sig, none, cur.as_mut_ptr(), 8) != 0 {
                    continue;
                }
                let handler = cur[0] as libc::sighandler_t;
                let reset = if sig == libc::SIGPIPE {
                    handler != libc::SIG_DFL
                } else {
                    handler != libc::SIG_DFL && handler != libc::SIG_IGN
                };
                if reset {
                    libc::syscall(libc::SYS_rt_sigaction, sig, dfl.as_ptr(), none, 8);
                }
            }
        }
        if libc::setpgid(0, 0) != 0 {
            return fail(Stage::Group);
        }
        if libc::chdir(a.cwd) != 0 {
            return fail(Stage::Chdir);
        }
        for (target, fd) in a.fds.iter().enumerate() {
            if libc::dup2(*fd, target as c_int) < 0 {
                return fail(Stage::Stdio);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());

        let mut denied = false;
        let mut next = a.candidates;
        while !(*next).is_null() {
            libc::execve(*next, a.argv, a.envp);
            match *libc::__errno_location() {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => return fail(Stage::Exec),
            }
            next = next.add(1);
        }
        *libc::__errno_location() = if denied { libc::EACCES } else { libc::ENOENT };
        fail(Stage::Exec)
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
            cwd,
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
        // This kernel (5.5 or later) took clone3 with CLONE_CLEAR_SIGHAND.
        assert_eq!(CLONE3.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn the_same_through_clone_for_kernels_without_clone3() {
        NO_CLONE3.with(|c| c.set(true));
        own_group_default_signals_killed_on_drop().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let args = strings(&["-c", "echo out; exit 3"]);
        let mut c = spawn(launch("sh", &args, dir.path())).expect("spawn");
        assert_eq!(read_all(c.stdout.take()).await, "out\n");
        assert_eq!(c.wait().await.expect("wait").code(), Some(3));
        let e = spawn(launch("sh", &[], &dir.path().join("gone"))).expect_err("no cwd");
        assert_eq!(
            (e.stage, e.error.kind()),
            (Stage::Chdir, io::ErrorKind::NotFound)
        );
        NO_CLONE3.with(|c| c.set(false));
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
        // else this process ignores, it inherits (as from a shell).
        let mask = |pid: u32, f: &str| u64::from_str_radix(&status_field(pid, f), 16).expect("hex");
        let pipe_bit = 1u64 << (libc::SIGPIPE - 1);
        assert_ne!(
            mask(std::process::id(), "SigCgt") & (1 << (libc::SIGUSR2 - 1)),
            0
        );
        assert_eq!(mask(pid, "SigCgt"), 0);
        assert_eq!(mask(pid, "SigBlk"), 0);
        assert_eq!(
            mask(pid, "SigIgn"),
            mask(std::process::id(), "SigIgn") & !pipe_bit
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
    async fn many_starts_from_one_thread_reuse_its_stack() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..50 {
            let args = strings(&["-c", "exit $0", &i.to_string()]);
            let mut c = spawn(launch("sh", &args, dir.path())).expect("spawn");
            assert_eq!(c.wait().await.expect("wait").code(), Some(i));
        }
    }
}
