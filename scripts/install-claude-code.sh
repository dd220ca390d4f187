#!/usr/bin/env bash
# install-claude-code.sh: installs the pinned Claude Code CLI into <repo>/.tools/claude-code/
# for the real-CLI test suite (tests/real_claude.rs). Idempotent; needs only the npm registry.
set -euo pipefail

VERSION="2.1.197"
PACKAGE="@anthropic-ai/claude-code"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${repo_root}/.tools/claude-code"
bin="${prefix}/node_modules/.bin/claude"

installed_version() {
    if [[ -x "${bin}" ]]; then
        "${bin}" --version 2>/dev/null | awk '{print $1}' || true
    fi
}

if [[ "$(installed_version)" == "${VERSION}" ]]; then
    echo "Claude Code ${VERSION} already installed." >&2
else
    if ! command -v npm >/dev/null 2>&1; then
        echo "error: npm not found; install Node.js/npm first, then rerun $0" >&2
        exit 1
    fi
    echo "Installing ${PACKAGE}@${VERSION} into ${prefix} (about 235 MB)..." >&2
    mkdir -p "${prefix}"
    npm install --prefix "${prefix}" --no-audit --no-fund --save-exact "${PACKAGE}@${VERSION}" >&2
    got="$(installed_version)"
    if [[ "${got}" != "${VERSION}" ]]; then
        echo "error: after install, '${bin} --version' reports '${got:-nothing}', expected ${VERSION}" >&2
        exit 1
    fi
fi

echo "${bin}"
