//! carbon's `ConsistentHashRing` (`carbon_ch`): where a carbon relay, or
//! carbyne, sends a metric among `host:port:instance` destinations. Each
//! destination `(server, instance)` gets 100 positions on a 16-bit ring,
//! from the first four hex digits of the md5 of Python's text of the tuple
//! and the replica number (`('10.0.0.1', 'a'):7`); a metric goes to the
//! first position at or after its own. Placements equal carbon 1.1.10's.

use md5::{Digest, Md5};

/// A destination as carbon parses `host:port[:instance]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    pub server: String,
    pub port: u16,
    pub instance: Option<String>,
}

impl Destination {
    /// `host:port` or `host:port:instance`.
    pub fn parse(s: &str) -> Result<Destination, String> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let (server, port, instance) = match parts[..] {
            [h, p] => (h, p, None),
            [h, p, i] => (h, p, Some(i.to_string())),
            _ => return Err(format!("{s:?}: expected host:port or host:port:instance")),
        };
        let port = port
            .parse()
            .map_err(|_| format!("{s:?}: {port:?} is not a port"))?;
        if server.is_empty() {
            return Err(format!("{s:?}: no host"));
        }
        Ok(Destination {
            server: server.to_string(),
            port,
            instance,
        })
    }

    /// Python's `str()` of the `(server, instance)` tuple.
    fn ring_key(&self) -> String {
        let instance = self.instance.as_deref().map_or("None".to_string(), py_repr);
        format!("({}, {instance})", py_repr(&self.server))
    }
}

/// Python's `repr()` of a str.
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// carbon's `carbon_ch` position: the first 16 bits of the md5.
fn position(key: &str) -> u32 {
    let d = Md5::digest(key.as_bytes());
    (u32::from(d[0]) << 8) | u32::from(d[1])
}

/// The ring over a list of destinations, in the order given (as carbon
/// adds them: order decides who moves on a position clash).
#[derive(Debug, Clone)]
pub struct Ring {
    /// (position, index into `nodes`), sorted.
    ring: Vec<(u32, usize)>,
    nodes: Vec<Destination>,
    replication_factor: usize,
    diverse_replicas: bool,
}

impl Ring {
    pub fn new(destinations: Vec<Destination>, replication_factor: usize, diverse: bool) -> Ring {
        let mut ring: Vec<(u32, usize)> = Vec::new();
        let mut taken = std::collections::HashSet::new();
        for (i, d) in destinations.iter().enumerate() {
            let key = d.ring_key();
            for r in 0..100 {
                let mut p = position(&format!("{key}:{r}"));
                while taken.contains(&p) {
                    p += 1;
                }
                taken.insert(p);
                ring.push((p, i));
            }
        }
        ring.sort_unstable();
        Ring {
            ring,
            nodes: destinations,
            replication_factor: replication_factor.max(1),
            diverse_replicas: diverse,
        }
    }

    /// carbon's `get_nodes`: distinct destinations from the metric's place on.
    fn nodes(&self, metric: &str) -> Vec<usize> {
        let n = self.ring.len();
        if n == 0 {
            return Vec::new();
        }
        if self.nodes.len() == 1 {
            return vec![0];
        }
        let p = position(metric);
        let mut index = self.ring.partition_point(|(q, _)| *q < p) % n;
        let last = (index + n - 1) % n;
        let mut out: Vec<usize> = Vec::new();
        // As carbon: the entry just before the start is never visited.
        while out.len() < self.nodes.len() && index != last {
            let node = self.ring[index].1;
            if !out.contains(&node) {
                out.push(node);
            }
            index = (index + 1) % n;
        }
        out
    }

    /// Where `metric` goes: `replication_factor` destinations, on distinct
    /// servers when `diverse_replicas` (carbon's defaults: 1, true).
    pub fn destinations(&self, metric: &str) -> Vec<&Destination> {
        self.place(metric)
            .into_iter()
            .map(|i| &self.nodes[i])
            .collect()
    }

    /// Where `metric` goes, as indices into the destinations the ring was
    /// made from.
    pub fn place(&self, metric: &str) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for i in self.nodes(metric) {
            let server = &self.nodes[i].server;
            if self.diverse_replicas && out.iter().any(|&o| self.nodes[o].server == *server) {
                continue;
            }
            out.push(i);
            if out.len() >= self.replication_factor {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_as_carbon_parses_them() {
        let d = Destination::parse("10.0.0.1:2004:a").expect("parse");
        assert_eq!(d.ring_key(), "('10.0.0.1', 'a')");
        let d = Destination::parse(" carbon1:2004 ").expect("parse");
        assert_eq!((d.port, d.ring_key().as_str()), (2004, "('carbon1', None)"));
        for bad in ["x", "x:y", ":2004", "a:1:b:c"] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(py_repr("it's"), "\"it's\"");
    }

    #[test]
    fn every_metric_lands_somewhere_and_replicas_are_distinct() {
        let ds: Vec<Destination> = ["a:2004:1", "a:2104:2", "b:2004:1", "c:2004:1"]
            .iter()
            .map(|s| Destination::parse(s).expect("parse"))
            .collect();
        let ring = Ring::new(ds, 2, true);
        for i in 0..1000 {
            let got = ring.destinations(&format!("m.{i}"));
            assert_eq!(got.len(), 2);
            assert_ne!(got[0].server, got[1].server);
        }
    }
}
