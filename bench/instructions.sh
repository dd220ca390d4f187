#!/usr/bin/env bash
# instructions.sh: the daemon's own instructions per task, counted by valgrind's callgrind
# (user space only). Unlike times, the count repeats to within about 0.5 % whatever else the
# machine is doing, so it tells two commits apart where the pipeline benchmark cannot.
#
#   bash bench/instructions.sh [ORCA_BIN_DIR]     # default: target/release (cargo build --release)
#
# It queues 200 and then 400 task files before start-up, runs `orca run` under callgrind until
# all are archived, and prints (Ir(400) - Ir(200)) / 200: the cost of one more task, without
# start-up. The agent is orca-fake-agent in noop mode (its instructions are not counted).
# Needs valgrind. Under valgrind an agent run lasts over 100 ms, so progress reaches the store
# as it would for a slow agent: compare commits with this script, not with the benchmark.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${1:-target/release}
command -v valgrind >/dev/null || { echo "error: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
for b in orca orca-fake-agent; do
    [ -x "$bin/$b" ] || { echo "error: $bin/$b is missing; run cargo build --release --bins" >&2; exit 1; }
done
bin=$(cd "$bin" && pwd)

count() { # count N -> total instructions of a daemon that takes N tasks
    local n=$1 dir out
    dir=$(mktemp -d)
    mkdir -p "$dir/ws/tasks"
    printf 'CLAUDE_BIN=%s\nORCA_LLM=off\nMAX_CONCURRENT_TASKS=8\n' "$bin/orca-fake-agent" >"$dir/ws/.env"
    for i in $(seq 1 "$n"); do
        printf -- '---\nid: c%05d\npriority: medium\n---\n\n# Count\n\n**Prompt:**\nNothing to do.\nfake-agent: noop\n' "$i" >"$dir/ws/tasks/c$i.task.md"
    done
    valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
        "$bin/orca" --root "$dir/ws" run >"$dir/daemon.out" 2>&1 &
    local pid=$! waited=0
    until [ "$(find "$dir/ws/tasks/processed" -name '*.task.md' 2>/dev/null | wc -l)" -ge "$n" ]; do
        sleep 0.2
        waited=$((waited + 1))
        if [ "$waited" -gt 3000 ]; then
            kill "$pid" 2>/dev/null || true
            echo "error: $n tasks not archived after 10 minutes; see $dir/daemon.out" >&2
            exit 1
        fi
    done
    kill -TERM "$pid"
    wait "$pid" || true
    out=$(grep -E '^(summary|totals):' "$dir/callgrind.out" | head -1 | awk '{print $2}')
    rm -rf "$dir"
    echo "$out"
}

a=$(count 200)
b=$(count 400)
echo "instructions: $a for 200 tasks, $b for 400; per task: $(((b - a) / 200))"
