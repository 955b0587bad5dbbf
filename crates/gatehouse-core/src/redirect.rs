//! Redirect URI matching: exact string match against the registered list, except that a
//! loopback redirect may use any port (RFC 8252 §7.3), as native apps pick a free one.

use std::net::IpAddr;
use url::Url;

/// Validates a URI a developer wants to register: absolute, no fragment (RFC 6749 §3.1.2),
/// and https unless it points at this machine (loopback) or is a private-use scheme.
pub fn validate_registration(uri: &str) -> Result<(), String> {
    let url = Url::parse(uri).map_err(|_| format!("not an absolute URL: {}", clip(uri)))?;
    if url.fragment().is_some() {
        return Err("a redirect URI must not contain a fragment".into());
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err("http redirect URIs are only allowed for localhost; use https".into()),
        // RFC 8252 §7.1: private-use schemes such as com.example.app:/callback
        s if s.contains('.') => Ok(()),
        _ => Err(format!("unsupported redirect URI scheme: {}", clip(url.scheme()))),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(100).collect()
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Finds the registered URI that `requested` matches. The caller redirects to `requested`
/// itself, which may differ from the registered one in its loopback port only.
pub fn match_registered<'a>(requested: &str, registered: &'a [String]) -> Option<&'a str> {
    if let Some(exact) = registered.iter().find(|r| r.as_str() == requested) {
        return Some(exact);
    }
    let req = Url::parse(requested).ok()?;
    if req.scheme() != "http" || !is_loopback(&req) {
        return None;
    }
    registered.iter().map(String::as_str).find(|r| {
        let Ok(reg) = Url::parse(r) else { return false };
        reg.scheme() == "http"
            && is_loopback(&reg)
            && reg.host() == req.host()
            && reg.path() == req.path()
            && reg.query() == req.query()
            && req.username().is_empty()
            && req.password().is_none()
            && req.fragment().is_none()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exact_match_only_for_web_uris() {
        let r = reg(&["https://app.example.com/cb"]);
        assert!(match_registered("https://app.example.com/cb", &r).is_some());
        assert!(match_registered("https://app.example.com/cb/", &r).is_none());
        assert!(match_registered("https://app.example.com/cb?x=1", &r).is_none());
        assert!(match_registered("https://APP.example.com/cb", &r).is_none());
        assert!(match_registered("https://evil.example.com/cb", &r).is_none());
    }

    #[test]
    fn loopback_port_may_vary() {
        let r = reg(&["http://127.0.0.1/callback", "http://localhost:3000/cb"]);
        assert!(match_registered("http://127.0.0.1:51234/callback", &r).is_some());
        assert!(match_registered("http://localhost:4000/cb", &r).is_some());
        assert!(match_registered("http://127.0.0.1:51234/other", &r).is_none());
        // Host must be the same loopback host that was registered.
        assert!(match_registered("http://127.0.0.1:3000/cb", &r).is_none());
        assert!(match_registered("http://localhost.evil.com:3000/cb", &r).is_none());
        assert!(match_registered("https://localhost:4000/cb", &r).is_none());
    }

    #[test]
    fn registration_rules() {
        assert!(validate_registration("https://a.example/cb").is_ok());
        assert!(validate_registration("http://localhost:3000/callback").is_ok());
        assert!(validate_registration("http://[::1]/cb").is_ok());
        assert!(validate_registration("com.example.app:/cb").is_ok());
        assert!(validate_registration("http://a.example/cb").is_err());
        assert!(validate_registration("https://a.example/cb#frag").is_err());
        assert!(validate_registration("/relative").is_err());
        assert!(validate_registration("javascript:alert(1)").is_err());
    }
}
