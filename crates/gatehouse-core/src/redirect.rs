//! Redirect URI matching: exact string match against the registered list, except that a
//! loopback redirect may use any port (RFC 8252 §7.3), as native apps pick a free one.

use std::net::IpAddr;
use url::Url;

/// Why a redirect URI cannot be registered; the text is shown to the developer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("not an absolute URL: {0}")]
    NotAbsolute(String),
    #[error("a redirect URI must not contain a fragment")]
    Fragment,
    #[error("http redirect URIs are only allowed for localhost; use https")]
    PlainHttp,
    #[error("unsupported redirect URI scheme: {0}")]
    Scheme(String),
}

/// Validates a URI a developer wants to register: absolute, no fragment (RFC 6749 §3.1.2),
/// and https unless it points at this machine (loopback) or is a private-use scheme.
pub fn validate_registration(uri: &str) -> Result<(), RedirectUriError> {
    let url = Url::parse(uri).map_err(|_| RedirectUriError::NotAbsolute(clip(uri)))?;
    if url.fragment().is_some() {
        return Err(RedirectUriError::Fragment);
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err(RedirectUriError::PlainHttp),
        // RFC 8252 §7.1: private-use schemes such as com.example.app:/callback
        s if s.contains('.') => Ok(()),
        _ => Err(RedirectUriError::Scheme(clip(url.scheme()))),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(100).collect()
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Finds the registered URI that `requested` matches: the same string (RFC 9700 §4.1.3),
/// or for a loopback URI the same string but for its port (RFC 8252 §7.3). A loopback
/// URI must come in its canonical spelling (an empty path aside: `http://localhost:4000`
/// is how native apps write it), so `/a/../cb` does not pass for `/cb`.
pub fn match_registered<'a>(requested: &str, registered: &'a [String]) -> Option<&'a str> {
    if let Some(exact) = registered.iter().find(|r| r.as_str() == requested) {
        return Some(exact);
    }
    let mut req = Url::parse(requested).ok()?;
    let canonical = req.as_str() == requested || (req.path() == "/" && req.as_str().strip_suffix('/') == Some(requested));
    if !canonical || req.scheme() != "http" || !is_loopback(&req) {
        return None;
    }
    req.set_port(None).ok()?;
    registered.iter().map(String::as_str).find(|r| {
        let Ok(mut reg) = Url::parse(r) else { return false };
        reg.scheme() == "http" && is_loopback(&reg) && reg.set_port(None).is_ok() && reg.as_str() == req.as_str()
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
        // Only the canonical spelling: no dot segments, no user info, no fragment.
        assert!(match_registered("http://localhost:4000/x/../cb", &r).is_none());
        let bare = reg(&["http://localhost:3000"]);
        assert!(match_registered("http://localhost:4000", &bare).is_some());
        assert!(match_registered("http://localhost:4000/", &bare).is_some());
        assert!(match_registered("http://user@localhost:4000/cb", &r).is_none());
        assert!(match_registered("http://localhost:4000/cb#f", &r).is_none());
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
