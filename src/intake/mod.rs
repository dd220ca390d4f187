//! Intake: watching `tasks/` (inotify), the start-up scan, settling half-written files.
