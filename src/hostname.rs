//! Diamond's `hostname_method`s: how the host segment of every metric name is chosen.

use serde::{Deserialize, Serialize};

/// The ways Diamond derives the hostname segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostnameMethod {
    /// `fqdn_short`, unless that is `localhost`, then `hostname_short`.
    #[default]
    Smart,
    /// First label of the fully qualified name.
    FqdnShort,
    /// The fully qualified name with `.` replaced by `_`.
    Fqdn,
    /// The fully qualified name with its labels reversed (`com.example.www`).
    FqdnRev,
    /// First label of `uname -n`.
    UnameShort,
    /// `uname -n` with its labels reversed.
    UnameRev,
    /// `gethostname()` as it is.
    Hostname,
    /// First label of `gethostname()`.
    HostnameShort,
    /// `gethostname()` with its labels reversed.
    HostnameRev,
    /// No host segment at all.
    None,
}

/// The names a host is known by, gathered once so the methods are pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNames {
    pub fqdn: String,
    pub uname: String,
    pub hostname: String,
}

impl HostNames {
    /// Reads this machine's names: `gethostname()`, `uname -n`, and the
    /// canonical name the resolver gives for the hostname (Python's
    /// `socket.getfqdn()` falls back to the plain hostname the same way).
    pub fn from_system() -> Self {
        let hostname = dns_lookup::get_hostname().unwrap_or_else(|_| "localhost".to_string());
        let uname = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let fqdn = canonical_name(&hostname).unwrap_or_else(|| hostname.clone());
        HostNames {
            fqdn,
            uname,
            hostname,
        }
    }
}

fn canonical_name(host: &str) -> Option<String> {
    let hints = dns_lookup::AddrInfoHints {
        flags: 2, // AI_CANONNAME
        ..Default::default()
    };
    let found = dns_lookup::getaddrinfo(Some(host), None, Some(hints)).ok()?;
    for ai in found.flatten() {
        if let Some(name) = ai.canonname {
            if name.contains('.') {
                return Some(name);
            }
        }
    }
    None
}

fn short(name: &str) -> String {
    name.split('.').next().unwrap_or(name).to_string()
}

fn reversed(name: &str) -> String {
    name.split('.').rev().collect::<Vec<_>>().join(".")
}

impl HostnameMethod {
    /// The host segment this method gives for `names`; `None` for [`HostnameMethod::None`].
    pub fn resolve(self, names: &HostNames) -> Option<String> {
        Some(match self {
            HostnameMethod::Smart => {
                let s = short(&names.fqdn);
                if s == "localhost" {
                    short(&names.hostname)
                } else {
                    s
                }
            }
            HostnameMethod::FqdnShort => short(&names.fqdn),
            HostnameMethod::Fqdn => names.fqdn.replace('.', "_"),
            HostnameMethod::FqdnRev => reversed(&names.fqdn),
            HostnameMethod::UnameShort => short(&names.uname),
            HostnameMethod::UnameRev => reversed(&names.uname),
            HostnameMethod::Hostname => names.hostname.clone(),
            HostnameMethod::HostnameShort => short(&names.hostname),
            HostnameMethod::HostnameRev => reversed(&names.hostname),
            HostnameMethod::None => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> HostNames {
        HostNames {
            fqdn: "web01.dc1.example.com".into(),
            uname: "web01.local".into(),
            hostname: "web01.dc1".into(),
        }
    }

    #[test]
    fn every_method() {
        let n = names();
        let r = |m: HostnameMethod| m.resolve(&n);
        assert_eq!(r(HostnameMethod::Smart).as_deref(), Some("web01"));
        assert_eq!(r(HostnameMethod::FqdnShort).as_deref(), Some("web01"));
        assert_eq!(
            r(HostnameMethod::Fqdn).as_deref(),
            Some("web01_dc1_example_com")
        );
        assert_eq!(
            r(HostnameMethod::FqdnRev).as_deref(),
            Some("com.example.dc1.web01")
        );
        assert_eq!(r(HostnameMethod::UnameShort).as_deref(), Some("web01"));
        assert_eq!(r(HostnameMethod::UnameRev).as_deref(), Some("local.web01"));
        assert_eq!(r(HostnameMethod::Hostname).as_deref(), Some("web01.dc1"));
        assert_eq!(r(HostnameMethod::HostnameShort).as_deref(), Some("web01"));
        assert_eq!(r(HostnameMethod::HostnameRev).as_deref(), Some("dc1.web01"));
        assert_eq!(r(HostnameMethod::None), None);
    }

    #[test]
    fn smart_falls_back_when_fqdn_is_localhost() {
        let n = HostNames {
            fqdn: "localhost.localdomain".into(),
            uname: "box".into(),
            hostname: "box.lan".into(),
        };
        assert_eq!(HostnameMethod::Smart.resolve(&n).as_deref(), Some("box"));
    }
}
