//! Request parameters. RFC 6749 §3.1 and §3.2: a parameter sent more than once is an
//! invalid request, so forms and queries are read with that check rather than letting
//! the last value silently win.

use std::collections::HashMap;

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use gatehouse_core::client_auth::ClientCredentials;
use gatehouse_core::OAuthError;
use serde::de::DeserializeOwned;

#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(raw: &[u8]) -> Result<Params, OAuthError> {
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(raw) {
            if map.insert(k.to_string(), v.into_owned()).is_some() {
                let name: String = k.chars().take(40).collect();
                return Err(OAuthError::invalid_request(format!("parameter {name} was sent more than once")));
            }
        }
        Ok(Params(map))
    }

    pub(crate) fn from_map(map: HashMap<String, String>) -> Params {
        Params(map)
    }

    /// A form body; anything but `application/x-www-form-urlencoded` is refused.
    pub fn from_form(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
        let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !body.is_empty() && !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        Params::parse(body)
    }

    /// A value, with empty strings read as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, OAuthError> {
        let pairs: Vec<(&String, &String)> = self.0.iter().filter(|(_, v)| !v.is_empty()).collect();
        let encoded = serde_urlencoded::to_string(pairs).map_err(|_| OAuthError::invalid_request("malformed parameters"))?;
        serde_urlencoded::from_str(&encoded).map_err(|_| OAuthError::invalid_request("malformed parameters"))
    }

    pub fn client_credentials(&self, headers: &HeaderMap) -> Result<ClientCredentials, OAuthError> {
        Ok(ClientCredentials {
            basic: basic_auth(headers)?,
            form_client_id: self.get("client_id").map(str::to_string),
            form_client_secret: self.get("client_secret").map(str::to_string),
        })
    }
}

/// `Authorization: Basic` for clients: base64 of `id:secret`, each form-urlencoded
/// first (RFC 6749 §2.3.1). Any other scheme is left for the endpoint to judge.
pub fn basic_auth(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let value = value.to_str().map_err(|_| bad())?;
    let Some((scheme, rest)) = value.split_once(' ') else { return Ok(None) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unform = |s: &str| -> String {
        url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
    };
    Ok(Some((unform(id), unform(secret))))
}

/// The token of `Authorization: Bearer …` or Twitch's `Authorization: OAuth …`.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.to_string())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(Params::parse(b"a=1&b=2").is_ok());
        let e = Params::parse(b"code=1&code=2").unwrap_err();
        assert!(e.description.contains("code"));
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode("my%20id:s%3Acret"));
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        assert_eq!(basic_auth(&h).unwrap(), Some(("my id".into(), "s:cret".into())));
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(basic_auth(&h).is_err());
    }

    #[test]
    fn bearer_and_oauth_schemes() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "OAuth abc".parse().unwrap());
        assert_eq!(bearer_token(&h).as_deref(), Some("abc"));
        h.insert(header::AUTHORIZATION, "bearer xyz".parse().unwrap());
        assert_eq!(bearer_token(&h).as_deref(), Some("xyz"));
        h.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
    }
}
