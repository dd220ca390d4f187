//! The command line of DESIGN §7 (clap derive): global options, every command with its
//! help text, exit codes (0 ok, 1 failed, 2 usage or configuration error), and dispatch.

pub mod check;
pub mod doctor;
pub mod engine;
pub mod llm;
pub mod sample;
pub mod tail_fleet;

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

use crate::task::{Priority, TaskType};

/// Exit code: everything went well.
pub const EXIT_OK: i32 = 0;
/// Exit code: the command ran and failed (a bad task file, an invalid artifact, ...).
pub const EXIT_FAILED: i32 = 1;
/// Exit code: the command line or the configuration is wrong.
pub const EXIT_USAGE: i32 = 2;

const AFTER_HELP: &str = "\
Without a command, `orca` runs the daemon (`orca run`).
Exit codes: 0 ok, 1 failed, 2 usage or configuration error.
Docs: README.md; result format: `orca schema`.";

/// Orca: an AI task orchestrator. Drop `.task.md` files into `tasks/`; Orca queues them,
/// runs Claude Code on each, and writes verified results into `results/`.
#[derive(Debug, Parser)]
#[command(
    name = "orca",
    version,
    about = "Orca: an AI task orchestrator. Drop .task.md files into tasks/; Orca queues them, \
             runs Claude Code on each, and writes verified results into results/.",
    after_help = AFTER_HELP,
    max_term_width = 100,
    propagate_version = true
)]
pub struct Cli {
    /// Workspace root: the folder holding tasks/, results/, logs/ and .orca/
    /// [default: the current folder]
    #[arg(
        long,
        global = true,
        env = "ORCA_ROOT",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub root: Option<PathBuf>,

    /// Set a configuration variable, winning over every other source (repeatable),
    /// e.g. --set MAX_CONCURRENT_TASKS=5
    #[arg(long = "set", global = true, value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub set: Vec<(String, String)>,

    /// `orca run`'s options, for a bare `orca`.
    #[command(flatten)]
    pub run: RunArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `orca run` (and a bare `orca`).
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct RunArgs {
    /// Print no console lines (errors still go to stderr)
    #[arg(long, short = 'q', conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more console lines: every event, and each tool the agent uses
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

impl RunArgs {
    /// The console's options.
    pub fn console(&self) -> crate::events::console::ConsoleOptions {
        use crate::events::console::Verbosity;
        let verbosity = if self.quiet {
            Verbosity::Quiet
        } else if self.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        crate::events::console::ConsoleOptions { verbosity }
    }

    fn merge(self, other: RunArgs) -> RunArgs {
        RunArgs {
            quiet: self.quiet || other.quiet,
            verbose: self.verbose || other.verbose,
        }
    }
}

/// The commands of DESIGN §7.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Start the daemon (foreground; Ctrl-C drains and stops) [default]
    Run(RunArgs),
    /// Show components, queue counts and running tasks
    Status(JsonArgs),
    /// Show the effective configuration (secrets redacted), checks and fixes
    Doctor,
    /// Write a commented sample task into tasks/ and print its path
    CreateSample(CreateSampleArgs),
    /// Print what Orca understands from task files, or every error
    Check(CheckArgs),
    /// Queue a task from a file, from stdin (-) or from the command line
    Submit(SubmitArgs),
    /// List the tasks: the store's, and task files no daemon has taken yet (pending)
    List(ListArgs),
    /// Show one task: state, attempts, result, last events
    Show(ShowArgs),
    /// Cancel a task: a queued one never starts, a running one is stopped within 1 s
    Cancel(IdArgs),
    /// Run a finished task again as a new attempt
    Retry(IdArgs),
    /// Print the last events of logs/events.ndjson, optionally following new ones
    TailEvents(TailEventsArgs),
    /// Archive the task files of finished tasks, or delete old artifacts
    #[command(subcommand)]
    Clean(CleanCommand),
    /// Validate results/*.json against the result schema; exit 1 if any is invalid
    ValidateArtifacts(JsonArgs),
    /// Print the JSON Schema of results/<stem>_result.json
    Schema,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `orca man > orca.1`
    Man,
    /// Print what routing makes of a sentence: method, type, priority, folder, title
    Route(RouteArgs),
}

/// `orca route`.
#[derive(Debug, Clone, Args)]
pub struct RouteArgs {
    /// The request, in plain words
    #[arg(value_name = "TEXT")]
    pub text: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

impl Command {
    /// The command's name as typed on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Run(_) => "run",
            Command::Status(_) => "status",
            Command::Doctor => "doctor",
            Command::CreateSample(_) => "create-sample",
            Command::Check(_) => "check",
            Command::Submit(_) => "submit",
            Command::List(_) => "list",
            Command::Show(_) => "show",
            Command::Cancel(_) => "cancel",
            Command::Retry(_) => "retry",
            Command::TailEvents(_) => "tail-events",
            Command::Clean(CleanCommand::Tasks) => "clean tasks",
            Command::Clean(CleanCommand::Artifacts(_)) => "clean artifacts",
            Command::Clean(CleanCommand::Worktrees(_)) => "clean worktrees",
            Command::ValidateArtifacts(_) => "validate-artifacts",
            Command::Schema => "schema",
            Command::Route(_) => "route",
            Command::Completions { .. } => "completions",
            Command::Man => "man",
        }
    }
}

/// A lone `--json` switch.
#[derive(Debug, Clone, Default, Args)]
pub struct JsonArgs {
    /// Print JSON (stable format) instead of text
    #[arg(long)]
    pub json: bool,
}

/// `orca create-sample`.
#[derive(Debug, Clone, Args)]
pub struct CreateSampleArgs {
    /// Task type of the sample
    #[arg(long = "type", short = 't', value_name = "T", default_value = "fix", value_parser = task_type_parser())]
    pub task_type: TaskType,
    /// Priority written into the sample [default: medium]
    #[arg(long, short = 'P', value_name = "P", value_parser = priority_parser())]
    pub priority: Option<Priority>,
}

/// `orca check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Task files to check
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Print a JSON array, one entry per file (stable format)
    #[arg(long)]
    pub json: bool,
}

/// `orca submit`.
#[derive(Debug, Clone, Args)]
pub struct SubmitArgs {
    /// Task file to submit, or - to read one from stdin
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
    /// The prompt, for a task written on the command line
    #[arg(long, short = 'p', value_name = "PROMPT")]
    pub prompt: Option<String>,
    /// Task type [default: routed by Orca]
    #[arg(long = "type", short = 't', value_name = "T", value_parser = task_type_parser())]
    pub task_type: Option<TaskType>,
    /// Priority [default: medium]
    #[arg(long, short = 'P', value_name = "P", value_parser = priority_parser())]
    pub priority: Option<Priority>,
    /// A target file (repeatable)
    #[arg(long = "target", value_name = "F")]
    pub targets: Vec<String>,
    /// A success criterion (repeatable)
    #[arg(long = "criterion", value_name = "C")]
    pub criteria: Vec<String>,
    /// Working folder, relative to CLAUDE_BASE_CWD
    #[arg(long = "dir", value_name = "D")]
    pub dir: Option<String>,
    /// Task id [default: derived from the file name or the prompt]
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
}

/// The task states `list --state` accepts (`pending`: task files no daemon has taken yet).
pub const STATES: [&str; 8] = [
    "pending",
    "queued",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    "rejected",
];

/// `orca list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only tasks in this state
    #[arg(long, value_name = "S", value_parser = PossibleValuesParser::new(STATES))]
    pub state: Option<String>,
    /// Print JSON (stable format) instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `orca show`.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// Task id
    pub id: String,
    /// Print JSON (stable format) instead of text
    #[arg(long)]
    pub json: bool,
}

/// `orca cancel` and `orca retry`.
#[derive(Debug, Clone, Args)]
pub struct IdArgs {
    /// Task id
    pub id: String,
}

/// `orca tail-events`.
#[derive(Debug, Clone, Args)]
pub struct TailEventsArgs {
    /// Only events of this task
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// How many of the last events to print
    #[arg(long, short = 'n', value_name = "N", default_value_t = 20)]
    pub lines: usize,
    /// Keep printing new events as they arrive (Ctrl-C stops)
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Print the lines as they are in logs/events.ndjson (JSON, in file order)
    #[arg(long)]
    pub json: bool,
}

/// `orca clean ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum CleanCommand {
    /// Archive the task files in tasks/ whose task the store shows as finished into
    /// tasks/processed/ (a queued, running or not yet taken task's file stays)
    Tasks,
    /// Delete results, summaries and run logs older than N days
    Artifacts(CleanArtifactsArgs),
    /// Remove the git worktrees of finished tasks (.orca/worktrees/; the orca/ branches stay)
    Worktrees(CleanWorktreesArgs),
}

/// `orca clean worktrees`.
#[derive(Debug, Clone, Args)]
pub struct CleanWorktreesArgs {
    /// Print what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `orca clean artifacts`.
#[derive(Debug, Clone, Args)]
pub struct CleanArtifactsArgs {
    /// Age in days: older artifacts are deleted
    #[arg(long, value_name = "N", required = true)]
    pub days: u64,
    /// Print what would be deleted, delete nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// What every command gets: the workspace root and the `--set` flags.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Absolute workspace root.
    pub root: PathBuf,
    /// True when the root is the current folder (paths are then printed relative to it).
    pub root_is_cwd: bool,
    /// `--set NAME=VALUE` pairs, in order; passed to `Config::load` as flags.
    pub flags: Vec<(String, String)>,
}

impl Ctx {
    /// A path under the root as the user would like to read it: relative when the root
    /// is the current folder, absolute otherwise.
    pub fn display_path(&self, path: &Path) -> PathBuf {
        if self.root_is_cwd {
            if let Ok(rel) = path.strip_prefix(&self.root) {
                return rel.to_path_buf();
            }
        }
        path.to_path_buf()
    }
}

fn task_type_parser() -> impl TypedValueParser<Value = TaskType> {
    PossibleValuesParser::new(TaskType::ALL.map(TaskType::as_str))
        .try_map(|s| s.parse::<TaskType>())
}

fn priority_parser() -> impl TypedValueParser<Value = Priority> {
    PossibleValuesParser::new(Priority::ALL.map(Priority::as_str))
        .try_map(|s| s.parse::<Priority>())
}

/// Parses `NAME=VALUE` for `--set`.
fn parse_setting(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE (e.g. MAX_CONCURRENT_TASKS=5)"))?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{name}` is not a configuration variable name (letters, digits and _)"
        ));
    }
    Ok((name.to_ascii_uppercase(), value.to_string()))
}

/// Entry point of the `orca` binary.
pub fn main() -> ExitCode {
    let code = run(std::env::args_os());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Parses `args` (program name first), runs the command and returns the exit code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with code 0; usage errors to stderr with 2.
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    // clap keeps only the last level's values of a global option given both before and
    // after the subcommand, so the `--set` pairs are collected from the (valid) arguments.
    let flags = match set_flags(&args) {
        Ok(flags) => flags,
        Err(msg) => {
            eprintln!("error: {msg}");
            return EXIT_USAGE;
        }
    };
    let ctx = match make_ctx(cli.root.as_deref(), flags) {
        Ok(ctx) => ctx,
        Err(msg) => {
            eprintln!("error: {msg}");
            return EXIT_USAGE;
        }
    };
    let command = match cli.command {
        None => Command::Run(cli.run),
        Some(Command::Run(args)) => {
            let args = args.merge(cli.run);
            if args.quiet && args.verbose {
                eprintln!("error: --quiet and --verbose cannot be used together");
                return EXIT_USAGE;
            }
            Command::Run(args)
        }
        Some(other) => {
            if cli.run.quiet || cli.run.verbose {
                eprintln!(
                    "error: --quiet and --verbose are options of `orca run`, not of `orca {}`",
                    other.name()
                );
                return EXIT_USAGE;
            }
            other
        }
    };
    dispatch(&command, &ctx)
}

/// Every `--set NAME=VALUE` / `--set=NAME=VALUE` of `args` (program name first), in order,
/// up to a `--` that ends the options.
fn set_flags(args: &[OsString]) -> Result<Vec<(String, String)>, String> {
    let mut flags = Vec::new();
    let mut iter = args.iter().skip(1).map(|a| a.to_str());
    while let Some(arg) = iter.next() {
        match arg {
            Some("--") => break,
            Some("--set") => {
                if let Some(Some(value)) = iter.next() {
                    flags.push(parse_setting(value)?);
                }
            }
            Some(a) => {
                if let Some(value) = a.strip_prefix("--set=") {
                    flags.push(parse_setting(value)?);
                }
            }
            None => {}
        }
    }
    Ok(flags)
}

fn make_ctx(root: Option<&Path>, flags: Vec<(String, String)>) -> Result<Ctx, String> {
    let cwd = std::env::current_dir()
        .map_err(|e| format!("cannot read the current folder: {e}; use --root DIR"))?;
    let (root, root_is_cwd) = match root {
        None => (cwd, true),
        Some(r) if r.as_os_str().is_empty() => (cwd, true),
        Some(r) => (cwd.join(r), false),
    };
    if root.exists() && !root.is_dir() {
        return Err(format!(
            "the workspace root `{}` is not a folder; pass a folder with --root or ORCA_ROOT",
            root.display()
        ));
    }
    Ok(Ctx {
        root,
        root_is_cwd,
        flags,
    })
}

/// Runs the command with its output on stdout. Every command writes through `out`, so a
/// closed stdout (`orca completions bash | head -1`) is a `BrokenPipe` error here, and the
/// command ends quietly with 0 (as ripgrep does), not with a panic of `println!`. SIGPIPE
/// stays ignored (Rust's default): the daemon and the network probes must not die of it.
fn dispatch(command: &Command, ctx: &Ctx) -> i32 {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = run_command(command, ctx, &mut out);
    let result = result.and_then(|code| out.flush().map(|()| code));
    match result {
        Ok(code) => code,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            EXIT_FAILED
        }
    }
}

fn run_command(cmd: &Command, ctx: &Ctx, out: &mut dyn Write) -> io::Result<i32> {
    let (root, flags) = (ctx.root.as_path(), ctx.flags.as_slice());
    match cmd {
        Command::Run(a) => Ok(crate::scheduler::run(root, flags, a.console())),
        Command::Doctor => Ok(doctor::run(root, flags, out)),
        Command::CreateSample(args) => Ok(sample::run(ctx, args, out)),
        Command::Check(args) => check::run(ctx, args, out),
        Command::Schema => print_schema(out),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            // Generated into memory first: clap_complete panics when its writer fails.
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "orca", &mut buf);
            out.write_all(&buf)?;
            Ok(EXIT_OK)
        }
        Command::Man => print_man(out),
        Command::Status(a) => engine::status(root, flags, a.json, out),
        Command::Submit(a) => engine::submit(root, flags, a, out),
        Command::List(a) => engine::list(root, flags, a.state.as_deref(), a.json, out),
        Command::Show(a) => engine::show(root, flags, &a.id, a.json, out),
        Command::Cancel(a) => engine::cancel(root, flags, &a.id, out),
        Command::Retry(a) => engine::retry(root, flags, &a.id, out),
        Command::TailEvents(a) => engine::tail_events(
            root,
            flags,
            a.task.as_deref(),
            a.lines,
            a.follow,
            out,
            a.json,
        ),
        Command::Clean(CleanCommand::Tasks) => engine::clean_tasks(root, flags, out),
        Command::Clean(CleanCommand::Artifacts(a)) => {
            engine::clean_artifacts(root, flags, a.days, a.dry_run, out)
        }
        Command::Clean(CleanCommand::Worktrees(a)) => {
            engine::clean_worktrees(root, flags, a.dry_run, out)
        }
        Command::ValidateArtifacts(a) => engine::validate_artifacts(root, flags, a.json, out),
        Command::Route(a) => llm::route(root, flags, &a.text, a.json, out),
    }
}

/// `orca man`: the man page of the whole command line, in roff.
fn print_man(out: &mut dyn Write) -> io::Result<i32> {
    use clap::CommandFactory;
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut buf)?;
    out.write_all(&buf)?;
    Ok(EXIT_OK)
}

fn print_schema(out: &mut dyn Write) -> io::Result<i32> {
    let schema = crate::artifacts::result::schema();
    match serde_json::to_string_pretty(&schema) {
        Ok(text) => {
            writeln!(out, "{text}")?;
            Ok(EXIT_OK)
        }
        Err(e) => {
            eprintln!("error: cannot render the result schema: {e}");
            Ok(EXIT_FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_command_means_run() {
        let cli = Cli::try_parse_from(["orca"]).unwrap();
        assert!(cli.command.is_none());
    }

    #[test]
    fn quiet_and_verbose_belong_to_run() {
        use crate::events::console::Verbosity;
        let verbosity = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            match cli.command {
                None => cli.run.console().verbosity,
                Some(Command::Run(a)) => a.merge(cli.run).console().verbosity,
                Some(other) => panic!("{other:?}"),
            }
        };
        assert_eq!(verbosity(&["orca"]), Verbosity::Normal);
        assert_eq!(verbosity(&["orca", "-v"]), Verbosity::Verbose);
        assert_eq!(verbosity(&["orca", "--quiet"]), Verbosity::Quiet);
        assert_eq!(verbosity(&["orca", "run", "-q"]), Verbosity::Quiet);
        assert_eq!(verbosity(&["orca", "-v", "run"]), Verbosity::Verbose);
        assert!(Cli::try_parse_from(["orca", "run", "-q", "-v"]).is_err());
        assert!(Cli::try_parse_from(["orca", "status", "-q"]).is_err());
        // Given to `orca` before another command: a usage error naming the command.
        assert_eq!(run(["orca", "-q", "run", "-v"]), EXIT_USAGE);
        assert_eq!(run(["orca", "-v", "schema"]), EXIT_USAGE);
    }

    #[test]
    fn set_flags_are_collected_in_order_from_every_level() {
        let args: Vec<OsString> = [
            "orca",
            "--set",
            "MAX_CONCURRENT_TASKS=5",
            "check",
            "--set=log_level=DEBUG=x",
            "a.task.md",
            "--",
            "--set",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        assert_eq!(
            set_flags(&args).unwrap(),
            vec![
                ("MAX_CONCURRENT_TASKS".to_string(), "5".to_string()),
                ("LOG_LEVEL".to_string(), "DEBUG=x".to_string()),
            ]
        );
    }

    #[test]
    fn set_without_equals_is_a_usage_error() {
        let err = Cli::try_parse_from(["orca", "--set", "NOPE", "doctor"]).unwrap_err();
        assert!(err.use_stderr());
        assert!(err.to_string().contains("is not NAME=VALUE"), "{err}");
        let err = Cli::try_parse_from(["orca", "--set", "=1", "doctor"]).unwrap_err();
        assert!(
            err.to_string().contains("not a configuration variable"),
            "{err}"
        );
    }

    #[test]
    fn type_and_priority_parse_to_the_task_types() {
        let cli = Cli::try_parse_from([
            "orca",
            "submit",
            "-p",
            "do it",
            "--type",
            "code_review",
            "--priority",
            "high",
            "--target",
            "a.rs",
            "--target",
            "b.rs",
        ])
        .unwrap();
        let Some(Command::Submit(s)) = cli.command else {
            panic!("not submit")
        };
        assert_eq!(s.task_type, Some(TaskType::CodeReview));
        assert_eq!(s.priority, Some(Priority::High));
        assert_eq!(s.targets, ["a.rs", "b.rs"]);
        let err = Cli::try_parse_from(["orca", "create-sample", "--type", "bug"]).unwrap_err();
        assert!(err.to_string().contains("possible values"), "{err}");
    }

    #[test]
    fn clean_artifacts_needs_days() {
        assert!(Cli::try_parse_from(["orca", "clean", "artifacts"]).is_err());
        let cli = Cli::try_parse_from(["orca", "clean", "artifacts", "--days", "7", "--dry-run"])
            .unwrap();
        let Some(Command::Clean(CleanCommand::Artifacts(a))) = cli.command else {
            panic!("not clean artifacts")
        };
        assert_eq!((a.days, a.dry_run), (7, true));
    }

    #[test]
    fn display_path_is_relative_only_for_the_current_folder() {
        let mut ctx = Ctx {
            root: PathBuf::from("/w"),
            root_is_cwd: true,
            flags: vec![],
        };
        let p = Path::new("/w/tasks/a.task.md");
        assert_eq!(ctx.display_path(p), PathBuf::from("tasks/a.task.md"));
        ctx.root_is_cwd = false;
        assert_eq!(ctx.display_path(p), p.to_path_buf());
    }
}
