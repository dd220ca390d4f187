//! The NDJSON event log of DESIGN §9 (`logs/events.ndjson`): one JSON object per line,
//! written with one write per line, rotated by size; and the reader behind `tail-events`.
