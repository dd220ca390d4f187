//! The workspace folder layout of DESIGN §1: where tasks, results, summaries, logs and
//! Orca's own state live, and creating what is missing (private where it holds prompts,
//! agent output or state: folders 0700, files 0600, whatever the umask).

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of the folders that hold prompts, agent output and state (results, summaries, logs,
/// raw agent logs, the database): the user's alone, as ssh keeps `~/.ssh`.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of the files Orca writes there.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// The longest stem of a task file's artifacts, in bytes. File names are limited to 255
/// bytes, and the artifacts add up to 27 to the stem (`.<stem>_summary.txt.partial`, and a
/// `-10000` suffix when the stem is taken): a longer task file name would leave its result
/// unwritable.
pub const MAX_STEM_BYTES: usize = 200;

/// Every path Orca uses inside one workspace root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub root: PathBuf,
}

impl Workspace {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Workspace { root: root.into() }
    }
    pub fn tasks(&self) -> PathBuf {
        self.root.join("tasks")
    }
    pub fn processed(&self) -> PathBuf {
        self.root.join("tasks").join("processed")
    }
    pub fn rejected(&self) -> PathBuf {
        self.root.join("tasks").join("rejected")
    }
    pub fn results(&self) -> PathBuf {
        self.root.join("results")
    }
    pub fn summaries(&self) -> PathBuf {
        self.root.join("summaries")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn runs(&self) -> PathBuf {
        self.root.join("logs").join("runs")
    }
    pub fn events_file(&self) -> PathBuf {
        self.root.join("logs").join("events.ndjson")
    }
    pub fn log_file(&self) -> PathBuf {
        self.root.join("logs").join("orchestrator.log")
    }
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config").join("orca.toml")
    }
    pub fn env_file(&self) -> PathBuf {
        self.root.join(".env")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".orca")
    }
    pub fn db_file(&self) -> PathBuf {
        self.root.join(".orca").join("orca.db")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(".orca").join("orca.lock")
    }
    pub fn result_file(&self, stem: &str) -> PathBuf {
        self.results().join(format!("{stem}_result.json"))
    }
    pub fn summary_file(&self, stem: &str) -> PathBuf {
        self.summaries().join(format!("{stem}_summary.txt"))
    }
    pub fn run_log(&self, task_id: &str, attempt: u32) -> PathBuf {
        self.runs().join(format!("{task_id}.{attempt}.ndjson"))
    }

    /// The folders `orca run` needs; created when missing.
    pub fn folders(&self) -> Vec<PathBuf> {
        vec![
            self.tasks(),
            self.processed(),
            self.rejected(),
            self.results(),
            self.summaries(),
            self.logs(),
            self.runs(),
            self.state_dir(),
        ]
    }

    /// The folders whose contents are private ([`PRIVATE_DIR_MODE`]): results, summaries,
    /// logs, the agents' raw logs (whatever mode their files get) and `.orca/`.
    pub fn private_folders(&self) -> Vec<PathBuf> {
        vec![
            self.results(),
            self.summaries(),
            self.logs(),
            self.runs(),
            self.state_dir(),
        ]
    }

    /// Creates every missing folder of the layout; the private ones are made (or, made by an
    /// older version, narrowed to) [`PRIVATE_DIR_MODE`].
    pub fn create_all(&self) -> io::Result<()> {
        let private = self.private_folders();
        for dir in self.folders() {
            let made = if private.contains(&dir) {
                create_private_dir(&dir)
            } else {
                std::fs::create_dir_all(&dir)
            };
            made.map_err(|e| {
                io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        Ok(())
    }

    /// True for names that are task files: `*.task.md`, not hidden, not temporary.
    pub fn is_task_file_name(name: &str) -> bool {
        name.ends_with(".task.md") && !Self::is_ignored_name(name)
    }

    /// Hidden and temporary names (DESIGN §1) that intake never looks at.
    pub fn is_ignored_name(name: &str) -> bool {
        name.starts_with('.')
            || name.ends_with('~')
            || name.ends_with(".tmp")
            || name.ends_with(".swp")
            || name.ends_with(".part")
    }

    /// The stem of a task file: its name without `.task.md`, cut to [`MAX_STEM_BYTES`] (at a
    /// character boundary) so that the artifact names made from it fit in a file name.
    pub fn stem_of(path: &Path) -> String {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name
            .strip_suffix(".task.md")
            .map(str::to_owned)
            .unwrap_or(name);
        // A backslash is legal in a Linux file name but not in an artifact's (it is a path
        // separator elsewhere): written as %5C, as intake writes a non-UTF-8 byte.
        let mut stem = stem.replace('\\', "%5C");
        if stem.len() > MAX_STEM_BYTES {
            // Index 0 is always a boundary, so this ends.
            let mut cut = MAX_STEM_BYTES;
            while !stem.is_char_boundary(cut) {
                cut -= 1;
            }
            stem.truncate(cut);
        }
        stem
    }
}

/// Creates `dir` and its missing parents with [`PRIVATE_DIR_MODE`]; an existing `dir` whose
/// mode lets others in is narrowed to it (the umask only ever removes bits, so the mode
/// given at creation is the widest the folder gets).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        // Narrowing an older, wider folder is best effort: a folder that cannot be changed
        // (another owner, immutable) is still usable, and whatever needs to write there
        // reports its own error.
        if let Err(e) =
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_DIR_MODE))
        {
            tracing::warn!("cannot make {} private (mode 0700): {e}", dir.display());
        }
    }
    Ok(())
}

/// Options that create a file with [`PRIVATE_FILE_MODE`] (for writing; add what else is
/// needed: truncate, append, create_new).
pub fn private_file_options() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).mode(PRIVATE_FILE_MODE);
    o
}

/// Why [`in_folder`] failed: making the folder, or the operation itself.
#[derive(Debug)]
pub enum FolderError {
    Make(io::Error),
    Op(io::Error),
}

/// Runs `op`, which makes something in `dir`. Only when it fails for want of the folder
/// (missing, or a file where a folder should be) is `dir` made and `op` run once more: the
/// folder is looked at on that failure, not before every write. The folders made here hold
/// Orca's artifacts and logs, so they are made private ([`create_private_dir`]).
pub fn in_folder<T>(dir: &Path, mut op: impl FnMut() -> io::Result<T>) -> Result<T, FolderError> {
    match op() {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            create_private_dir(dir).map_err(FolderError::Make)?;
            op().map_err(FolderError::Op)
        }
        other => other.map_err(FolderError::Op),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// The test process runs with the usual umask (022): folders would be 0755 without an
    /// explicit mode.
    #[test]
    fn private_folders_are_0700_and_narrowed_when_older() {
        let d = tempfile::tempdir().unwrap();
        let ws = Workspace::new(d.path());
        std::fs::create_dir_all(ws.results()).unwrap();
        std::fs::set_permissions(ws.results(), std::fs::Permissions::from_mode(0o755)).unwrap();
        ws.create_all().unwrap();
        for dir in ws.private_folders() {
            assert_eq!(mode(&dir), PRIVATE_DIR_MODE, "{}", dir.display());
        }
        // Made on demand: private too.
        let later = d.path().join("later/deeper");
        in_folder(&later, || std::fs::write(later.join("f"), "x")).unwrap();
        assert_eq!(mode(&later), PRIVATE_DIR_MODE);
        let f = d.path().join("secret.txt");
        private_file_options().open(&f).unwrap();
        assert_eq!(mode(&f), PRIVATE_FILE_MODE);
    }

    #[test]
    fn names() {
        assert!(Workspace::is_task_file_name("a.task.md"));
        assert!(!Workspace::is_task_file_name(".a.task.md"));
        assert!(!Workspace::is_task_file_name("a.task.md~"));
        assert!(!Workspace::is_task_file_name("a.task.md.tmp"));
        assert!(!Workspace::is_task_file_name("a.md"));
        assert_eq!(Workspace::stem_of(Path::new("x/fix_db.task.md")), "fix_db");
    }

    #[test]
    fn a_backslash_in_a_file_name_is_escaped_in_the_stem() {
        assert_eq!(Workspace::stem_of(Path::new("tasks/a\\b.task.md")), "a%5Cb");
        assert_eq!(
            Workspace::stem_of(Path::new("tasks/plain.task.md")),
            "plain"
        );
    }

    #[test]
    fn long_stems_are_cut_to_fit_artifact_names_at_a_character_boundary() {
        let long = format!("{}.task.md", "a".repeat(245));
        assert_eq!(
            Workspace::stem_of(Path::new(&long)),
            "a".repeat(MAX_STEM_BYTES)
        );
        // 'é' is two bytes: 100 of them are 200 bytes, the 101st does not fit.
        let accents = format!("{}.task.md", "é".repeat(120));
        let stem = Workspace::stem_of(Path::new(&accents));
        assert_eq!(stem, "é".repeat(100));
        let name = format!(".{stem}-10000_summary.txt.partial");
        assert!(name.len() <= 255, "{}", name.len());
        let fits = format!("{}.task.md", "b".repeat(MAX_STEM_BYTES));
        assert_eq!(Workspace::stem_of(Path::new(&fits)).len(), MAX_STEM_BYTES);
    }
}
