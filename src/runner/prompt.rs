//! The prompt an agent gets (DESIGN §4): the task's prompt verbatim, then `Target Files:`,
//! `Success Criteria:` (as a checklist) and `Context:` blocks when present. No framing.

use crate::task::Task;

/// Builds the agent's prompt for `task`.
pub fn build_prompt(task: &Task) -> String {
    let mut out = task.prompt.trim_end().to_owned();
    let targets: Vec<&str> = task
        .target_files
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .collect();
    if !targets.is_empty() {
        out.push_str("\n\nTarget Files:");
        for t in targets {
            out.push_str("\n- ");
            out.push_str(t);
        }
    }
    let criteria: Vec<&str> = task
        .success_criteria
        .iter()
        .map(|c| c.text.trim())
        .filter(|t| !t.is_empty())
        .collect();
    if !criteria.is_empty() {
        out.push_str("\n\nSuccess Criteria:");
        for c in criteria {
            out.push_str("\n- [ ] ");
            out.push_str(c);
        }
    }
    if let Some(ctx) = task
        .context
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        out.push_str("\n\nContext:\n");
        out.push_str(ctx);
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Criterion;

    fn task(prompt: &str) -> Task {
        Task {
            title: Some("Fix the database connection timeout".into()),
            ..Task::new("t", prompt)
        }
    }

    #[test]
    fn prompt_only() {
        insta::assert_snapshot!(build_prompt(&task("Say hello.\n\n")));
    }

    #[test]
    fn all_blocks() {
        let mut t = task(
            "The pool times out under load; find out why and fix it.\n\nKeep `pool.py` API stable.",
        );
        t.target_files = vec!["src/db.py".into(), "src/pool.py".into()];
        t.success_criteria = vec![
            Criterion {
                text: "Pool no longer times out with 50 clients".into(),
                checked: false,
            },
            Criterion {
                text: "Tests pass".into(),
                checked: true,
            },
        ];
        t.context = Some("Started after the upgrade to PostgreSQL 16.\n".into());
        insta::assert_snapshot!(build_prompt(&t));
    }

    #[test]
    fn empty_blocks_are_left_out() {
        let mut t = task("Do it.");
        t.context = Some("  \n".into());
        t.target_files = vec![" ".into()];
        assert_eq!(build_prompt(&t), "Do it.\n");
    }
}
