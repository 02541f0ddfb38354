//! The hosts a driver call may send HTTP requests to.
//!
//! A call's list holds the host of its resource's `endpoint` (with the endpoint's
//! port) plus the hosts the user configured, globally or for that plugin. A
//! configured entry is `host`, `host:port` or `*.domain[:port]`; without a port
//! any port of that host is allowed.

use std::fmt;

/// A configured host entry that is not a host pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}` {problem}")]
pub struct BadHostEntry {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it and how to write it.
    pub problem: String,
}

/// One allowed host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPattern {
    /// Lower-case host name or address; a leading `*.` matches any subdomain.
    host: String,
    /// `None` allows every port.
    port: Option<u16>,
}

impl HostPattern {
    fn parse(entry: &str) -> Result<HostPattern, BadHostEntry> {
        let bad = |problem: String| BadHostEntry {
            entry: entry.to_owned(),
            problem,
        };
        let entry = entry.trim().to_ascii_lowercase();
        let (host, port) = match entry.strip_prefix('[') {
            // An IPv6 literal: `[::1]` or `[::1]:8080`.
            Some(rest) => {
                let (host, after) = rest
                    .split_once(']')
                    .ok_or_else(|| bad("has no closing `]`".into()))?;
                (host.to_owned(), after.strip_prefix(':'))
            }
            None => match entry.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (entry.clone(), None),
            },
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| bad(format!("has an invalid port `{p}`")))
            })
            .transpose()?;
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(bad(
                "is not a host name; write `host`, `host:port` or `*.domain`".into(),
            ));
        }
        Ok(HostPattern { host, port })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match self.host.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
            None => self.host == host,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) => write!(f, "{host}:{port}"),
            None => write!(f, "{host}"),
        }
    }
}

/// The hosts one call may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    patterns: Vec<HostPattern>,
}

impl AllowList {
    /// Builds a list from configured entries; a bad entry is an error naming it.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<AllowList, BadHostEntry> {
        let patterns = entries
            .into_iter()
            .map(HostPattern::parse)
            .collect::<Result<_, _>>()?;
        Ok(AllowList { patterns })
    }

    /// This list plus the host and port of an endpoint URL such as
    /// `https://ec2.example.org`, `http://127.0.0.1:5000/x` or `tcp://docker:2375`.
    /// An endpoint that is not a URL adds nothing.
    pub fn with_endpoint(&self, endpoint: &str) -> AllowList {
        match Authority::of_url(endpoint) {
            Some(authority) => self.with(&authority),
            None => self.clone(),
        }
    }

    /// This list plus one host and port.
    pub fn with(&self, authority: &Authority) -> AllowList {
        let mut list = self.clone();
        list.patterns.push(HostPattern {
            host: authority.host.clone(),
            port: Some(authority.port),
        });
        list
    }

    /// Whether a request to `host:port` may leave the sandbox.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.to_ascii_lowercase();
        self.patterns.iter().any(|p| p.matches(&host, port))
    }

    /// The entries, for `plugins inspect` and errors.
    pub fn entries(&self) -> Vec<String> {
        self.patterns.iter().map(ToString::to_string).collect()
    }
}

/// The host (lower case, IPv6 without brackets) and port a URL points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Authority {
    /// The host name or address.
    pub host: String,
    /// The port, the scheme's default when the URL names none.
    pub port: u16,
}

impl Authority {
    /// The authority of an `http`, `https` or `tcp` URL; `None` for anything else.
    pub fn of_url(url: &str) -> Option<Authority> {
        let (scheme, rest) = url.split_once("://")?;
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "https" => 443,
            "http" => 80,
            "tcp" => 2375,
            _ => return None,
        };
        let authority = rest.split(['/', '?', '#']).next()?;
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let pattern = HostPattern::parse(authority).ok()?;
        (!pattern.host.starts_with("*.")).then(|| Authority {
            host: pattern.host,
            port: pattern.port.unwrap_or(default_port),
        })
    }

    /// The authority a request goes to (its host as the URI spells it).
    pub fn of_request(host: &str, port: u16) -> Authority {
        Authority {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            port,
        }
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pattern = HostPattern {
            host: self.host.clone(),
            port: Some(self.port),
        };
        pattern.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_allows_its_host_and_port_only() {
        let list = AllowList::default().with_endpoint("https://EC2.example.org/path");
        assert!(list.allows("ec2.example.org", 443));
        assert!(!list.allows("ec2.example.org", 80));
        assert!(!list.allows("evil.example.org", 443));

        let list = AllowList::default().with_endpoint("http://127.0.0.1:5000");
        assert!(list.allows("127.0.0.1", 5000));
        assert!(!list.allows("127.0.0.2", 5000));

        let list = AllowList::default().with_endpoint("tcp://[::1]:2376");
        assert!(list.allows("[::1]", 2376));
    }

    #[test]
    fn authorities_of_urls() {
        let of = |url| Authority::of_url(url).map(|a| a.to_string());
        assert_eq!(
            of("http://127.0.0.1:18774/v2.1"),
            Some("127.0.0.1:18774".into())
        );
        assert_eq!(
            of("https://Nova.Example.org/"),
            Some("nova.example.org:443".into())
        );
        assert_eq!(of("https://[::1]:8774"), Some("[::1]:8774".into()));
        assert_eq!(of("ftp://example.org"), None);
        assert_eq!(of("http://*.example.org"), None);
        let list = AllowList::default().with(&Authority::of_request("[::1]", 8774));
        assert!(list.allows("[::1]", 8774));
        assert!(!list.allows("[::1]", 8775));
    }

    #[test]
    fn non_url_endpoints_add_nothing() {
        let list = AllowList::default().with_endpoint("replace_with_endpoint");
        assert_eq!(list, AllowList::default());
    }

    #[test]
    fn configured_patterns() {
        let list = AllowList::from_entries(["sts.example.org", "*.s3.example.org:443"]).unwrap();
        assert!(list.allows("sts.example.org", 8443));
        assert!(list.allows("bucket.s3.example.org", 443));
        assert!(!list.allows("s3.example.org", 443));
        assert!(!list.allows("bucket.s3.example.org", 80));
        assert!(!list.allows("xs3.example.org", 443));
        assert_eq!(list.entries(), ["sts.example.org", "*.s3.example.org:443"]);
    }

    #[test]
    fn bad_entries_are_named() {
        let error = AllowList::from_entries(["http://x/"]).unwrap_err();
        assert!(error.to_string().contains("http://x/"), "{error}");
        let error = AllowList::from_entries(["host:99999"]).unwrap_err();
        assert!(error.to_string().contains("invalid port"), "{error}");
    }
}
