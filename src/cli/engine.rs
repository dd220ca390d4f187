//! The commands that act on the store and the workspace files: status, list, show, cancel,
//! retry, submit, tail-events, clean, validate-artifacts. They work with or without a daemon.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::clock::{now_ms, rfc3339_ms};
use crate::config::Config;
use crate::events::{Event, EventBus, EventKind};
use crate::store::{CancelOutcome, SqliteStore, Store, TaskRecord, TaskState};
use crate::task::{Criterion, Task};
use crate::workspace::Workspace;

/// Loaded configuration, workspace and store for one command.
struct Ctx {
    cfg: Config,
    ws: Workspace,
    store: SqliteStore,
}

/// Loads the configuration (printing its error: exit 2) and the workspace it names.
fn load(root: &Path, flags: &[(String, String)]) -> Result<(Config, Workspace), i32> {
    let cfg = Config::load(root, flags).map_err(|e| {
        eprintln!("error: {e}");
        2
    })?;
    let ws = Workspace::new(cfg.root.clone());
    Ok((cfg, ws))
}

fn open(root: &Path, flags: &[(String, String)]) -> Result<Ctx, i32> {
    let (cfg, ws) = load(root, flags)?;
    let store = SqliteStore::open_in_workspace(&ws).map_err(|e| {
        eprintln!("error: {e}");
        1
    })?;
    Ok(Ctx { cfg, ws, store })
}

fn events_of(ctx: &Ctx) -> Option<EventBus> {
    EventBus::open_log(
        ctx.ws.events_file(),
        ctx.cfg.events_max_bytes,
        ctx.cfg.events_files,
    )
    .ok()
}

/// Wakes a running daemon so it acts on a change at once (it would notice within a tick anyway).
fn poke_daemon(ws: &Workspace) -> Option<u32> {
    let pid = crate::store::lock::holder(ws)?;
    if let Ok(p) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGUSR1,
        );
    }
    Some(pid)
}

fn print_json(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = writeln!(out);
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

fn record_json(r: &TaskRecord) -> Value {
    json!({
        "id": r.id,
        "state": r.state.to_string(),
        "priority": r.priority.as_str(),
        "type": r.task.as_ref().and_then(|t| t.task_type).map(|t| t.as_str()),
        "title": r.task.as_ref().and_then(|t| t.title.clone()),
        "file": r.file,
        "stem": r.stem,
        "source": r.source,
        "attempts": r.attempts,
        "max_retries": r.max_retries,
        "received_at": rfc3339_ms(r.received_at_ms),
        "started_at": r.started_at_ms.map(rfc3339_ms),
        "finished_at": r.finished_at_ms.map(rfc3339_ms),
        "cancel_requested": r.cancel_requested,
        "session_id": r.session_id,
        "progress": r.progress,
        "error": r.error,
        "archived_to": r.archived_to,
    })
}

/// `orca status [--json]`.
pub fn status(root: &Path, flags: &[(String, String)], as_json: bool) -> i32 {
    let ctx = match open(root, flags) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let daemon = crate::store::lock::holder(&ctx.ws);
    let counts = match ctx.store.counts() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let running = ctx.store.list(Some(TaskState::Running)).unwrap_or_default();
    let now = now_ms();
    // Task files in tasks/ that no daemon has taken yet.
    let loose = std::fs::read_dir(ctx.ws.tasks())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| Workspace::is_task_file_name(&e.file_name().to_string_lossy()))
                .filter(|e| {
                    let rel = format!("tasks/{}", e.file_name().to_string_lossy());
                    !matches!(ctx.store.find_open_by_file(&rel), Ok(Some(_)))
                })
                .count()
        })
        .unwrap_or(0);
    if as_json {
        let run: Vec<Value> = running
            .iter()
            .map(|r| {
                let mut v = record_json(r);
                v["elapsed_ms"] = json!(now - started_ms(r));
                v
            })
            .collect();
        print_json(&json!({
            "root": ctx.ws.root.display().to_string(),
            "version": crate::VERSION,
            "daemon": {"running": daemon.is_some(), "pid": daemon},
            "store": {"kind": "sqlite", "path": ctx.ws.db_file().display().to_string()},
            "agent": {"bin": ctx.cfg.claude_bin},
            "max_concurrent_tasks": ctx.cfg.max_concurrent_tasks,
            "counts": counts,
            "task_files_waiting": loose,
            "running": run,
        }));
        return 0;
    }
    println!("orca {}: {}", crate::VERSION, ctx.ws.root.display());
    match daemon {
        Some(pid) => println!("daemon    running (pid {pid})"),
        None => println!("daemon    not running (start it with `orca run`)"),
    }
    println!("store     sqlite {}", ctx.ws.db_file().display());
    println!(
        "agent     {}  (at most {} at once)",
        ctx.cfg.claude_bin, ctx.cfg.max_concurrent_tasks
    );
    let line: Vec<String> = TaskState::ALL
        .iter()
        .map(|s| format!("{} {}", s, counts.get(&s.to_string()).copied().unwrap_or(0)))
        .collect();
    println!("tasks     {}", line.join(" · "));
    if loose > 0 {
        println!("waiting   {loose} task file(s) in tasks/ not taken yet (is `orca run` running?)");
    }
    if running.is_empty() {
        println!("running   none");
    } else {
        println!("running");
        println!(
            "  {:<24} {:>7} {:>8} {:>5} {:>9}  NOW",
            "ID", "ATTEMPT", "ELAPSED", "TURNS", "COST"
        );
        for r in &running {
            let p = r.progress.clone().unwrap_or(Value::Null);
            let turns = p.get("turns").and_then(Value::as_u64).unwrap_or(0);
            let cost = p
                .get("cost_usd")
                .and_then(Value::as_f64)
                .map(|c| format!("${c:.4}"))
                .unwrap_or_else(|| "-".into());
            let tool = p
                .get("last_tool")
                .and_then(Value::as_str)
                .unwrap_or("starting");
            let target = p
                .get("last_tool_target")
                .and_then(Value::as_str)
                .unwrap_or("");
            println!(
                "  {:<24} {:>7} {:>8} {:>5} {:>9}  {} {}",
                r.id,
                r.attempts,
                fmt_ms(now - started_ms(r)),
                turns,
                cost,
                tool,
                target
            );
        }
    }
    0
}

/// When the task's run started, for elapsed time (falls back to when it was received).
fn started_ms(r: &TaskRecord) -> i64 {
    r.started_at_ms.unwrap_or(r.received_at_ms)
}

/// `orca list [--state S] [--json]`.
pub fn list(root: &Path, flags: &[(String, String)], state: Option<&str>, as_json: bool) -> i32 {
    let filter = match state.map(str::parse::<TaskState>) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => {
            let all: Vec<String> = TaskState::ALL.iter().map(|s| s.to_string()).collect();
            eprintln!(
                "error: unknown state '{}': expected one of {}",
                state.unwrap_or_default(),
                all.join(", ")
            );
            return 2;
        }
    };
    let ctx = match open(root, flags) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let recs = match ctx.store.list(filter) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if as_json {
        print_json(&Value::Array(recs.iter().map(record_json).collect()));
        return 0;
    }
    if recs.is_empty() {
        println!("no tasks");
        return 0;
    }
    println!(
        "{:<28} {:<10} {:<8} {:>8}  {:<24} TITLE",
        "ID", "STATE", "PRIORITY", "ATTEMPTS", "RECEIVED"
    );
    for r in recs {
        let title = r
            .task
            .as_ref()
            .and_then(|t| t.title.clone())
            .unwrap_or_default();
        println!(
            "{:<28} {:<10} {:<8} {:>8}  {:<24} {}",
            r.id,
            r.state.to_string(),
            r.priority.as_str(),
            r.attempts,
            rfc3339_ms(r.received_at_ms),
            title
        );
    }
    0
}

/// `orca show <id> [--json]`.
pub fn show(root: &Path, flags: &[(String, String)], id: &str, as_json: bool) -> i32 {
    let ctx = match open(root, flags) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rec = match ctx.store.get(id) {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!("error: no task '{id}' in the store\nhint: `orca list` shows the task ids");
            return 1;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let attempts = ctx.store.attempts(id).unwrap_or_default();
    let events =
        crate::events::read_events(&ctx.ws.events_file(), Some(id), Some(10)).unwrap_or_default();
    let result_path = ctx.ws.result_file(&rec.stem);
    if as_json {
        let mut v = record_json(&rec);
        v["attempt_history"] = attempts
            .iter()
            .map(|a| {
                json!({"attempt": a.attempt, "worker": a.worker, "started_at": rfc3339_ms(a.started_at_ms),
                       "finished_at": a.finished_at_ms.map(rfc3339_ms), "outcome": a.outcome, "error": a.error,
                       "exit_code": a.exit_code, "session_id": a.session_id, "resumed": a.resumed})
            })
            .collect();
        v["result_file"] = json!(result_path
            .is_file()
            .then(|| format!("results/{}_result.json", rec.stem)));
        v["last_events"] = Value::Array(events);
        print_json(&v);
        return 0;
    }
    println!("id         {}", rec.id);
    println!(
        "state      {}{}",
        rec.state,
        if rec.cancel_requested && !rec.state.is_final() {
            " (cancel requested)"
        } else {
            ""
        }
    );
    if let Some(t) = &rec.task {
        if let Some(title) = &t.title {
            println!("title      {title}");
        }
        println!(
            "type       {}",
            t.task_type.map(|x| x.as_str()).unwrap_or("(routed)")
        );
    }
    println!("priority   {}", rec.priority);
    println!("file       {}", rec.file);
    if let Some(a) = &rec.archived_to {
        println!("archived   {a}");
    }
    println!("received   {}", rfc3339_ms(rec.received_at_ms));
    if let Some(s) = rec.started_at_ms {
        println!("started    {}", rfc3339_ms(s));
    }
    if let Some(f) = rec.finished_at_ms {
        println!("finished   {}", rfc3339_ms(f));
    }
    if rec.state == TaskState::Running {
        if let Some(p) = &rec.progress {
            println!(
                "now        turn {} · {} {} · cost ${:.4}",
                p.get("turns").and_then(Value::as_u64).unwrap_or(0),
                p.get("last_tool")
                    .and_then(Value::as_str)
                    .unwrap_or("thinking"),
                p.get("last_tool_target")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                p.get("cost_usd").and_then(Value::as_f64).unwrap_or(0.0)
            );
        }
    }
    if let Some(e) = &rec.error {
        println!(
            "error      {}",
            e.get("message").and_then(Value::as_str).unwrap_or("")
        );
        if let Some(h) = e.get("hint").and_then(Value::as_str) {
            println!("hint       {h}");
        }
    }
    if result_path.is_file() {
        println!("result     results/{}_result.json", rec.stem);
        println!("summary    summaries/{}_summary.txt", rec.stem);
    }
    if !attempts.is_empty() {
        println!("attempts");
        for a in &attempts {
            println!(
                "  #{} {} {}{}",
                a.attempt,
                rfc3339_ms(a.started_at_ms),
                a.outcome.as_deref().unwrap_or("running"),
                a.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
    }
    if !events.is_empty() {
        println!("last events");
        for e in &events {
            println!(
                "  {} {}",
                e.get("ts").and_then(Value::as_str).unwrap_or(""),
                e.get("event").and_then(Value::as_str).unwrap_or("")
            );
        }
    }
    0
}

/// `orca cancel <id>`.
pub fn cancel(root: &Path, flags: &[(String, String)], id: &str) -> i32 {
    let ctx = match open(root, flags) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let outcome = match ctx.store.request_cancel(id, now_ms()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let events = events_of(&ctx);
    match outcome {
        CancelOutcome::Cancelled => {
            if let Some(ev) = &events {
                ev.publish(Event::task(
                    id,
                    EventKind::CancelRequested {
                        by: "cli".into(),
                        while_: "queued".into(),
                    },
                ));
            }
            match poke_daemon(&ctx.ws) {
                Some(_) => {}
                None => {
                    // No daemon: write the result and archive the file now.
                    if let (Some(ev), Ok(Some(rec))) = (&events, ctx.store.get(id)) {
                        ev.publish(Event::task(id, EventKind::cancelled("queued")));
                        if let Err(e) = crate::scheduler::finalize::finalize(
                            &ctx.ws, &ctx.store, ev, &rec, None, None,
                        ) {
                            eprintln!("warning: the task is cancelled but its result could not be written yet: {e}");
                        }
                    }
                }
            }
            println!("cancelled {id} (it was queued and will not start)");
            0
        }
        CancelOutcome::Requested => {
            if let Some(ev) = &events {
                ev.publish(Event::task(
                    id,
                    EventKind::CancelRequested {
                        by: "cli".into(),
                        while_: "running".into(),
                    },
                ));
            }
            poke_daemon(&ctx.ws);
            println!("cancel requested for {id}: the running agent is being stopped");
            0
        }
        CancelOutcome::AlreadyFinished(s) => {
            eprintln!("error: task '{id}' already finished ({s}); nothing to cancel");
            1
        }
        CancelOutcome::NotFound => {
            eprintln!("error: no task '{id}' in the store\nhint: `orca list` shows the task ids");
            1
        }
    }
}

/// `orca retry <id>`.
pub fn retry(root: &Path, flags: &[(String, String)], id: &str) -> i32 {
    let ctx = match open(root, flags) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match ctx.store.retry(id, now_ms()) {
        Ok(rec) => {
            if let Some(ev) = events_of(&ctx) {
                ev.publish(Event::task(
                    id,
                    EventKind::Queued {
                        by: Some("cli".into()),
                        priority: rec.priority.as_str().to_owned(),
                        retry: Some(true),
                        seq: None,
                    },
                ));
            }
            let daemon = poke_daemon(&ctx.ws);
            println!(
                "queued {id} again (attempt {} next){}",
                rec.attempts + 1,
                if daemon.is_some() {
                    ""
                } else {
                    "; start `orca run` to run it"
                }
            );
            0
        }
        Err(crate::store::StoreError::NotFound(_)) => {
            eprintln!("error: no task '{id}' in the store\nhint: `orca list` shows the task ids");
            1
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn read_submit_source(file: &str) -> Result<(PathBuf, Vec<u8>), String> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(crate::task::MAX_TASK_FILE_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok((PathBuf::from("<stdin>.task.md"), buf))
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
        Ok((p, bytes))
    }
}

/// `orca submit`: writes a task file into tasks/ atomically and prints its id.
pub fn submit(root: &Path, flags: &[(String, String)], args: &super::SubmitArgs) -> i32 {
    let ctx = match open(root, flags) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut task = match &args.file {
        Some(file) => {
            let (path, bytes) = match read_submit_source(&file.to_string_lossy()) {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 1;
                }
            };
            match crate::task::parse_bytes(&path, &bytes) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 1;
                }
            }
        }
        None => {
            let Some(prompt) = args.prompt.clone().filter(|p| !p.trim().is_empty()) else {
                eprintln!("error: nothing to submit\nhint: give a task file, `-` for standard input, or a prompt with -p \"...\"");
                return 2;
            };
            Task {
                created: Some(crate::clock::now_rfc3339()),
                ..Task::new(format!("cli_{}", now_ms()), prompt)
            }
        }
    };
    if args.file.is_some() {
        if let Some(p) = &args.prompt {
            task.prompt = p.clone();
        }
    }
    if let Some(t) = args.task_type {
        task.task_type = Some(t);
    }
    if let Some(p) = args.priority {
        task.priority = p;
    }
    if let Some(d) = &args.dir {
        task.working_dir = Some(d.clone());
    }
    task.target_files.extend(args.targets.iter().cloned());
    task.success_criteria
        .extend(args.criteria.iter().map(|c| Criterion {
            text: c.clone(),
            checked: false,
        }));
    if let Some(id) = &args.id {
        task.id = id.clone();
    }
    task.extra.insert("x-orca-source".into(), json!("cli"));
    if let Err(e) = crate::task::paths::validate_id(&task.id) {
        eprintln!("error: {e}");
        return 2;
    }
    // Pick an id (and file name) that neither the store nor tasks/ has yet.
    let base = task.id.clone();
    let mut n = 1;
    loop {
        let taken_in_store = matches!(ctx.store.get(&task.id), Ok(Some(_)));
        let taken_as_file = ctx.ws.tasks().join(format!("{}.task.md", task.id)).exists();
        if !taken_in_store && !taken_as_file {
            break;
        }
        n += 1;
        let suffix = format!("-{n}");
        let keep = 64usize.saturating_sub(suffix.len()).min(base.len());
        task.id = format!("{}{}", &base[..keep], suffix);
    }
    let text = crate::task::render(&task);
    let final_path = ctx.ws.tasks().join(format!("{}.task.md", task.id));
    // Check the rendered file parses and its paths are allowed before it reaches tasks/.
    let check = crate::task::parse_bytes(&final_path, text.as_bytes()).and_then(|t| {
        crate::task::paths::resolve_task_paths(
            &t,
            &final_path,
            &ctx.cfg.claude_base_cwd,
            &ctx.cfg.claude_allowed_root,
        )
        .map(|_| t)
    });
    if let Err(e) = check {
        eprintln!("error: {e}");
        return 1;
    }
    if let Err(e) = write_new_atomically(&ctx.ws.tasks(), &final_path, text.as_bytes()) {
        eprintln!("error: cannot write {}: {e}", final_path.display());
        return 1;
    }
    println!("{}", task.id);
    0
}

/// Writes `bytes` to a hidden temporary file in `dir`, then links it to `dest` (never
/// replacing an existing file) and removes the temporary name.
pub fn write_new_atomically(dir: &Path, dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, dest);
    let _ = std::fs::remove_file(&tmp);
    linked
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
    as_json: bool,
) -> i32 {
    let (_cfg, ws) = match load(root, flags) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let file = ws.events_file();
    let (read, mut follower) = match crate::events::tail(&file, task, Some(lines)) {
        Ok(x) => x,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            crate::events::TailRead::default(),
            crate::events::follow(&file, task),
        ),
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return 1;
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
    let mut out = std::io::stdout().lock();
    for e in &read.events {
        if writeln!(out, "{}", show(e)).is_err() {
            return 0;
        }
    }
    let _ = out.flush();
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
                    if writeln!(out, "{}", show(&e))
                        .and_then(|_| out.flush())
                        .is_err()
                    {
                        return 0;
                    }
                }
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", file.display());
                    return 1;
                }
            }
        }
    }
    0
}

/// `orca clean tasks`.
pub fn clean_tasks(root: &Path, flags: &[(String, String)]) -> i32 {
    let (_cfg, ws) = match load(root, flags) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Some(pid) = crate::store::lock::holder(&ws) {
        eprintln!("error: a daemon (pid {pid}) is running and owns tasks/\nhint: stop it first (Ctrl-C or `kill {pid}`), then clean");
        return 1;
    }
    match crate::artifacts::clean::clean_tasks(&ws) {
        Ok(moved) => {
            for (from, to) in &moved {
                println!("{} -> {}", from.display(), to.display());
            }
            println!("archived {} loose task file(s)", moved.len());
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `orca clean artifacts --days N [--dry-run]`.
pub fn clean_artifacts(root: &Path, flags: &[(String, String)], days: u64, dry_run: bool) -> i32 {
    let (_cfg, ws) = match load(root, flags) {
        Ok(x) => x,
        Err(code) => return code,
    };
    match crate::artifacts::clean::clean_artifacts(&ws, days, dry_run) {
        Ok(files) => {
            for f in &files {
                println!(
                    "{}{}",
                    if dry_run { "would remove " } else { "removed " },
                    f.display()
                );
            }
            println!(
                "{} {} file(s) older than {days} day(s)",
                if dry_run { "would remove" } else { "removed" },
                files.len()
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `orca validate-artifacts [--json]`.
pub fn validate_artifacts(root: &Path, flags: &[(String, String)], as_json: bool) -> i32 {
    let (_cfg, ws) = match load(root, flags) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let reports = crate::artifacts::validate::validate_dir(&ws.results());
    let (text, code) = crate::artifacts::validate::render_report(&reports, as_json);
    print!("{text}");
    code
}
