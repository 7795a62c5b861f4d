#!/usr/bin/env bash
# CPU per Prometheus scrape: carbyne's prometheus handler beside
# node_exporter 1.5 (Debian's), both on this host, in the same run.
#
# carbyne collects on its schedule (every second here) and a scrape serves
# the cache, re-rendered when a run changed it: each scrape below comes
# just after a run, so every one is rendered afresh (the worst case). Its
# CPU per scrape is the CPU of a window with scrapes minus that of an equal
# window without, over the scrapes. node_exporter collects on each scrape:
# its CPU over the scrapes. CPU is the sum of every thread's time on CPU
# (/proc/PID/task/*/schedstat, nanoseconds). Prints a markdown table.
#
# Run: bash benches/scrape.sh            (needs root for apt-get, once)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v prometheus-node-exporter >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends prometheus-node-exporter >/dev/null
}
cargo build --release --locked -q
BIN=$PWD/target/release/carbyne
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$BIN" "$work" <<'PY'
import glob, os, socket, statistics, subprocess, sys, time, urllib.request

BIN, WORK = sys.argv[1], sys.argv[2]
WINDOW, REPS = 20, 3

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

def cpu_ns(pid):
    total = 0
    for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            total += int(open(f).read().split()[0])
        except (OSError, ValueError):
            pass
    return total

def scrape(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                 headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return len(r.read())

def wait(port):
    for _ in range(200):
        try:
            scrape(port)
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never answered")

cport, nport = free_port(), free_port()
with open(os.path.join(WORK, "carbyne.toml"), "w") as f:
    f.write(f'interval = 1\nstate_dir = "{WORK}/state"\n'
            f'[handlers.prometheus]\nlisten = "127.0.0.1:{cport}"\n')
carbyne = subprocess.Popen([BIN, "agent", "--config", os.path.join(WORK, "carbyne.toml")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
node = subprocess.Popen(["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{nport}"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    wait(cport); wait(nport)
    time.sleep(3)
    series = {}
    for name, port in (("carbyne", cport), ("node_exporter", nport)):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        series[name] = sum(1 for l in text.splitlines() if l and not l.startswith("#"))

    def carbyne_window(scrapes):
        # Starts just after a run (runs are on whole seconds).
        time.sleep(1.2 - time.time() % 1.0)
        c0, t0 = cpu_ns(carbyne.pid), time.time()
        n = 0
        while time.time() - t0 < WINDOW - 0.5:
            if scrapes:
                scrape(cport)
                n += 1
            time.sleep(1.0 - (time.time() - t0) % 1.0)
        return cpu_ns(carbyne.pid) - c0, n

    per_carbyne, per_node, idle = [], [], []
    for _ in range(REPS):
        quiet, _ = carbyne_window(False)
        busy, n = carbyne_window(True)
        idle.append(quiet / WINDOW / 1e6)
        per_carbyne.append((busy - quiet) / n / 1e6)
        c0 = cpu_ns(node.pid)
        for _ in range(WINDOW):
            scrape(nport)
            time.sleep(1.0)
        per_node.append((cpu_ns(node.pid) - c0) / WINDOW / 1e6)
finally:
    carbyne.terminate(); node.terminate()
    carbyne.wait(); node.wait()

med = statistics.median
print(f"| | carbyne | node_exporter 1.5 |")
print(f"|---|---|---|")
print(f"| series per scrape | {series['carbyne']} | {series['node_exporter']} |")
print(f"| CPU per scrape, ms (median of {REPS}) | {med(per_carbyne):.2f} | {med(per_node):.2f} |")
print(f"| each round, ms | {' / '.join(f'{v:.2f}' for v in per_carbyne)} | {' / '.join(f'{v:.2f}' for v in per_node)} |")
print(f"| ratio | {med(per_node) / max(med(per_carbyne), 1e-9):.1f}x less CPU | 1x |")
print(f"| carbyne's collection, ms CPU per second (1 s interval, no scrapes) | {med(idle):.2f} | |")
PY
