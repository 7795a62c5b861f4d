#!/usr/bin/env bash
# The agent as a daemon and from cron, beside collectd in the same run: CPU
# per collection cycle, RSS, and the wall time of one `--once` run. collectd
# runs the same kinds of plugins as carbyne's default collectors: cpu, df,
# disk, load, memory, vmem, and interface, protocols, processes,
# contextswitch, entropy, uptime, fhcount for network, tcp/udp, proc,
# entropy, uptime, filestat. Prints a markdown table for BENCHMARKS.md.
#
# Run: bash benches/agent.sh            (needs root for apt-get, once)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v collectd >/dev/null 2>&1 || [ -x /usr/sbin/collectd ] || need+=(collectd-core)
command -v hyperfine >/dev/null 2>&1 || need+=(hyperfine)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --locked -q
# As the .deb is built: the agent's cycle functions laid out together.
bash packaging/order-functions.sh --relink release
BIN=$PWD/target/release/carbyne
COLLECTD=$(command -v collectd || echo /usr/sbin/collectd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$BIN" "$COLLECTD" "$work" <<'PY'
import os, signal, socket, statistics, subprocess, sys, threading, time, json

BIN, COLLECTD, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
SHORT, LONG, REPS = 5, 25, 3

def sink():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    def serve():
        while True:
            c, _ = srv.accept()
            threading.Thread(target=lambda c=c: [None for _ in iter(lambda: c.recv(65536), b"")], daemon=True).start()
    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1]

port = sink()

carbyne_dir = os.path.join(WORK, "carbyne")
os.makedirs(carbyne_dir)
with open(os.path.join(carbyne_dir, "carbyne.toml"), "w") as f:
    f.write(f'interval = 1\nstate_dir = "{WORK}/state"\n[handlers.graphite]\nport = {port}\n')
collectd_conf = os.path.join(WORK, "collectd.conf")
with open(collectd_conf, "w") as f:
    f.write(f"""Interval 1
FQDNLookup false
BaseDir "{WORK}"
PIDFile "{WORK}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin cpu
LoadPlugin df
LoadPlugin disk
LoadPlugin load
LoadPlugin memory
LoadPlugin vmem
LoadPlugin interface
LoadPlugin protocols
LoadPlugin processes
LoadPlugin contextswitch
LoadPlugin entropy
LoadPlugin uptime
LoadPlugin fhcount
LoadPlugin write_graphite
<Plugin write_graphite>
  <Node "sink">
    Host "127.0.0.1"
    Port "{port}"
    Protocol "tcp"
  </Node>
</Plugin>
""")

daemons = {
    "carbyne": [BIN, "agent", "--config", carbyne_dir],
    "collectd": [COLLECTD, "-f", "-C", collectd_conf],
}

def run_for(cmd, secs):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(secs)
    rss = hwm = 0
    with open(f"/proc/{p.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"): rss = int(line.split()[1])
            if line.startswith("VmHWM:"): hwm = int(line.split()[1])
    p.send_signal(signal.SIGTERM)
    _, _, ru = os.wait4(p.pid, 0)
    return ru.ru_utime + ru.ru_stime, rss, hwm

results = {}
for name, cmd in daemons.items():
    per_cycle, rss, hwm = [], [], []
    for _ in range(REPS):
        a, _, _ = run_for(cmd, SHORT)
        b, r, h = run_for(cmd, LONG)
        per_cycle.append((b - a) / (LONG - SHORT) * 1000.0)
        rss.append(r); hwm.append(h)
    results[name] = dict(cpu_ms=statistics.median(per_cycle), rss=statistics.median(rss), hwm=statistics.median(hwm), all=per_cycle)

def hyperfine(cmd, name):
    out = os.path.join(WORK, name + ".json")
    subprocess.run(["hyperfine", "-N", "--warmup", "3", "--runs", "40", "--export-json", out, cmd],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        return statistics.median(json.load(f)["results"][0]["times"]) * 1000.0

once = hyperfine(f"{BIN} agent --once --dry-run --config {carbyne_dir}", "once")
collectd_once = hyperfine(f"{COLLECTD} -T -C {collectd_conf}", "collectd_once")

c, d = results["carbyne"], results["collectd"]
print(f"| measure | carbyne | collectd | ratio (collectd / carbyne) |")
print(f"|---|---|---|---|")
print(f"| CPU per 1 s collection cycle (median of {REPS}, ms) | {c['cpu_ms']:.3f} | {d['cpu_ms']:.3f} | {d['cpu_ms']/c['cpu_ms']:.1f}x |")
print(f"| daemon RSS after {LONG} s (MiB) | {c['rss']/1024:.1f} | {d['rss']/1024:.1f} | {d['rss']/c['rss']:.2f}x |")
print(f"| daemon peak RSS (MiB) | {c['hwm']/1024:.1f} | {d['hwm']/1024:.1f} | {d['hwm']/c['hwm']:.2f}x |")
print(f"| one-shot run, wall (median of 40, ms): `agent --once --dry-run` / `collectd -T` | {once:.2f} | {collectd_once:.2f} | {collectd_once/once:.1f}x |")
print()
print("per-rep CPU ms per cycle:", {k: [round(x, 3) for x in v['all']] for k, v in results.items()})
PY
