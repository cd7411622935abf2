//! Network-facing rules shared by validation and the crates that make connections:
//! which hosts count as internal, and which provider endpoints are acceptable.

use std::net::IpAddr;

use url::{Host, Url};

/// True for hosts that never leave the deployment's private network: loopback,
/// private and link-local ranges, single-label names, and the `.local`, `.internal`,
/// `.svc` (Kubernetes) suffixes plus `localhost`.
pub fn is_internal_host(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(v4) => is_internal_ip(IpAddr::V4(*v4)),
        Host::Ipv6(v6) => is_internal_ip(IpAddr::V6(*v6)),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            !name.contains('.')
                || name == "localhost"
                || name.ends_with(".localhost")
                || name.ends_with(".local")
                || name.ends_with(".internal")
                || name.ends_with(".svc")
                || name.ends_with(".svc.cluster.local")
        }
    }
}

/// Loopback, RFC 1918 / unique-local and link-local addresses.
pub fn is_internal_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link local fe80::/10
        }
    }
}

/// True when `host` is a loopback name or address (development origins).
pub fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(v4) => v4.is_loopback(),
        Host::Ipv6(v6) => v6.is_loopback(),
        Host::Domain(name) => {
            let name = name.to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

/// Parses a provider endpoint: https anywhere, plain http only to internal hosts
/// (a key sent over http to the internet would be readable on the way).
pub fn validate_endpoint(endpoint: &str) -> Result<Url, String> {
    let url = Url::parse(endpoint).map_err(|e| format!("invalid URL {endpoint:?}: {e}"))?;
    let host = url
        .host()
        .ok_or_else(|| format!("URL {endpoint:?} has no host"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_internal_host(&host) => Ok(url),
        "http" => Err(format!(
            "plain http is only allowed to internal hosts (loopback, private ranges, \
             single-label, .local, .internal, .svc); use https for {host}"
        )),
        other => Err(format!(
            "scheme must be https (or http to an internal host), got {other:?}"
        )),
    }
}

/// Parses a browser origin (`scheme://host[:port]`, no path, query or fragment).
pub fn parse_origin(origin: &str) -> Result<Url, String> {
    let url = Url::parse(origin).map_err(|e| format!("invalid origin {origin:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("origin {origin:?} must use http or https"));
    }
    if url.host().is_none() {
        return Err(format!("origin {origin:?} has no host"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "origin {origin:?} must be scheme://host[:port] without a path"
        ));
    }
    if origin.ends_with('/') {
        return Err(format!("origin {origin:?} must not end with '/'"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_hosts_may_use_http() {
        for ok in [
            "http://localhost:11434/v1",
            "http://127.0.0.1:8000",
            "http://10.1.2.3",
            "http://192.168.0.10",
            "http://172.20.0.1",
            "http://[::1]:9000",
            "http://ollama:11434",
            "http://llm.internal",
            "http://vllm.default.svc",
            "http://box.local",
            "https://api.openai.com/v1",
        ] {
            assert!(validate_endpoint(ok).is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn public_hosts_need_https() {
        for bad in [
            "http://api.openai.com/v1",
            "http://8.8.8.8",
            "ftp://10.0.0.1",
            "not a url",
        ] {
            assert!(validate_endpoint(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn origins_are_bare() {
        assert!(parse_origin("https://chat.example.com").is_ok());
        assert!(parse_origin("http://localhost:3000").is_ok());
        assert!(parse_origin("https://chat.example.com/").is_err());
        assert!(parse_origin("https://chat.example.com/app").is_err());
        assert!(parse_origin("chat.example.com").is_err());
        assert!(parse_origin("*").is_err());
    }
}
