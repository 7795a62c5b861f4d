//! Samples per second each handler sustains to a local receiver on
//! 127.0.0.1, and the handler's CPU per 10 000 samples (its thread's
//! on-CPU time from /proc/thread-self/schedstat; the receivers run on other
//! threads). The whole queue is handed over at once and the clock stops
//! when the handler reports it delivered everything.
//!
//! Run: `cargo bench --bench handlers`

mod common;

use carbyne::handlers::{self, HandlerConfig, HandlerSpec};
use carbyne::sample::{Kind, Sample};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn samples(n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| {
            Sample::new(
                format!("servers.web{:02}.cpu.cpu{}.user", i % 50, i % 64),
                (i % 1000) as f64 * 0.25,
                1_795_300_000 + (i / 1000) as i64,
                Kind::Gauge,
            )
        })
        .collect()
}

fn tcp_sink() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut c = c;
                let mut buf = vec![0u8; 1 << 16];
                while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

fn udp_sink() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = s.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while s.recv(&mut buf).is_ok() {}
    });
    port
}

/// A minimal HTTP/1.1 server answering 200 to every request.
fn http_sink() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(c.try_clone().expect("clone"));
                let mut w = c;
                loop {
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h.trim().is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A zeromq SUB subscribed to everything, on a thread of its own.
fn zmq_sink() -> u16 {
    use zeromq::{Socket, SocketRecv};
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async move {
            let mut s = zeromq::SubSocket::new();
            s.subscribe("").await.expect("subscribe");
            while s.connect(&format!("tcp://127.0.0.1:{port}")).await.is_err() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            while s.recv().await.is_ok() {}
        });
    });
    port
}

fn spec(table: &str) -> HandlerSpec {
    let t: toml::Table = toml::from_str(table).expect("handler table");
    let mut m = std::collections::BTreeMap::new();
    m.insert("bench".to_string(), t);
    HandlerConfig::resolve_all(&m, false)
        .expect("handler")
        .remove(0)
}

fn main() {
    let scale = if common::full() { 1 } else { 100 };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cases: Vec<(&str, usize, HandlerSpec)> = vec![
        (
            "graphite (TCP)",
            2_000_000,
            spec(&format!("type = \"graphite\"\nport = {}\nmax_queue = 3000000\n", tcp_sink())),
        ),
        (
            "graphite (TCP), disk buffer",
            2_000_000,
            spec(&format!(
                "type = \"graphite\"\nport = {}\nbuffer = \"disk\"\nmax_buffer_bytes = 1073741824\n",
                tcp_sink()
            )),
        ),
        (
            "statsd (UDP, 1432-byte datagrams)",
            2_000_000,
            spec(&format!("type = \"statsd\"\nport = {}\nmax_queue = 3000000\n", udp_sink())),
        ),
        (
            "syslog (RFC 5424, UDP)",
            500_000,
            spec(&format!(
                "type = \"syslog\"\ntransport = \"udp\"\naddress = \"127.0.0.1:{}\"\nmax_queue = 3000000\n",
                udp_sink()
            )),
        ),
        (
            "http (JSON, 1000 per POST)",
            500_000,
            spec(&format!(
                "type = \"http\"\nurl = \"http://127.0.0.1:{}/\"\nmax_queue = 3000000\n",
                http_sink()
            )),
        ),
        (
            "zeromq (one message per sample)",
            500_000,
            spec(&format!(
                "type = \"zeromq\"\nendpoint = \"tcp://127.0.0.1:{}\"\nsubscriber_wait = 5\nmax_queue = 3000000\n",
                zmq_sink()
            )),
        ),
    ];
    let state = tempfile::tempdir().expect("state dir");
    println!("| handler | samples | samples/s | CPU per 10 000 samples |");
    println!("|---|---|---|---|");
    for (name, n, spec) in cases {
        let n = n / scale;
        let batch = samples(n);
        let (secs, cpu) = rt.block_on(async {
            let running = handlers::spawn(&spec, "web01", state.path());
            // Let it connect (and the zeromq subscriber join) first.
            let warm = samples(10);
            running.queue.push(warm);
            while !running.queue.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Timed from the hand-over: a disk buffer's cost is in the push.
            let (t, c) = (Instant::now(), thread_cpu_ns());
            running.queue.push(batch);
            let r = running
                .stop(tokio::time::Instant::now() + Duration::from_secs(120))
                .await;
            assert!(r.is_ok(), "{name}: {r:?}");
            (t.elapsed().as_secs_f64(), thread_cpu_ns() - c)
        });
        println!(
            "| {name} | {n} | {:.0} | {:.2} ms |",
            n as f64 / secs,
            cpu as f64 / 1e6 / (n as f64 / 10_000.0)
        );
    }
}
