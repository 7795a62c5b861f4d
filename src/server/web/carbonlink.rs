//! graphite-web's carbonlink: asks carbon-cache daemons (or carbyne
//! receivers) for the points they hold but have not written yet, so that
//! carbyne can stand in front of an existing carbon-cache as graphite-web
//! does. A metric is asked of the instance carbon's ring places it on
//! (`CARBONLINK_HOSTS`, `host:port:instance`); an unreachable instance
//! costs at most the timeout, then is skipped for a while.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::server::carbon::pickle::{self, Pickler, Value};
use crate::server::carbon::ring::{Destination, Ring};

/// How long an instance that failed is left alone.
const RETRY_DELAY: Duration = Duration::from_secs(15);

/// The largest answer read (a metric's cached points).
const MAX_ANSWER: usize = 64 << 20;

struct Host {
    dest: Destination,
    idle: Mutex<Vec<TcpStream>>,
    failed_at: Mutex<Option<Instant>>,
}

pub struct CarbonLink {
    ring: Ring,
    hosts: Vec<Host>,
    timeout: Duration,
    log: crate::server::Throttle,
}

impl CarbonLink {
    pub fn new(hosts: &[String], timeout: Duration) -> Result<Self, String> {
        let dests = hosts
            .iter()
            .map(|h| Destination::parse(h))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CarbonLink {
            ring: Ring::new(dests.clone(), 1, true),
            hosts: dests
                .into_iter()
                .map(|dest| Host {
                    dest,
                    idle: Mutex::new(Vec::new()),
                    failed_at: Mutex::new(None),
                })
                .collect(),
            timeout,
            log: crate::server::Throttle::new(),
        })
    }

    /// The cached points of `metric` as `(timestamp, value)`; none when
    /// its instance cannot be asked.
    pub fn query(&self, metric: &str) -> Vec<(f64, f64)> {
        let Some(&i) = self.ring.place(metric).first() else {
            return Vec::new();
        };
        let host = &self.hosts[i];
        let recently_failed = host
            .failed_at
            .lock()
            .map(|f| f.is_some_and(|t| t.elapsed() < RETRY_DELAY))
            .unwrap_or(false);
        if recently_failed {
            return Vec::new();
        }
        match self.ask(host, metric) {
            Ok(points) => points,
            Err(e) => {
                if let Ok(mut f) = host.failed_at.lock() {
                    *f = Some(Instant::now());
                }
                if let Some(held) = self.log.ready() {
                    log::warn!(
                        "web: carbonlink {}:{}: {e}; its cached points are left out for {} s{}",
                        host.dest.server,
                        host.dest.port,
                        RETRY_DELAY.as_secs(),
                        crate::server::held_note(held)
                    );
                }
                Vec::new()
            }
        }
    }

    fn ask(&self, host: &Host, metric: &str) -> std::io::Result<Vec<(f64, f64)>> {
        let pooled = host.idle.lock().ok().and_then(|mut p| p.pop());
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                let addr = std::net::ToSocketAddrs::to_socket_addrs(&(
                    host.dest.server.as_str(),
                    host.dest.port,
                ))?
                .next()
                .ok_or_else(|| std::io::Error::other("no address"))?;
                let c = TcpStream::connect_timeout(&addr, self.timeout)?;
                c.set_read_timeout(Some(self.timeout))?;
                c.set_write_timeout(Some(self.timeout))?;
                c
            }
        };
        let mut p = Pickler::default();
        p.dict_start();
        p.string("type");
        p.string("cache-query");
        p.string("metric");
        p.string(metric);
        p.dict_end();
        let body = p.finish();
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        conn.write_all(&out)?;
        let mut head = [0u8; 4];
        conn.read_exact(&mut head)?;
        let len = u32::from_be_bytes(head) as usize;
        if len > MAX_ANSWER {
            return Err(std::io::Error::other(format!("an answer of {len} bytes")));
        }
        let mut answer = vec![0u8; len];
        conn.read_exact(&mut answer)?;
        let v = pickle::loads(&answer, pickle::budget(len))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if let Some(e) = v.get("error").and_then(Value::as_str) {
            return Err(std::io::Error::other(format!("it answered: {e}")));
        }
        let points = v.get("datapoints").map(Value::pairs).unwrap_or_default();
        if let Ok(mut idle) = host.idle.lock() {
            if idle.len() < 16 {
                idle.push(conn);
            }
        }
        Ok(points)
    }
}
