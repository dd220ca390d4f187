#!/usr/bin/env bash
# test.sh: the whole test suite, as the README gives it: installs the pinned Claude Code CLI
# that the real-CLI tests drive (into .tools/, once), then runs every test target.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-claude-code.sh >/dev/null
cargo test --all-targets "$@"
