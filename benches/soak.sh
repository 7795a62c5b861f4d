#!/usr/bin/env bash
# Soak: the agent, the statsd server and the carbon receiver under steady
# load for SOAK_SECONDS (600 by default), with the agent's Graphite down for
# the middle fifth. Checks that nothing is lost (every agent run's samples
# reach Graphite once it is back; every statsd count and every plaintext
# point sent reaches the whisper files), samples both processes' RSS every
# 5 s, compares the receiver's CPU per point before and after the outage,
# and draws the RSS with carbyne's own /render into docs/soak-rss.png.
# Not in CI (it runs for minutes); its figures go to BENCHMARKS.md.
#
# Run: bash benches/soak.sh        (SOAK_SECONDS=180 for a short one)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
BIN=$PWD/target/release/carbyne
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p docs

python3 - "$BIN" "$work" "${SOAK_SECONDS:-600}" <<'PY'
import json, os, signal, socket, subprocess, sys, threading, time, urllib.parse, urllib.request

BIN, WORK, SECONDS = sys.argv[1], sys.argv[2], int(sys.argv[3])
STATSD_PER_S, CARBON_PER_S, NAMES = 20_000, 5_000, 1_000

def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

def wait_port(p, limit=30):
    end = time.time() + limit
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", p), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"port {p} never opened")

# The agent's Graphite: a sink that records (name, timestamp), and can be
# taken down (listener closed, connections dropped) and brought back.
class Sink:
    def __init__(self, port):
        self.port, self.seen, self.lock = port, set(), threading.Lock()
        self.srv, self.conns = None, []
    def up(self):
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", self.port))
        self.srv.listen(16)
        threading.Thread(target=self.accept, args=(self.srv,), daemon=True).start()
    def down(self):
        self.srv.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self.conns = []
    def accept(self, srv):
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.read, args=(c,), daemon=True).start()
    def read(self, c):
        buf = b""
        while True:
            try:
                d = c.recv(1 << 16)
            except OSError:
                return
            if not d:
                return
            buf += d
            *lines, buf = buf.split(b"\n")
            with self.lock:
                for l in lines:
                    f = l.split(b" ")
                    if len(f) == 3:
                        self.seen.add((f[0], int(f[2])))

sink = Sink(free_port())
sink.up()
carbon, web, statsd, admin = free_port(), free_port(), free_port(), free_port()
store = os.path.join(WORK, "whisper")
# One point a second kept: statsd flushes every second, plaintext comes each second.
open(os.path.join(WORK, "schemas.conf"), "w").write("[all]\npattern = .*\nretentions = 1s:2h\n")
open(os.path.join(WORK, "server.toml"), "w").write(f"""
[server.carbon]
listen = "127.0.0.1:{carbon}"
pickle_listen = ""
cache_query_listen = ""
udp = false
storage_dir = "{store}"
create = "sparse"
schemas = "{WORK}/schemas.conf"
[server.statsd]
listen = "127.0.0.1:{statsd}"
admin = "127.0.0.1:{admin}"
graphite = "127.0.0.1:{carbon}"
flush_interval = 1
[server.web]
listen = "127.0.0.1:{web}"
storage_dir = "{store}"
""")
open(os.path.join(WORK, "agent.toml"), "w").write(f"""
hostname = "soak"
interval = 1
state_dir = "{WORK}/state"
[handlers.graphite]
port = {sink.port}
buffer = "disk"
""")
env = dict(os.environ, RUST_LOG="warn")
server = subprocess.Popen([BIN, "server", "--config", os.path.join(WORK, "server.toml")], env=env)
wait_port(carbon); wait_port(web); wait_port(admin)
agent = subprocess.Popen([BIN, "agent", "--config", os.path.join(WORK, "agent.toml")], env=env)

def stat(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    rss = int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1])
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK"), rss / 1024

# Load: statsd counters over UDP, plaintext points over TCP, each paced
# per second; what was sent is counted.
sent = {"statsd": 0, "carbon": {}}
stop = threading.Event()
def statsd_load():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    line = b"soak.c:1|c\n" * 100
    while not stop.is_set():
        t = time.time()
        for _ in range(STATSD_PER_S // 100):
            s.sendto(line[:-1], ("127.0.0.1", statsd))
            sent["statsd"] += 100
        time.sleep(max(0, 1 - (time.time() - t)))
def carbon_load():
    c = socket.create_connection(("127.0.0.1", carbon))
    while not stop.is_set():
        t = time.time()
        ts = int(t)
        for i in range(CARBON_PER_S):
            n = i % NAMES
            sent["carbon"][(n, ts)] = sent["carbon"].get((n, ts), 0) + 1
        c.sendall("".join(f"soak.p.m{i % NAMES} {i // NAMES + 1} {ts}\n" for i in range(CARBON_PER_S)).encode())
        time.sleep(max(0, 1 - (time.time() - t)))
    c.close()
for f in (statsd_load, carbon_load):
    threading.Thread(target=f, daemon=True).start()

start = time.time()
out_at, back_at = start + SECONDS * 0.4, start + SECONDS * 0.6
samples, windows, outage = [], {}, None
while time.time() - start < SECONDS:
    now = time.time()
    if outage is None and now >= out_at:
        sink.down(); outage = "down"
    elif outage == "down" and now >= back_at:
        sink.up(); outage = "back"
    s_cpu, s_rss = stat(server.pid)
    a_cpu, a_rss = stat(agent.pid)
    samples.append((int(now), s_rss, a_rss))
    phase = "before" if now < out_at else ("after" if now >= back_at else "during")
    w = windows.setdefault(phase, [now, s_cpu, sent["statsd"] + CARBON_PER_S * (now - start), None])
    w[3] = (now, s_cpu, sent["statsd"] + CARBON_PER_S * (now - start))
    time.sleep(5)
stop.set()
time.sleep(3)
agent.send_signal(signal.SIGTERM); agent.wait(60)
time.sleep(3)
server.send_signal(signal.SIGTERM); server.wait(120)

# The agent: every run (one a second) of its loadavg reached Graphite.
with sink.lock:
    ts = sorted(t for n, t in sink.seen if n == b"servers.soak.loadavg.01")
gaps = [(a, b) for a, b in zip(ts, ts[1:]) if b - a > 1]
# The receiver and statsd: read back through the files.
server = subprocess.Popen([BIN, "server", "--config", os.path.join(WORK, "server.toml")], env=env)
wait_port(web)
def render(targets, fmt="json", extra=""):
    q = "&".join("target=" + urllib.parse.quote(t) for t in targets)
    q += f"&from={int(start) - 60}&until={int(time.time()) + 60}&format={fmt}{extra}"
    return urllib.request.urlopen(f"http://127.0.0.1:{web}/render?{q}", timeout=60).read()
counted = sum(v or 0 for v, _ in json.loads(render(["stats_counts.soak.c"]))[0]["datapoints"])
seconds_sent = len({t for _, t in sent["carbon"]})
# Each plaintext second of two names at the ends of the range.
stored = min(
    sum(1 for v, _ in json.loads(render([f"soak.p.m{n}"]))[0]["datapoints"] if v is not None)
    for n in (0, NAMES - 1))
# RSS into the receiver, drawn by its own renderer.
c = socket.create_connection(("127.0.0.1", carbon))
c.sendall("".join(f"soak.rss.server {s} {t}\nsoak.rss.agent {a} {t}\n" for t, s, a in samples).encode())
c.close()
time.sleep(5)
png = render(["alias(soak.rss.server,'server RSS (MiB)')", "alias(soak.rss.agent,'agent RSS (MiB)')"], "png",
             "&width=800&height=300&title=soak%3A%20RSS%20over%20time&yMin=0&lineMode=connected")
open("docs/soak-rss.png", "wb").write(png)
server.send_signal(signal.SIGTERM); server.wait(60)

def per_point(w):
    (t0, c0, n0), (t1, c1, n1) = (w[0], w[1], w[2]), w[3]
    return (c1 - c0) / max(1, n1 - n0) * 1e6
rss = lambda col, a, b: [r[col] for r in samples if a <= r[0] < b]
print(f"| {SECONDS} s, outage {int(back_at - out_at)} s | agent runs at 1 s: {len(ts)}, gaps {len(gaps)} | "
      f"statsd counted {counted:.0f} of {sent['statsd']} | plaintext seconds stored {stored} of {seconds_sent} |")
for name, col in (("server", 1), ("agent", 2)):
    b, a = rss(col, start, out_at), rss(col, back_at, time.time())
    print(f"| {name} RSS MiB | before outage {min(b):.1f}-{max(b):.1f} | after {min(a):.1f}-{max(a):.1f} |")
print(f"| server CPU per point | before {per_point(windows['before']):.2f} µs | after {per_point(windows['after']):.2f} µs |")
ok = not gaps and abs(counted - sent["statsd"]) < 1 and stored >= seconds_sent - 1
print("soak: " + ("nothing lost" if ok else "LOST SOMETHING"))
sys.exit(0 if ok else 1)
PY
