//! The commands that act on the store and the workspace files: status, list, show, cancel,
//! retry, submit, tail-events, clean, validate-artifacts. They work with or without a daemon.
//! Each parses its arguments, calls [`crate::ops`] and renders the view it returns: text for a
//! person (task and agent text escaped, [`crate::text_escape`]) or the stable JSON.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::events::EventBus;
use crate::ops::{self, CancelView, ListFilter, Ops, OpsError, ShowView, StatusView, TaskView};
use crate::store::{Store, TaskState};
use crate::text_escape::escape_line as esc;
use crate::workspace::Workspace;

/// Loaded configuration, workspace, store and event log for one command.
struct Ctx {
    cfg: Config,
    ws: Workspace,
    store: std::sync::Arc<dyn Store>,
    events: Option<EventBus>,
}

impl Ctx {
    fn ops(&self) -> Ops<'_> {
        Ops {
            cfg: &self.cfg,
            ws: &self.ws,
            store: &*self.store,
            events: self.events.as_ref(),
        }
    }
}

/// Whether a command only reads: on a folder that is not a workspace it creates nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadOnly,
    Write,
}

/// The error of a read-only command on a folder that holds no workspace (exit 2).
pub fn not_a_workspace(root: &Path) -> String {
    format!(
        "{} is not an Orca workspace (it has no tasks/ or .orca/ folder); nothing was created\n\
         hint: run `orca run` there to make it one, or point --root (or ORCA_ROOT) at a workspace",
        root.display()
    )
}

/// Loads the configuration (printing its error: exit 2) and the workspace it names.
fn load(
    root: &Path,
    flags: &[(String, String)],
    access: Access,
) -> Result<(Config, Workspace), i32> {
    let cfg = Config::load(root, flags).map_err(|e| {
        eprintln!("error: {e}");
        e.exit_code()
    })?;
    if access == Access::ReadOnly && !ops::is_workspace(&cfg.root) {
        eprintln!("error: {}", not_a_workspace(&cfg.root));
        return Err(2);
    }
    let ws = Workspace::new(cfg.root.clone());
    Ok((cfg, ws))
}

fn open(root: &Path, flags: &[(String, String)], access: Access) -> Result<Ctx, i32> {
    let (cfg, ws) = load(root, flags, access)?;
    let who = crate::store::Opener::of(&cfg);
    let store = crate::store::open_as(&cfg.database_url, &ws, &who).map_err(|e| {
        eprintln!("error: {e}");
        e.exit_code()
    })?;
    let events = match access {
        Access::ReadOnly => None,
        Access::Write => {
            EventBus::open_log(ws.events_file(), cfg.events_max_bytes, cfg.events_files).ok()
        }
    };
    Ok(Ctx {
        cfg,
        ws,
        store,
        events,
    })
}

/// Prints an operation's error; returns its exit code.
fn fail(e: &OpsError) -> i32 {
    eprintln!("error: {e}");
    e.exit_code()
}

/// Writes `view` as pretty JSON. Through a `Value`, whose maps are sorted: the keys come out
/// in alphabetical order, as they always have.
fn write_json(out: &mut dyn Write, view: &impl Serialize) -> io::Result<()> {
    let text = serde_json::to_value(view)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .map_err(io::Error::other)?;
    writeln!(out, "{text}")
}

fn fmt_ms(ms: i64) -> String {
    let s = ms as f64 / 1000.0;
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as i64, (s as i64) % 60)
    } else {
        format!("{}h{:02}m", (s / 3600.0) as i64, ((s as i64) % 3600) / 60)
    }
}

fn progress_str<'a>(p: &'a Option<Value>, key: &str) -> Option<&'a str> {
    p.as_ref()?.get(key)?.as_str()
}

/// `orca status [--json]`.
pub fn status(
    root: &Path,
    flags: &[(String, String)],
    as_json: bool,
    out: &mut dyn Write,
) -> io::Result<i32> {
    let ctx = match open(root, flags, Access::ReadOnly) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let view = match ops::status(&ctx.ops()) {
        Ok(v) => v,
        Err(e) => return Ok(fail(&e)),
    };
    if as_json {
        write_json(out, &view)?;
    } else {
        render_status(&view, out)?;
    }
    Ok(0)
}

fn render_status(v: &StatusView, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "orca {}: {}", v.version, esc(&v.root))?;
    match v.daemon.pid {
        Some(pid) => writeln!(out, "daemon    running (pid {pid})")?,
        None => writeln!(out, "daemon    not running (start it with `orca run`)")?,
    }
    writeln!(out, "store     {} {}", v.store.kind, esc(&v.store.path))?;
    for n in &v.nodes {
        let labels = if n.labels.is_empty() {
            "no labels".to_owned()
        } else {
            n.labels.join(",")
        };
        writeln!(
            out,
            "node      {} ({}), {}/{} running, heartbeat {}",
            esc(&n.id),
            esc(&labels),
            n.running,
            n.max_running,
            crate::clock::rfc3339_ms(n.heartbeat_at_ms)
        )?;
    }
    writeln!(
        out,
        "agent     {}  (at most {} at once; settings of {})",
        esc(&v.agent.bin),
        v.max_concurrent_tasks,
        if v.settings_from == "daemon" {
            "the running daemon"
        } else {
            "this shell"
        }
    )?;
    if let Some(line) = crate::mediate::service::status_line(v.llm.as_ref()) {
        writeln!(out, "llm       {}", esc(&line))?;
    }
    let line: Vec<String> = TaskState::ALL
        .iter()
        .map(|s| format!("{} {}", s, v.counts.get(s.as_str()).copied().unwrap_or(0)))
        .collect();
    writeln!(out, "tasks     {}", line.join(" · "))?;
    if v.task_files_waiting > 0 {
        let why = if v.daemon.running {
            "the daemon takes them in a moment"
        } else {
            "no daemon is running: start one with `orca run`"
        };
        writeln!(
            out,
            "waiting   {} task file(s) in tasks/ not taken yet ({why})",
            v.task_files_waiting
        )?;
    }
    if let Some(t) = &v.telegram {
        writeln!(
            out,
            "telegram  {}: {}{}",
            esc(t["state"].as_str().unwrap_or("")),
            esc(t["detail"].as_str().unwrap_or("")),
            match t["unsent"].as_u64().unwrap_or(0) {
                0 => String::new(),
                n => format!(
                    "; {n} notification(s) not delivered yet, kept in .orca/telegram-outbox/"
                ),
            }
        )?;
    }
    if !v.blocked.is_empty() {
        let offered = if v.store.kind == "postgres" {
            // A fleet: what the live nodes offer is listed under `node` above.
            if v.nodes.is_empty() {
                "no node is live".to_string()
            } else {
                "see the live nodes above".to_string()
            }
        } else if v.node_labels.is_empty() {
            "ORCA_NODE_LABELS: none".to_string()
        } else {
            format!("ORCA_NODE_LABELS: {}", v.node_labels.join(","))
        };
        writeln!(
            out,
            "blocked   {} queued task(s) require labels no node offers ({offered})",
            v.blocked.len()
        )?;
        for b in &v.blocked {
            writeln!(out, "  {:<24} needs {}", esc(&b.id), b.missing.join(","))?;
        }
    }
    if v.running.is_empty() {
        writeln!(out, "running   none")?;
        return Ok(());
    }
    writeln!(out, "running")?;
    writeln!(
        out,
        "  {:<24} {:>7} {:>8} {:>5} {:>9}  NOW",
        "ID", "ATTEMPT", "ELAPSED", "TURNS", "COST"
    )?;
    for r in &v.running {
        let p = &r.task.progress;
        let turns = p
            .as_ref()
            .and_then(|p| p.get("turns"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let cost = p
            .as_ref()
            .and_then(|p| p.get("cost_usd"))
            .and_then(Value::as_f64)
            .map(|c| format!("${c:.4}"))
            .unwrap_or_else(|| "-".into());
        let tool = progress_str(p, "last_tool").unwrap_or("starting");
        let target = progress_str(p, "last_tool_target").unwrap_or("");
        writeln!(
            out,
            "  {:<24} {:>7} {:>8} {:>5} {:>9}  {} {}",
            esc(&r.task.id),
            r.task.attempts,
            fmt_ms(r.elapsed_ms),
            turns,
            cost,
            esc(tool),
            esc(target)
        )?;
    }
    Ok(())
}

/// `orca list [--state S] [--json]`.
pub fn list(
    root: &Path,
    flags: &[(String, String)],
    state: Option<&str>,
    as_json: bool,
    out: &mut dyn Write,
) -> io::Result<i32> {
    let filter = match state.map(str::parse::<ListFilter>) {
        None => ListFilter::All,
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
    };
    let ctx = match open(root, flags, Access::ReadOnly) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let views = match ops::list(&ctx.ops(), filter) {
        Ok(v) => v,
        Err(e) => return Ok(fail(&e)),
    };
    if as_json {
        write_json(out, &views)?;
        return Ok(0);
    }
    render_list(&views, out)?;
    Ok(0)
}

fn render_list(views: &[TaskView], out: &mut dyn Write) -> io::Result<()> {
    if views.is_empty() {
        return writeln!(out, "no tasks");
    }
    writeln!(
        out,
        "{:<28} {:<10} {:<8} {:>8}  {:<24} TITLE",
        "ID", "STATE", "PRIORITY", "ATTEMPTS", "RECEIVED"
    )?;
    for r in views {
        writeln!(
            out,
            "{:<28} {:<10} {:<8} {:>8}  {:<24} {}",
            esc(&r.id),
            r.state,
            r.priority,
            r.attempts,
            r.received_at,
            esc(r.title.as_deref().unwrap_or_default())
        )?;
    }
    let waiting: Vec<&TaskView> = views.iter().filter(|v| v.waiting_for.is_some()).collect();
    if !waiting.is_empty() {
        writeln!(out)?;
        for v in waiting {
            writeln!(
                out,
                "{} waits: {}",
                esc(&v.id),
                esc(v.waiting_for.as_deref().unwrap_or_default())
            )?;
        }
    }
    Ok(())
}

/// `orca show <id> [--json]`.
pub fn show(
    root: &Path,
    flags: &[(String, String)],
    id: &str,
    as_json: bool,
    out: &mut dyn Write,
) -> io::Result<i32> {
    let ctx = match open(root, flags, Access::ReadOnly) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let view = match ops::show(&ctx.ops(), id) {
        Ok(v) => v,
        Err(e) => return Ok(fail(&e)),
    };
    if as_json {
        write_json(out, &view)?;
    } else {
        render_show(&view, out)?;
    }
    Ok(0)
}

fn render_show(v: &ShowView, out: &mut dyn Write) -> io::Result<()> {
    let t = &v.task;
    writeln!(out, "id         {}", esc(&t.id))?;
    let final_state = t.state.parse::<TaskState>().map(TaskState::is_final);
    writeln!(
        out,
        "state      {}{}",
        t.state,
        if t.cancel_requested && final_state == Ok(false) {
            " (cancel requested)"
        } else {
            ""
        }
    )?;
    if let Some(w) = &t.waiting_for {
        writeln!(out, "waits      {}", esc(w))?;
    }
    if t.parsed {
        if let Some(title) = &t.title {
            writeln!(out, "title      {}", esc(title))?;
        }
        writeln!(out, "type       {}", t.task_type.unwrap_or("(routed)"))?;
    }
    writeln!(out, "priority   {}", t.priority)?;
    writeln!(out, "file       {}", esc(&t.file))?;
    if let Some(a) = &t.archived_to {
        writeln!(out, "archived   {}", esc(a))?;
    }
    writeln!(out, "received   {}", t.received_at)?;
    if let Some(s) = &t.started_at {
        writeln!(out, "started    {s}")?;
    }
    if let Some(f) = &t.finished_at {
        writeln!(out, "finished   {f}")?;
    }
    if t.state == TaskState::Running.as_str() {
        if let Some(p) = &t.progress {
            writeln!(
                out,
                "now        turn {} · {} {} · cost ${:.4}",
                p.get("turns").and_then(Value::as_u64).unwrap_or(0),
                esc(p
                    .get("last_tool")
                    .and_then(Value::as_str)
                    .unwrap_or("thinking")),
                esc(p
                    .get("last_tool_target")
                    .and_then(Value::as_str)
                    .unwrap_or("")),
                p.get("cost_usd").and_then(Value::as_f64).unwrap_or(0.0)
            )?;
        }
    }
    if let Some(e) = &t.error {
        writeln!(
            out,
            "error      {}",
            esc(e.get("message").and_then(Value::as_str).unwrap_or(""))
        )?;
        if let Some(h) = e.get("hint").and_then(Value::as_str) {
            writeln!(out, "hint       {}", esc(h))?;
        }
    }
    if let (Some(result), Some(summary)) = (&v.result_file, v.summary_file()) {
        writeln!(out, "result     {}", esc(result))?;
        writeln!(out, "summary    {}", esc(&summary))?;
    }
    if !v.attempt_history.is_empty() {
        writeln!(out, "attempts")?;
        for a in &v.attempt_history {
            writeln!(
                out,
                "  #{} {} {}{}",
                a.attempt,
                a.started_at,
                esc(a.outcome.as_deref().unwrap_or("running")),
                a.error
                    .as_ref()
                    .map(|e| format!(": {}", esc(e)))
                    .unwrap_or_default()
            )?;
        }
    }
    if !v.last_events.is_empty() {
        writeln!(out, "last events")?;
        for e in &v.last_events {
            writeln!(
                out,
                "  {} {}",
                esc(e.get("ts").and_then(Value::as_str).unwrap_or("")),
                esc(e.get("event").and_then(Value::as_str).unwrap_or(""))
            )?;
        }
    }
    Ok(())
}

/// `orca cancel <id>`.
pub fn cancel(
    root: &Path,
    flags: &[(String, String)],
    id: &str,
    out: &mut dyn Write,
) -> io::Result<i32> {
    let ctx = match open(root, flags, Access::Write) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    match ops::cancel(&ctx.ops(), id) {
        Ok(CancelView::Cancelled { id, note }) => {
            if let Some(note) = note {
                eprintln!("warning: {note}");
            }
            writeln!(
                out,
                "cancelled {} (it was queued and will not start)",
                esc(&id)
            )?;
            Ok(0)
        }
        Ok(CancelView::Requested { id }) => {
            writeln!(
                out,
                "cancel requested for {}: the running agent is being stopped",
                esc(&id)
            )?;
            Ok(0)
        }
        Err(e) => Ok(fail(&e)),
    }
}

/// `orca retry <id>`.
pub fn retry(
    root: &Path,
    flags: &[(String, String)],
    id: &str,
    out: &mut dyn Write,
) -> io::Result<i32> {
    let ctx = match open(root, flags, Access::Write) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    match ops::retry(&ctx.ops(), id) {
        Ok(v) => {
            writeln!(
                out,
                "queued {} again (attempt {} next){}",
                esc(&v.id),
                v.next_attempt,
                if v.daemon.running {
                    ""
                } else {
                    "; start `orca run` to run it"
                }
            )?;
            Ok(0)
        }
        Err(e) => Ok(fail(&e)),
    }
}

fn read_submit_source(file: &str) -> Result<ops::SubmitSource, String> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(crate::task::MAX_TASK_FILE_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(ops::SubmitSource {
            path: PathBuf::from("<stdin>.task.md"),
            bytes: buf,
        })
    } else {
        let p = PathBuf::from(file);
        let meta = std::fs::metadata(&p).map_err(|e| format!("cannot read {file}: {e}"))?;
        if meta.len() > crate::task::MAX_TASK_FILE_BYTES {
            return Err(format!(
                "{file}: the file is {} bytes; task files are limited to 1 MiB",
                meta.len()
            ));
        }
        let bytes = std::fs::read(&p).map_err(|e| format!("cannot read {file}: {e}"))?;
        Ok(ops::SubmitSource { path: p, bytes })
    }
}

/// `orca submit`: writes a task file into tasks/ atomically and prints its id; says so on
/// stderr when no daemon runs to take it.
pub fn submit(
    root: &Path,
    flags: &[(String, String)],
    args: &super::SubmitArgs,
    out: &mut dyn Write,
) -> io::Result<i32> {
    let ctx = match open(root, flags, Access::Write) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let source = match &args.file {
        Some(file) => match read_submit_source(&file.to_string_lossy()) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(1);
            }
        },
        None => None,
    };
    let req = ops::SubmitRequest {
        source,
        prompt: args.prompt.clone(),
        task_type: args.task_type,
        priority: args.priority,
        targets: args.targets.clone(),
        criteria: args.criteria.clone(),
        dir: args.dir.clone(),
        id: args.id.clone(),
    };
    match ops::submit(&ctx.ops(), req) {
        Ok(v) => {
            writeln!(out, "{}", v.id)?;
            if !v.daemon.running {
                eprintln!(
                    "note: no daemon is running on {}; {} waits in tasks/ (state pending) until you start one with `orca run`",
                    ctx.ws.root.display(),
                    v.id
                );
            }
            Ok(0)
        }
        Err(e) => Ok(fail(&e)),
    }
}

/// `orca tail-events [--task ID] [--lines N] [--follow] [--json]`: a human line per event,
/// or with `--json` the lines as they are in the file. Damaged lines are skipped and counted
/// on stderr.
pub fn tail_events(
    root: &Path,
    flags: &[(String, String)],
    task: Option<&str>,
    lines: usize,
    follow: bool,
    out: &mut dyn Write,
    as_json: bool,
) -> io::Result<i32> {
    let (cfg, ws) = match load(root, flags, Access::ReadOnly) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    // A node of a fleet: the fleet's event log in the shared store, every node's events.
    if matches!(
        crate::store::Backend::parse(&cfg.database_url, &ws),
        Ok(crate::store::Backend::Postgres)
    ) {
        let who = crate::store::Opener::of(&cfg);
        let store = match crate::store::open_as(&cfg.database_url, &ws, &who) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(e.exit_code());
            }
        };
        if let Some(fleet) = store.fleet() {
            return super::tail_fleet::tail(fleet, task, lines, follow, out, as_json);
        }
    }
    let file = ws.events_file();
    let (read, mut follower) = match crate::events::tail(&file, task, Some(lines)) {
        Ok(x) => x,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            crate::events::TailRead::default(),
            crate::events::follow(&file, task),
        ),
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return Ok(1);
        }
    };
    let show = |e: &crate::events::RawEvent| {
        if as_json {
            e.line.clone()
        } else {
            crate::events::render::human_line(&e.line)
        }
    };
    let skipped_note = |n: u64| {
        if n > 0 {
            eprintln!(
                "note: skipped {n} damaged line(s) in {} (torn by a crash or a full disk)",
                file.display()
            );
        }
    };
    for e in &read.events {
        writeln!(out, "{}", show(e))?;
    }
    out.flush()?;
    skipped_note(read.skipped);
    if follow {
        let mut told = 0;
        while let Some(e) = follower.next() {
            if follower.skipped > told {
                skipped_note(follower.skipped - told);
                told = follower.skipped;
            }
            match e {
                Ok(e) => {
                    writeln!(out, "{}", show(&e))?;
                    out.flush()?;
                }
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", file.display());
                    return Ok(1);
                }
            }
        }
    }
    Ok(0)
}

/// `orca clean tasks`: archives the task files whose task the store shows as finished.
pub fn clean_tasks(
    root: &Path,
    flags: &[(String, String)],
    out: &mut dyn Write,
) -> io::Result<i32> {
    let ctx = match open(root, flags, Access::Write) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    match ops::clean_tasks(&ctx.ops()) {
        Ok(v) => {
            for (from, to) in &v.archived {
                writeln!(out, "{} -> {}", esc(from), esc(to))?;
            }
            writeln!(out, "archived {} finished task file(s)", v.archived.len())?;
            if !v.kept.is_empty() {
                writeln!(
                    out,
                    "kept {} task file(s) that have not finished (or not run yet); `orca list` shows them",
                    v.kept.len()
                )?;
            }
            Ok(0)
        }
        Err(e) => Ok(fail(&e)),
    }
}

/// `orca clean artifacts --days N [--dry-run]`.
pub fn clean_artifacts(
    root: &Path,
    flags: &[(String, String)],
    days: u64,
    dry_run: bool,
    out: &mut dyn Write,
) -> io::Result<i32> {
    let (_cfg, ws) = match load(root, flags, Access::Write) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    match crate::artifacts::clean::clean_artifacts(&ws, days, dry_run) {
        Ok(files) => {
            for f in &files {
                writeln!(
                    out,
                    "{}{}",
                    if dry_run { "would remove " } else { "removed " },
                    esc(&f.display().to_string())
                )?;
            }
            writeln!(
                out,
                "{} {} file(s) older than {days} day(s)",
                if dry_run { "would remove" } else { "removed" },
                files.len()
            )?;
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}

/// `orca clean worktrees [--dry-run]`: removes the git worktrees of finished tasks (and of
/// tasks the store no longer knows); their branches stay.
pub fn clean_worktrees(
    root: &Path,
    flags: &[(String, String)],
    dry_run: bool,
    out: &mut dyn Write,
) -> io::Result<i32> {
    let ctx = match open(root, flags, Access::Write) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let finished = |id: &str| match ctx.store.get(id) {
        Ok(Some(r)) => r.state.is_final(),
        Ok(None) => true,
        Err(_) => false,
    };
    let dir = crate::verify::worktree::worktrees_dir(&ctx.ws.state_dir());
    let plan = crate::verify::worktree::finished_worktrees(&dir, &finished);
    let (mut removed, mut failed) = (0, 0);
    for p in &plan.remove {
        let path_text = p.display().to_string();
        let shown = esc(&path_text);
        if dry_run {
            writeln!(out, "would remove {shown}")?;
            removed += 1;
            continue;
        }
        match crate::verify::worktree::remove(p) {
            Ok(()) => {
                writeln!(out, "removed {shown}")?;
                removed += 1;
            }
            Err(e) => {
                eprintln!("error: {shown}: {e}");
                failed += 1;
            }
        }
    }
    writeln!(
        out,
        "{} {removed} worktree(s) of finished tasks (their orca/ branches stay)",
        if dry_run { "would remove" } else { "removed" }
    )?;
    if plan.kept > 0 {
        writeln!(
            out,
            "kept {} worktree(s) of tasks that have not finished",
            plan.kept
        )?;
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

/// `orca validate-artifacts [--json]`.
pub fn validate_artifacts(
    root: &Path,
    flags: &[(String, String)],
    as_json: bool,
    out: &mut dyn Write,
) -> io::Result<i32> {
    let (_cfg, ws) = match load(root, flags, Access::Write) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let reports = crate::artifacts::validate::validate_dir(&ws.results());
    let (text, code) = crate::artifacts::validate::render_report(&reports, as_json);
    write!(out, "{text}")?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{AgentView, DaemonView, RunningView, StoreView};

    fn task_view(id: &str, title: &str) -> TaskView {
        TaskView {
            archived_to: None,
            attempts: 1,
            cancel_requested: false,
            error: Some(serde_json::json!({"message": "bad \x1b[31mred", "hint": "\x07bell"})),
            file: "tasks/\x1b]0;x\x07.task.md".into(),
            finished_at: None,
            id: id.into(),
            max_retries: 2,
            priority: "medium",
            progress: Some(serde_json::json!({
                "turns": 3, "last_tool": "Bash\x1b[2J", "last_tool_target": "/tmp/\x1b]0;pwned\x07"
            })),
            received_at: "2026-12-03T10:00:00.000Z".into(),
            session_id: None,
            source: crate::artifacts::result::SourceKind::File,
            started_at: Some("2026-12-03T10:00:01.000Z".into()),
            state: "running".into(),
            stem: "x".into(),
            title: Some(title.into()),
            task_type: None,
            waiting_for: None,
            parsed: true,
        }
    }

    fn assert_clean(text: &str) {
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    }

    #[test]
    fn status_and_show_escape_tool_names_targets_files_and_errors() {
        let view = StatusView {
            agent: AgentView {
                bin: "claude".into(),
            },
            settings_from: "this shell",
            blocked: Vec::new(),
            counts: Default::default(),
            daemon: DaemonView {
                pid: Some(7),
                running: true,
            },
            max_concurrent_tasks: 3,
            node_labels: Vec::new(),
            root: "/w".into(),
            running: vec![RunningView {
                elapsed_ms: 1500,
                task: task_view("t", "x"),
            }],
            store: StoreView {
                kind: "sqlite",
                path: "/w/.orca/orca.db".into(),
            },
            task_files_waiting: 0,
            telegram: None,
            llm: None,
            version: "0",
            nodes: Vec::new(),
        };
        let mut out = Vec::new();
        render_status(&view, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_clean(&text);
        assert!(
            text.contains("Bash\\x1b[2J /tmp/\\x1b]0;pwned\\x07"),
            "{text}"
        );

        let show = ShowView {
            attempt_history: Vec::new(),
            last_events: vec![serde_json::json!({"ts": "t", "event": "e\x1b[2J"})],
            result_file: None,
            task: task_view("t", "T \x1b]0;pwned\x07 \x1b[2J"),
        };
        let mut out = Vec::new();
        render_show(&show, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_clean(&text);
        assert!(
            text.contains("title      T \\x1b]0;pwned\\x07 \\x1b[2J"),
            "{text}"
        );
        assert!(text.contains("hint       \\x07bell"), "{text}");
        let mut out = Vec::new();
        render_list(&[task_view("t", "\x1b[2J")], &mut out).unwrap();
        assert_clean(&String::from_utf8(out).unwrap());
    }
}
