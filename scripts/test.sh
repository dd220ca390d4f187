#!/usr/bin/env bash
# test.sh: the whole test suite, as the README gives it: installs the pinned Claude Code CLI
# that the real-CLI tests drive and the local model server the real-model tests run Orca
# against (both into .tools/, once), then runs every test target. The model server's install
# (a long build, the first time) runs while cargo builds the tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-claude-code.sh >/dev/null
llm_log="$(mktemp)"
trap 'rm -f "${llm_log}"' EXIT
bash scripts/install-llm.sh >/dev/null 2>"${llm_log}" &
llm_pid=$!
if ! cargo test --all-targets --no-run "$@"; then
    wait "${llm_pid}" || true
    exit 1
fi
if ! wait "${llm_pid}"; then
    cat "${llm_log}" >&2
    echo "error: scripts/install-llm.sh failed (above); tests/llm_real.rs needs it" >&2
    exit 1
fi
cat "${llm_log}" >&2
cargo test --all-targets "$@"
