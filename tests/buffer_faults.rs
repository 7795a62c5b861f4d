//! The disk buffer under faults, with the built binary and real sockets:
//! a Graphite sink that goes down and comes back, one that resets its
//! connections mid-batch, the agent killed with SIGKILL at random moments
//! (seeded), and cron-style `agent --once` runs through an outage. Each
//! time, every sample the agent collected (what its stdout handler printed,
//! which comes after the disk buffer in the hand-over) reaches the sink at
//! least once.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A Graphite sink on a fixed port that can go down and come back, and
/// can reset each connection after reading some bytes of it. It keeps
/// whole lines only (a line cut by a reset is not received).
struct Sink {
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    running: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl Sink {
    fn new(port: u16) -> Sink {
        Sink {
            port,
            lines: Arc::default(),
            running: None,
        }
    }

    /// Listens; with `reset_after`, each connection is reset once it has
    /// read that many bytes.
    fn up(&mut self, reset_after: Option<usize>) {
        self.down();
        let listener = {
            let until = Instant::now() + Duration::from_secs(10);
            loop {
                match TcpListener::bind(("127.0.0.1", self.port)) {
                    Ok(l) => break l,
                    Err(e) if Instant::now() < until => {
                        let _ = e;
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    Err(e) => panic!("bind {}: {e}", self.port),
                }
            }
        };
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, lines) = (stop.clone(), self.lines.clone());
        let h = std::thread::spawn(move || {
            let mut conns: Vec<(std::net::TcpStream, Vec<u8>, usize)> = Vec::new();
            let mut buf = [0u8; 65536];
            while !flag.load(Ordering::SeqCst) {
                while let Ok((s, _)) = listener.accept() {
                    s.set_nonblocking(true).expect("nonblocking");
                    conns.push((s, Vec::new(), 0));
                }
                conns.retain_mut(|(s, pending, read)| loop {
                    let room = reset_after.map_or(buf.len(), |r| (r - *read).min(buf.len()));
                    if room == 0 {
                        // Reset: whatever the agent wrote after this is lost here.
                        let _ = rustix::net::sockopt::set_socket_linger(&*s, Some(Duration::ZERO));
                        return false;
                    }
                    match s.read(&mut buf[..room]) {
                        Ok(0) => return false,
                        Ok(n) => {
                            *read += n;
                            pending.extend_from_slice(&buf[..n]);
                            if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
                                let whole: Vec<u8> = pending.drain(..=end).collect();
                                let mut l = lines.lock().expect("lines");
                                l.extend(String::from_utf8_lossy(&whole).lines().map(String::from));
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                        Err(_) => return false,
                    }
                });
                std::thread::sleep(Duration::from_millis(5));
            }
            // Down: connections and listener closed as a crashed server's are.
            for (s, _, _) in &conns {
                let _ = rustix::net::sockopt::set_socket_linger(s, Some(Duration::ZERO));
            }
        });
        self.running = Some((stop, h));
    }

    fn down(&mut self) {
        if let Some((stop, h)) = self.running.take() {
            stop.store(true, Ordering::SeqCst);
            h.join().expect("sink thread");
        }
    }

    /// Every `(name, timestamp)` received, with how many times.
    fn received(&self) -> BTreeMap<(String, i64), usize> {
        let mut out = BTreeMap::new();
        for l in self.lines.lock().expect("lines").iter() {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 3, "a damaged line arrived: {l:?}");
            let ts: i64 = f[2].parse().expect("timestamp");
            *out.entry((f[0].to_string(), ts)).or_insert(0) += 1;
        }
        out
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.down();
    }
}

/// The `(name, timestamp)` pairs the agent printed on stdout.
fn witnessed(path: &Path) -> BTreeSet<(String, i64)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            // A line cut by a kill mid-write is not a whole sample.
            (f.len() == 3).then(|| Some((f[0].to_string(), f[2].parse().ok()?)))?
        })
        .collect()
}

/// Memory and loadavg every second from the fixture tree, to a Graphite
/// handler with a disk buffer and to stdout (the witness).
fn config(dir: &Path, port: u16, graphite: &str) -> std::path::PathBuf {
    config_dir(
        dir,
        "proc/t0",
        &format!(
            "interval = 1\nflush_timeout = 2\nself_metrics = false\n\
             [collectors.cpu]\nenabled = false\n[collectors.diskspace]\nenabled = false\n\
             [collectors.diskusage]\nenabled = false\n[collectors.mountstats]\nenabled = false\n\
             [collectors.sockstat]\nenabled = false\n[collectors.vmstat]\nenabled = false\n\
             [handlers.graphite]\nport = {port}\nmax_backoff = 0.3\nbatch = 20\n\
             buffer = \"disk\"\n{graphite}\
             [handlers.stdout]\nenabled = true\n"
        ),
    )
}

/// A folder, a config sending to a sink's port (down until `up`), and
/// the witness file for the agent's stdout.
struct Setup {
    dir: tempfile::TempDir,
    cfg: std::path::PathBuf,
    witness: std::path::PathBuf,
    sink: Sink,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = config(dir.path(), port, "");
    let witness = dir.path().join("witness.txt");
    Setup {
        cfg,
        witness,
        sink: Sink::new(port),
        dir,
    }
}

fn start(cfg: &Path, witness: &Path) -> Proc {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(witness)
        .expect("witness");
    Proc(
        bin()
            .args(["agent", "--config", cfg.to_str().expect("path")])
            .stdout(Stdio::from(out))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn agent"),
    )
}

fn kill(child: &mut Child) {
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}

/// Stops the agent with SIGTERM, bounded in time.
fn term(child: &mut Child) {
    signal(child, "-TERM");
    let until = Instant::now() + Duration::from_secs(15);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < until, "the agent did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the sink has every witnessed sample (or the time is up),
/// then checks and reports.
fn assert_all_received(sink: &Sink, witness: &Path, limit: Duration, what: &str) {
    let until = Instant::now() + limit;
    loop {
        let seen = witnessed(witness);
        let got = sink.received();
        let missing: Vec<_> = seen.iter().filter(|k| !got.contains_key(*k)).collect();
        if missing.is_empty() {
            let dups: usize = got.values().map(|n| n - 1).sum();
            eprintln!(
                "{what}: {} samples collected, all received; {} received twice or more ({dups} extra copies)",
                seen.len(),
                got.values().filter(|n| **n > 1).count()
            );
            return;
        }
        assert!(
            Instant::now() < until,
            "{what}: {} of {} collected samples never reached the sink, first: {:?}",
            missing.len(),
            seen.len(),
            &missing[..missing.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_sink_down_for_a_while_then_up_gets_everything() {
    let Setup {
        dir: _dir,
        cfg,
        witness,
        mut sink,
    } = setup();
    sink.up(None);
    let mut agent = start(&cfg, &witness);
    std::thread::sleep(Duration::from_secs(2));
    sink.down();
    std::thread::sleep(Duration::from_secs(4));
    sink.up(None);
    std::thread::sleep(Duration::from_secs(3));
    term(&mut agent);
    let ticks: BTreeSet<i64> = witnessed(&witness).iter().map(|(_, t)| *t).collect();
    assert!(ticks.len() >= 7, "{ticks:?}");
    assert_all_received(&sink, &witness, Duration::from_secs(5), "down and up");
}

#[test]
fn a_sink_resetting_connections_mid_batch_loses_nothing() {
    let Setup {
        dir: _dir,
        cfg,
        witness,
        mut sink,
    } = setup();
    // Each connection is reset after 700 bytes: inside the first or
    // second batch of 20 lines.
    sink.up(Some(700));
    let mut agent = start(&cfg, &witness);
    std::thread::sleep(Duration::from_secs(6));
    sink.up(None);
    std::thread::sleep(Duration::from_secs(3));
    term(&mut agent);
    assert_all_received(&sink, &witness, Duration::from_secs(5), "resets");
}

#[test]
fn the_agent_killed_at_random_moments_twenty_times_loses_nothing() {
    let Setup {
        dir: _dir,
        cfg,
        witness,
        mut sink,
    } = setup();
    let seed = 0x5eed_cafe_u64;
    let mut rng = Rng(seed);
    eprintln!("seed {seed:#x}");
    for round in 0..20 {
        // The sink is down in about half the rounds: the kill comes during
        // an outage, with records in the buffer, or while they are sent.
        if rng.below(2) == 0 {
            sink.up(None);
        } else {
            sink.down();
        }
        let mut agent = start(&cfg, &witness);
        let wait = 300 + rng.below(2200);
        std::thread::sleep(Duration::from_millis(wait));
        kill(&mut agent);
        eprintln!("round {round}: killed after {wait} ms");
    }
    sink.up(None);
    let mut agent = start(&cfg, &witness);
    std::thread::sleep(Duration::from_secs(3));
    term(&mut agent);
    assert_all_received(&sink, &witness, Duration::from_secs(10), "20 kills");
    let st = run(&["buffer", "status", "--config", cfg.to_str().expect("path")]);
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(st.status.success(), "{text}");
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0")),
        "the buffer is empty at the end: {text}"
    );
}

#[test]
fn cron_runs_through_an_outage_deliver_everything_oldest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = config(dir.path(), port, "");
    let path = cfg.to_str().expect("path");
    let witness = dir.path().join("witness.txt");
    let mut sink = Sink::new(port);
    let once = |witness: &Path| {
        let out = run(&["agent", "--once", "--config", path]);
        let mut w = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(witness)
            .expect("witness");
        std::io::Write::write_all(&mut w, &out.stdout).expect("witness");
        out
    };
    // Four runs while Graphite is down: each keeps what it could not send.
    let mut first = None;
    for _ in 0..4 {
        let out = once(&witness);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "buffered, not failed: {err}");
        assert!(err.contains("kept in the disk buffer"), "{err}");
        first.get_or_insert(witnessed(&witness).iter().map(|(_, t)| *t).min());
        std::thread::sleep(Duration::from_millis(1100));
    }
    let st = run(&["buffer", "status", "graphite", "--config", path]);
    let text = String::from_utf8_lossy(&st.stdout);
    let row: Vec<&str> = text
        .lines()
        .nth(1)
        .expect("a row")
        .split_whitespace()
        .collect();
    assert_eq!(row[0], "graphite", "{text}");
    assert_eq!(
        row[1].parse::<usize>().expect("records"),
        witnessed(&witness).len(),
        "every sample of the four runs waits: {text}"
    );
    let oldest = first.flatten().expect("a first run");
    let shown = chrono_like(oldest);
    assert_eq!(row[3], shown, "{text}");
    // Graphite is back: the next run sends the buffer first, then its own.
    sink.up(None);
    let out = once(&witness);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_all_received(&sink, &witness, Duration::from_secs(5), "cron");
    let order: Vec<i64> = sink
        .lines
        .lock()
        .expect("lines")
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {order:?}"
    );
    // A drain with nothing left says so and succeeds.
    let out = run(&["buffer", "drain", "--config", path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `2026-12-02T10:00:00Z` for a Unix time, as `buffer status` shows it.
fn chrono_like(ts: i64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{ts}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn each_destination_keeps_its_own_buffer_and_a_drain_delivers_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (free_port(), free_port());
    let cfg = config(
        dir.path(),
        a,
        &format!("destinations = [\"127.0.0.1:{a}:a\", \"127.0.0.1:{b}:b\"]\n"),
    );
    let path = cfg.to_str().expect("path");
    let witness = dir.path().join("witness.txt");
    let (mut sa, mut sb) = (Sink::new(a), Sink::new(b));
    sa.up(None);
    // b is down for the whole run of the agent.
    let mut agent = start(&cfg, &witness);
    std::thread::sleep(Duration::from_secs(3));
    // While the agent holds the buffers, a drain refuses at once.
    let out = run(&["buffer", "drain", "graphite", "--config", path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("in use by another carbyne process"), "{err}");
    term(&mut agent);
    let st = run(&["buffer", "status", "--config", path]);
    let text = String::from_utf8_lossy(&st.stdout);
    let waiting: BTreeMap<&str, u64> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.first().copied()?, f.get(1)?.parse().ok()?))
        })
        .collect();
    assert_eq!(waiting.get("graphite"), Some(&0), "{text}");
    assert!(
        waiting
            .get(format!("graphite[127.0.0.1_{b}_b]").as_str())
            .is_some_and(|n| *n > 0),
        "b's share waits in its own buffer: {text}"
    );
    assert_eq!(
        waiting.get(format!("graphite[127.0.0.1_{a}_a]").as_str()),
        Some(&0),
        "{text}"
    );
    sb.up(None);
    let out = run(&["buffer", "drain", "graphite", "--config", path]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all = sa.received();
    all.extend(sb.received());
    let seen = witnessed(&witness);
    let missing: Vec<_> = seen.iter().filter(|k| !all.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

/// A carbon relay (`store = false`) with disk buffers in front of a
/// destination that is down: points sent to it survive a SIGKILL and a
/// restart, and reach the destination (a carbyne carbon receiver, over
/// carbon's pickle protocol) once it is up; `buffer status` shows them
/// meanwhile.
#[test]
fn relay_destinations_keep_points_on_disk_through_a_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (relay_port, dest_line, dest_pickle) = (free_port(), free_port(), free_port());
    let relay_cfg = dir.path().join("relay.toml");
    std::fs::write(
        &relay_cfg,
        format!(
            "state_dir = {:?}\n[server.carbon]\nlisten = \"127.0.0.1:{relay_port}\"\npickle_listen = \"\"\n\
             cache_query_listen = \"\"\nstore = false\ncarbon_metric_interval = 0\n\
             [server.carbon.relay]\ndestinations = [\"127.0.0.1:{dest_pickle}:a\"]\nbuffer = \"disk\"\n",
            dir.path().join("relay-state")
        ),
    )
    .expect("relay config");
    let storage = dir.path().join("whisper");
    let dest_cfg = dir.path().join("dest.toml");
    std::fs::write(
        &dest_cfg,
        format!(
            "state_dir = {:?}\n[server.carbon]\nlisten = \"127.0.0.1:{dest_line}\"\n\
             pickle_listen = \"127.0.0.1:{dest_pickle}\"\ncache_query_listen = \"\"\n\
             carbon_metric_interval = 0\nstorage_dir = {:?}\n",
            dir.path().join("dest-state"),
            storage
        ),
    )
    .expect("dest config");
    let base = now() / 60 * 60 - 3_600;
    let points: Vec<(String, i64, f64)> = (0..400)
        .map(|i| (format!("relayed.m{i}"), base + (i % 30) * 60, i as f64))
        .collect();
    let lines: Vec<String> = points
        .iter()
        .map(|(n, t, v)| format!("{n} {v} {t}"))
        .collect();
    // The destination is down: the first half goes to the relay, which is
    // then killed; the second half to a relay started again, stopped.
    let mut relay = server(&relay_cfg, relay_port);
    send(relay_port, &lines[..200]);
    std::thread::sleep(Duration::from_millis(800));
    kill(&mut relay);
    let mut relay = server(&relay_cfg, relay_port);
    send(relay_port, &lines[200..]);
    std::thread::sleep(Duration::from_millis(800));
    term(&mut relay);
    let path = relay_cfg.to_str().expect("path");
    let st = run(&["buffer", "status", "relay", "--config", path]);
    let text = String::from_utf8_lossy(&st.stdout);
    let row: Vec<&str> = text
        .lines()
        .nth(1)
        .expect("a row")
        .split_whitespace()
        .collect();
    assert_eq!(
        row[0],
        format!("relay[127.0.0.1:{dest_pickle}:a]"),
        "{text}"
    );
    assert_eq!(row[1], "400", "{text}");
    // The destination comes up; the relay, started again, sends it all.
    let mut dest = server(&dest_cfg, dest_line);
    let mut relay = server(&relay_cfg, relay_port);
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let st = run(&["buffer", "status", "relay", "--config", path]);
        let text = String::from_utf8_lossy(&st.stdout).to_string();
        if text
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
        {
            break;
        }
        assert!(
            Instant::now() < until,
            "the relay's buffer never emptied: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    term(&mut relay);
    term(&mut dest);
    assert_points_written(
        &storage,
        points.iter().map(|(n, t, v)| (n.as_str(), *t, *v)),
    );
}

/// The disk buffer on a file system that is full: what it cannot write
/// waits in memory and is still delivered to a sink that is up; an
/// `agent --once` that can neither write nor deliver fails (exit 1, the
/// samples named) instead of claiming they were kept; once there is room
/// again, the buffer takes writes again.
#[test]
fn a_full_disk_under_the_buffer_loses_nothing_a_live_sink_could_take() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Tmpfs::mount(&dir.path().join("small"), "64k");
    let filler = dir.path().join("small/filler");
    // Fill it, leaving less than one segment header free.
    let mut f = std::fs::File::create(&filler).expect("filler");
    let _ = std::io::Write::write_all(&mut f, &vec![0u8; 64 << 10]);
    drop(f);
    let port = free_port();
    let buffer_dir = dir.path().join("small/buf");
    let cfg = config(
        dir.path(),
        port,
        &format!("buffer_dir = {:?}\n", buffer_dir.display().to_string()),
    );
    let path = cfg.to_str().expect("path");
    let witness = dir.path().join("witness.txt");
    let mut sink = Sink::new(port);
    sink.up(None);
    let mut agent = start(&cfg, &witness);
    std::thread::sleep(Duration::from_secs(4));
    term(&mut agent);
    let ticks: BTreeSet<i64> = witnessed(&witness).iter().map(|(_, t)| *t).collect();
    assert!(ticks.len() >= 3, "{ticks:?}");
    assert_all_received(
        &sink,
        &witness,
        Duration::from_secs(5),
        "full disk, sink up",
    );
    // Neither disk nor sink: --once says the samples are lost.
    sink.down();
    let out = run(&["agent", "--once", "--config", path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not delivered"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    // Room again: the next run keeps what it cannot send.
    std::fs::remove_file(&filler).expect("free the space");
    let out = run(&["agent", "--once", "--config", path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("kept in the disk buffer"), "{err}");
    drop(fs);
}

/// A destination taken out of `destinations` while its buffer holds
/// samples: they go where the ring now places them (the remaining
/// destination), and its buffer goes.
#[test]
fn a_removed_destination_hands_its_buffer_to_the_ring() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (free_port(), free_port());
    let both = format!("destinations = [\"127.0.0.1:{a}:a\", \"127.0.0.1:{b}:b\"]\n");
    let cfg = config(dir.path(), a, &both);
    let path = cfg.to_str().expect("path");
    let witness = dir.path().join("witness.txt");
    let mut sa = Sink::new(a);
    sa.up(None);
    // b is down: its share waits in its buffer.
    let mut agent = start(&cfg, &witness);
    std::thread::sleep(Duration::from_secs(3));
    term(&mut agent);
    let b_dir = dir
        .path()
        .join(format!("state/buffers/graphite/127.0.0.1_{b}_b"));
    assert!(
        carbyne::buffer::status(&b_dir).expect("status").records > 0,
        "b's share is buffered"
    );
    // b leaves the list: the next run sends its share to a.
    let cfg = config(
        dir.path(),
        a,
        &format!("destinations = [\"127.0.0.1:{a}:a\"]\n"),
    );
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut w = std::fs::OpenOptions::new()
        .append(true)
        .open(&witness)
        .expect("witness");
    std::io::Write::write_all(&mut w, &out.stdout).expect("witness");
    assert_all_received(&sa, &witness, Duration::from_secs(5), "removed destination");
    assert!(!b_dir.exists(), "b's buffer is gone");
    let st = run(&["buffer", "status", "--config", path]);
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(!text.contains(&format!("_{b}_b")), "{text}");
}
