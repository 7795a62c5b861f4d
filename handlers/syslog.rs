//! syslog: one message per sample to a syslog daemon, RFC 5424 (default) or
//! RFC 3164, over UDP, TCP (RFC 6587 octet counting) or the local unix
//! socket (`/dev/log`, datagram or stream).
//!
//! The message is `name value timestamp`; RFC 5424 messages also carry the
//! name and value as structured data, `[carbyne@32473 name="..." value="..."]`.

use super::transport::{run_lines, Framing, Link, Proto};
use super::{Delivery, DeliveryError};
use crate::config::ConfigError;
use crate::sample::{write_value, Sample};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Duration;

/// The two syslog message formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Rfc5424,
    Rfc3164,
}

/// `[handlers.syslog]` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogConfig {
    /// `udp`, `tcp` or `unix`.
    pub transport: Proto,
    /// `host:port` for udp and tcp, the socket's path for unix.
    pub address: String,
    /// `rfc5424` or `rfc3164`.
    pub format: Format,
    /// Facility name: kern, user, mail, daemon, auth, syslog, lpr, news,
    /// uucp, cron, authpriv, ftp, local0 … local7.
    pub facility: String,
    /// Severity name: emerg, alert, crit, err, warning, notice, info, debug.
    pub severity: String,
    /// The HOSTNAME field; empty for this machine's name.
    pub hostname: String,
    /// Seconds allowed for connecting and for each write.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub timeout: f64,
    /// Most messages written at once.
    pub batch: usize,
    /// Most samples held while the daemon is unreachable.
    pub max_queue: usize,
    /// Longest wait between reconnection attempts, in seconds.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub max_backoff: f64,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            transport: Proto::Unix,
            address: "/dev/log".into(),
            format: Format::Rfc5424,
            facility: "user".into(),
            severity: "info".into(),
            hostname: String::new(),
            timeout: 15.0,
            batch: 500,
            max_queue: 100_000,
            max_backoff: 30.0,
        }
    }
}

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

impl SyslogConfig {
    /// The PRI value (facility × 8 + severity), or the key at fault.
    pub fn pri(&self, key: &str) -> Result<u8, ConfigError> {
        let f = FACILITIES
            .iter()
            .position(|f| *f == self.facility)
            .ok_or_else(|| {
                ConfigError::new(
                    format!("{key}.facility"),
                    format!(
                        "{:?} is not a facility ({})",
                        self.facility,
                        FACILITIES.join(", ")
                    ),
                )
            })?;
        let s = SEVERITIES
            .iter()
            .position(|s| *s == self.severity)
            .ok_or_else(|| {
                ConfigError::new(
                    format!("{key}.severity"),
                    format!(
                        "{:?} is not a severity ({})",
                        self.severity,
                        SEVERITIES.join(", ")
                    ),
                )
            })?;
        Ok((f * 8 + s) as u8)
    }

    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        self.pri(key)?;
        self.link()
            .map_err(|m| ConfigError::new(format!("{key}.address"), m))?;
        if self.hostname.contains(char::is_whitespace) {
            return Err(ConfigError::new(
                format!("{key}.hostname"),
                "must not contain spaces",
            ));
        }
        super::check_seconds(
            key,
            &[("timeout", self.timeout), ("max_backoff", self.max_backoff)],
        )?;
        if self.batch == 0 || self.max_queue == 0 {
            return Err(ConfigError::new(
                format!("{key}.batch"),
                "batch and max_queue must be at least 1",
            ));
        }
        Ok(())
    }

    fn link(&self) -> Result<Link, String> {
        let (host, port) = match self.transport {
            Proto::Unix => {
                if !self.address.starts_with('/') {
                    return Err(format!(
                        "{:?}: a unix socket is an absolute path",
                        self.address
                    ));
                }
                (self.address.clone(), 0)
            }
            _ => {
                let (h, p) = self
                    .address
                    .rsplit_once(':')
                    .ok_or_else(|| format!("{:?}: expected host:port", self.address))?;
                let p: u16 = p
                    .parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{:?}: bad port", self.address))?;
                (h.trim_matches(['[', ']']).to_string(), p)
            }
        };
        Ok(Link {
            host,
            port,
            proto: self.transport,
            timeout: Duration::from_secs_f64(self.timeout),
            batch: self.batch,
            max_backoff: Duration::from_secs_f64(self.max_backoff),
            max_datagram: 65507,
            trim_datagram: false,
            framing: Framing::Messages,
        })
    }
}

/// Year, month, day, hour, minute, second (UTC) of a unix time.
pub fn civil(ts: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + (m <= 2) as i64;
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        (secs % 3600 / 60) as u32,
        (secs % 60) as u32,
    )
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An SD-PARAM value with `"`, `\` and `]` escaped (RFC 5424 6.3.3).
fn sd_escape(out: &mut String, v: &str) {
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// What a message needs beside the sample.
#[derive(Debug, Clone)]
pub struct Header {
    pub pri: u8,
    pub format: Format,
    pub hostname: String,
    pub pid: u32,
}

/// One syslog message for a sample, newline-terminated (the transport frames it).
pub fn write_message(h: &Header, s: &Sample, out: &mut String) {
    let (y, mo, d, hh, mm, ss) = civil(s.timestamp);
    let mut value = String::new();
    write_value(&mut value, s.value);
    match h.format {
        Format::Rfc5424 => {
            let _ = write!(
                out,
                "<{}>1 {y:04}-{mo:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z {} carbyne {} - [carbyne@32473 name=\"",
                h.pri, h.hostname, h.pid
            );
            sd_escape(out, &s.name);
            out.push_str("\" value=\"");
            sd_escape(out, &value);
            let _ = writeln!(out, "\"] {} {value} {}", s.name, s.timestamp);
        }
        Format::Rfc3164 => {
            let mon = MONTHS[(mo as usize).saturating_sub(1) % 12];
            let _ = writeln!(
                out,
                "<{}>{mon} {d:>2} {hh:02}:{mm:02}:{ss:02} {} carbyne[{}]: {} {value} {}",
                h.pri, h.hostname, h.pid, s.name, s.timestamp
            );
        }
    }
}

/// The handler task.
pub async fn run(d: Delivery, cfg: SyslogConfig) -> Result<(), DeliveryError> {
    let link = cfg.link().map_err(DeliveryError)?;
    let hostname = if cfg.hostname.is_empty() {
        dns_lookup::get_hostname().unwrap_or_else(|_| "-".into())
    } else {
        cfg.hostname.clone()
    };
    let header = Header {
        pri: cfg
            .pri("handlers.syslog")
            .map_err(|e| DeliveryError(e.to_string()))?,
        format: cfg.format,
        hostname,
        pid: std::process::id(),
    };
    run_lines(d, link, move |s, out| write_message(&header, s, out)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Kind;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil(1_795_310_586), (2026, 11, 22, 1, 23, 6));
    }

    #[test]
    fn both_formats() {
        let s = Sample::new(
            "servers.h.cpu.total.user".into(),
            12.5,
            1_795_310_586,
            Kind::Rate,
        );
        let mut h = Header {
            pri: SyslogConfig::default().pri("k").expect("pri"),
            format: Format::Rfc5424,
            hostname: "h".into(),
            pid: 42,
        };
        assert_eq!(h.pri, 14);
        let mut out = String::new();
        write_message(&h, &s, &mut out);
        assert_eq!(
            out,
            "<14>1 2026-11-22T01:23:06Z h carbyne 42 - [carbyne@32473 name=\"servers.h.cpu.total.user\" value=\"12.5\"] servers.h.cpu.total.user 12.5 1795310586\n"
        );
        h.format = Format::Rfc3164;
        out.clear();
        write_message(&h, &s, &mut out);
        assert_eq!(
            out,
            "<14>Nov 22 01:23:06 h carbyne[42]: servers.h.cpu.total.user 12.5 1795310586\n"
        );
        let mut e = String::new();
        sd_escape(&mut e, "a\"b]c\\");
        assert_eq!(e, "a\\\"b\\]c\\\\");
    }

    #[test]
    fn bad_settings() {
        let c = SyslogConfig {
            facility: "local9".into(),
            ..Default::default()
        };
        assert!(c
            .validate("handlers.syslog")
            .expect_err("facility")
            .to_string()
            .contains("handlers.syslog.facility"));
        let c = SyslogConfig {
            transport: Proto::Udp,
            address: "localhost".into(),
            ..Default::default()
        };
        assert!(c
            .validate("handlers.syslog")
            .expect_err("address")
            .to_string()
            .contains("handlers.syslog.address"));
        let c = SyslogConfig {
            transport: Proto::Tcp,
            address: "h:0".into(),
            ..Default::default()
        };
        assert!(c.validate("handlers.syslog").is_err());
    }
}
