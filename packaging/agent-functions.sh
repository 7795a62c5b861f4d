#!/usr/bin/env bash
# Regenerates packaging/agent-functions.txt: the functions the agent daemon
# runs in its collection cycles (default collectors, a Graphite handler),
# found with valgrind's callgrind on the release binary (counts zeroed
# after start-up, then ten 1 s cycles). packaging/order-functions.sh lays
# these out together when the release binary is linked, so the cycle
# touches few of the 64 KiB windows the kernel maps code in (see
# BENCHMARKS.md). Names are demangled without crate hashes, so the list
# holds from one build to the next, but the standard library's keep a hash
# that changes with the Rust toolchain: rerun this after a toolchain update,
# or when build-deb.sh finds fewer than about nine in ten of them.
#
# Run: bash packaging/agent-functions.sh      (installs valgrind if missing)
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
}
cargo build --release --locked -q
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

# A sink for the Graphite handler on a free port.
python3 - "$work/port" <<'PY' &
import socket, sys, threading, time
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(16)
open(sys.argv[1], "w").write(str(srv.getsockname()[1]))
def drain(c):
    while c.recv(65536):
        pass
def serve():
    while True:
        c, _ = srv.accept()
        threading.Thread(target=drain, args=(c,), daemon=True).start()
threading.Thread(target=serve, daemon=True).start()
time.sleep(120)
PY
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { echo "agent-functions.sh: the sink did not start" >&2; exit 1; }
printf 'interval = 1\nstate_dir = "%s/state"\n[handlers.graphite]\nport = %s\n' \
    "$work" "$(cat "$work/port")" > "$work/carbyne.toml"

valgrind --tool=callgrind --demangle=no --dump-instr=no --compress-strings=no \
    --callgrind-out-file="$work/cycles.out" \
    target/release/carbyne agent --config "$work/carbyne.toml" 2>"$work/valgrind.log" &
agent=$!
sleep 15
callgrind_control --zero "$agent" >/dev/null
sleep 12
kill -TERM "$agent"
wait "$agent" || true

nm --defined-only target/release/carbyne | awk '{print $3}' | sort -u > "$work/symbols"
sed -n 's/^fn=//p' "$work/cycles.out" | sort -u | comm -12 - "$work/symbols" \
    | bash packaging/order-functions.sh --names | sort -u > "$work/list"
# The list in the repository is replaced only by a real one.
[ -s "$work/list" ] || { echo "agent-functions.sh: no function found; the list is left as it was" >&2; exit 1; }
mv "$work/list" packaging/agent-functions.txt
echo "$(wc -l < packaging/agent-functions.txt) functions written to packaging/agent-functions.txt" >&2
