//! postfix: delivery statistics from a Postfix mail log, as Logster's
//! PostfixLogster (same metric names and arithmetic).
//!
//! A line is read the way Logster's regex reads it, first match wins:
//! 1. `delay=D, ... status=sent|deferred|bounced` — a delivery attempt
//!    (the last such status, the last `delay=` before it);
//! 2. `[Untrusted|Anonymous] TLS connection established to|from` — a TLS
//!    connection, outgoing or incoming;
//! 3. `nrcpt=N ... queue active` — a message received.
//!
//! It is done with literal searches (memchr) instead of a regex: the cost
//! of a line that matches nothing is three substring scans.

use super::{per, Parser};
use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};

/// `parser = "postfix"` has no options of its own.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostfixConfig {}

pub struct Postfix {
    sent: u64,
    deferred: u64,
    bounced: u64,
    total_delay: f64,
    incoming: u64,
    in_tls: u64,
    in_untrusted: u64,
    out_tls: u64,
    out_untrusted: u64,
    status: Finder<'static>,
    tls: Finder<'static>,
    nrcpt: Finder<'static>,
    queue_active: Finder<'static>,
}

impl Default for Postfix {
    fn default() -> Self {
        Postfix {
            sent: 0,
            deferred: 0,
            bounced: 0,
            total_delay: 0.0,
            incoming: 0,
            in_tls: 0,
            in_untrusted: 0,
            out_tls: 0,
            out_untrusted: 0,
            status: Finder::new("status="),
            tls: Finder::new(" TLS connection established "),
            nrcpt: Finder::new("nrcpt="),
            queue_active: Finder::new("queue active"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Sent,
    Deferred,
    Bounced,
}

fn status_word(rest: &[u8]) -> Option<Status> {
    if rest.starts_with(b"sent") {
        Some(Status::Sent)
    } else if rest.starts_with(b"deferred") {
        Some(Status::Deferred)
    } else if rest.starts_with(b"bounced") {
        Some(Status::Bounced)
    } else {
        None
    }
}

impl Postfix {
    /// Branch 1: the delivery status and the delay text, if the line has them.
    fn delivery<'l>(&self, line: &'l [u8]) -> Option<(Status, &'l [u8])> {
        // The last `status=` followed by one of the three words.
        let (j, status) = self
            .status
            .find_iter(line)
            .filter_map(|j| status_word(&line[j + 7..]).map(|s| (j, s)))
            .last()?;
        // The last `delay=` whose value (up to the next comma, not empty)
        // ends before that status.
        memchr::memmem::rfind_iter(&line[..j], b"delay=").find_map(|i| {
            let start = i + 6;
            let comma = memchr::memchr(b',', &line[start..])? + start;
            (comma > start && comma < j).then(|| (status, &line[start..comma]))
        })
    }

    /// Branch 2: (outgoing, untrusted) of the first TLS connection line.
    fn tls(&self, line: &[u8]) -> Option<(bool, bool)> {
        self.tls.find_iter(line).find_map(|k| {
            let rest = &line[k + 28..];
            let outgoing = if rest.starts_with(b"to") {
                true
            } else if rest.starts_with(b"from") {
                false
            } else {
                return None;
            };
            let before = &line[..k];
            let untrusted = before.ends_with(b"Untrusted") || before.ends_with(b"Anonymous");
            Some((outgoing, untrusted))
        })
    }

    /// Branch 3: `nrcpt=` with a value, and `queue active` after it.
    fn received(&self, line: &[u8]) -> bool {
        self.nrcpt.find_iter(line).any(|i| {
            let v = i + 6;
            v < line.len() && line[v] != b' ' && self.queue_active.find(&line[v + 1..]).is_some()
        })
    }
}

impl Parser for Postfix {
    fn parse_line(&mut self, line: &[u8]) -> bool {
        if let Some((status, delay)) = self.delivery(line) {
            match status {
                Status::Sent => {
                    // Logster skips the line when the delay is not a number.
                    let Some(d) = std::str::from_utf8(delay)
                        .ok()
                        .and_then(|s| s.trim().parse::<f64>().ok())
                    else {
                        return false;
                    };
                    self.total_delay += d;
                    self.sent += 1;
                }
                Status::Deferred => self.deferred += 1,
                Status::Bounced => self.bounced += 1,
            }
            return true;
        }
        if let Some((outgoing, untrusted)) = self.tls(line) {
            if outgoing {
                self.out_tls += 1;
                self.out_untrusted += untrusted as u64;
            } else {
                self.in_tls += 1;
                self.in_untrusted += untrusted as u64;
            }
            return true;
        }
        if self.received(line) {
            self.incoming += 1;
            return true;
        }
        false
    }

    fn take_metrics(&mut self, duration: f64, out: &mut Vec<(String, f64)>) {
        let (sent, deferred, bounced) =
            (self.sent as f64, self.deferred as f64, self.bounced as f64);
        let txns = sent + deferred + bounced;
        let pct = |n: f64, of: f64| if of > 0.0 { n / of * 100.0 } else { 0.0 };
        let m = [
            ("numSent", sent),
            ("pctSent", pct(sent, txns)),
            ("numDeferred", deferred),
            ("pctDeferred", pct(deferred, txns)),
            ("numBounced", bounced),
            ("pctBounced", pct(bounced, txns)),
            ("mailTxnsSec", per(txns, duration)),
            ("mailSentSec", per(sent, duration)),
            (
                "avgDelay",
                if sent > 0.0 {
                    self.total_delay / sent
                } else {
                    0.0
                },
            ),
            ("totalTxns", txns),
            ("totalRxns", self.incoming as f64),
            ("pctOutTLS", pct(self.out_tls as f64, txns)),
            (
                "pctOutUntrustedTLS",
                pct(self.out_untrusted as f64, self.out_tls as f64),
            ),
            ("totalOutTLS", self.out_tls as f64),
            ("totalOutUntrustedTLS", self.out_untrusted as f64),
            ("pctInTLS", pct(self.in_tls as f64, self.incoming as f64)),
            (
                "pctInUntrustedTLS",
                pct(self.in_untrusted as f64, self.in_tls as f64),
            ),
            ("totalInTLS", self.in_tls as f64),
            ("totalInUntrustedInTLS", self.in_untrusted as f64),
        ];
        out.extend(m.into_iter().map(|(k, v)| (k.to_string(), v)));
        *self = Postfix::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parsers::testutil::run_fixture;

    #[test]
    fn fixture_worked_by_hand() {
        // maillog: 4 sent (delays 0.57, 1.2, 0.25, 3.0), 2 deferred,
        // 1 bounced, 3 received, TLS out 2 (1 untrusted), TLS in 2
        // (1 anonymous), and lines that match nothing.
        let mut p = Postfix::default();
        let (hit, miss, m) = run_fixture(&mut p, "maillog", 60.0);
        assert_eq!(hit, 4 + 2 + 1 + 3 + 4);
        assert_eq!(miss, 9, "one of them a 75 kB line");
        assert_eq!(m["numSent"], 4.0);
        assert_eq!(m["numDeferred"], 2.0);
        assert_eq!(m["numBounced"], 1.0);
        assert_eq!(m["totalTxns"], 7.0);
        assert!((m["pctSent"] - 400.0 / 7.0).abs() < 1e-9);
        assert!((m["pctDeferred"] - 200.0 / 7.0).abs() < 1e-9);
        assert!((m["pctBounced"] - 100.0 / 7.0).abs() < 1e-9);
        assert!((m["mailTxnsSec"] - 7.0 / 60.0).abs() < 1e-12);
        assert!((m["mailSentSec"] - 4.0 / 60.0).abs() < 1e-12);
        assert!((m["avgDelay"] - (0.57 + 1.2 + 0.25 + 3.0) / 4.0).abs() < 1e-12);
        assert_eq!(m["totalRxns"], 3.0);
        assert_eq!(m["totalOutTLS"], 2.0);
        assert_eq!(m["totalOutUntrustedTLS"], 1.0);
        assert_eq!(m["pctOutUntrustedTLS"], 50.0);
        assert!((m["pctOutTLS"] - 200.0 / 7.0).abs() < 1e-9);
        assert_eq!(m["totalInTLS"], 2.0);
        assert_eq!(m["totalInUntrustedInTLS"], 1.0);
        assert!((m["pctInTLS"] - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(m["pctInUntrustedTLS"], 50.0);
        assert_eq!(m.len(), 19);
        // Taking the metrics resets the counts.
        let mut again = Vec::new();
        p.take_metrics(60.0, &mut again);
        assert!(again.iter().all(|(_, v)| *v == 0.0));
    }

    #[test]
    fn regex_semantics_on_edge_cases() {
        let mut p = Postfix::default();
        // The last delay= before the last status: 2.5 is the one counted.
        assert!(p.parse_line(b"x delay=1, y delay=2.5, z status=sent w"));
        assert_eq!(p.total_delay, 2.5);
        // delays= is not delay=; an empty delay value does not match.
        assert!(!p.parse_line(b"delays=1/2/3, status=sent"));
        assert!(!p.parse_line(b"delay=, status=sent"));
        // The comma must come before the status.
        assert!(!p.parse_line(b"status=sent delay=1,"));
        // A delay that is not a number: Logster skips the line.
        assert!(!p.parse_line(b"delay=abc, status=sent"));
        // Deferred and bounced need the delay too, but not a number.
        assert!(p.parse_line(b"delay=abc, status=deferred (x)"));
        assert!(!p.parse_line(b"status=bounced"));
        // TLS: "Trusted" is not untrusted; no direction, no match.
        assert!(p.parse_line(b"smtp[1]: Trusted TLS connection established to mx:25"));
        assert!(!p.parse_line(b"smtp[1]: Untrusted TLS connection established"));
        assert_eq!((p.out_tls, p.out_untrusted), (1, 0));
        // nrcpt needs a value and "queue active" after it.
        assert!(p.parse_line(b"qmgr: A: from=<a@b>, size=1, nrcpt=2 (queue active)"));
        assert!(!p.parse_line(b"qmgr: A: nrcpt= (queue active)"));
        assert!(!p.parse_line(b"qmgr: A: (queue active) nrcpt=2"));
        assert!(!p.parse_line(b""));
        assert!(!p.parse_line(&[0xff, 0xfe, b's']));
    }
}
