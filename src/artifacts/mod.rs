//! Artifacts of a finished task: the result JSON (types, schema, validation with the
//! `jsonschema` crate, atomic private writes), the summary file's format, and archive moves.

pub mod archive;
pub mod clean;
pub mod error;
pub mod link;
pub mod result;
pub mod summary;
pub mod validate;
pub mod write;

#[cfg(test)]
mod agreement_tests;

pub use archive::{archive, free_stem, unique_stem_free, ArchiveDest};
pub use clean::{clean_artifacts, clean_tasks, clean_tasks_where};
pub use error::ArtifactError;
pub use summary::render_summary;
pub use validate::{
    render_report, validate_dir, validate_file, validate_value, FileInvalid, Violation,
};
pub use write::{write_atomic, write_result, write_summary};
