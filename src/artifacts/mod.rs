//! Artifacts of a finished task: the result JSON (types, schema, validation, atomic write),
//! the summary text, and archive moves of task files out of `tasks/`.

pub mod result;
