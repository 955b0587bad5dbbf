//! The parameters of `POST /oauth2/{token,revoke,device,introspect}`, as the clients of
//! each dialect send them: a form, a multipart form (twitch-cli) or a JSON object
//! (Streamlabs clients) in the body, and, as Twitch's libraries do, the query string.
//! All of it makes one map, where a name given twice anywhere is an invalid request
//! (RFC 6749 §3.1), so no source can silently override another.

use std::collections::HashMap;
use std::fmt;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap};
use gatehouse_core::OAuthError;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::error::AppError;
use crate::params::Params;
use crate::AppState;

/// The extractor: the request's one parameter map.
pub struct OAuthParams(pub Params);

impl FromRequest<AppState> for OAuthParams {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let query = req.uri().query().map(str::to_owned);
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| OAuthError::invalid_request("the request body could not be read"))?;
        let mut pairs = match query.as_deref().filter(|q| !q.is_empty()) {
            Some(_) if !state.config.query_params => {
                return Err(OAuthError::invalid_request("parameters must be sent in the request body").into())
            }
            Some(q) => url::form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
            None => Vec::new(),
        };
        pairs.extend(body_pairs(&headers, body).await?);
        Ok(OAuthParams(one_map(pairs)?))
    }
}

fn one_map(pairs: Vec<(String, String)>) -> Result<Params, OAuthError> {
    let mut map = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        if map.contains_key(&k) {
            let name: String = k.chars().take(40).collect();
            return Err(OAuthError::invalid_request(format!("parameter {name} was sent more than once")));
        }
        map.insert(k, v);
    }
    Ok(Params::from_map(map))
}

/// The body's pairs, by its media type; an empty body has none whatever its type.
pub async fn body_pairs(headers: &HeaderMap, body: Bytes) -> Result<Vec<(String, String)>, OAuthError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/x-www-form-urlencoded" => Ok(url::form_urlencoded::parse(&body).into_owned().collect()),
        "application/json" => json_pairs(&body),
        "multipart/form-data" => multipart_pairs(ct, body).await,
        _ => Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded, multipart/form-data or application/json",
        )),
    }
}

fn json_pairs(body: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    serde_json::from_slice::<Pairs>(body)
        .map(|p| p.0)
        .map_err(|_| OAuthError::invalid_request("the JSON body must be an object of strings and numbers"))
}

async fn multipart_pairs(content_type: &str, body: Bytes) -> Result<Vec<(String, String)>, OAuthError> {
    let bad = || OAuthError::invalid_request("malformed multipart/form-data body");
    let boundary = multer::parse_boundary(content_type).map_err(|_| bad())?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut pairs = Vec::new();
    while let Some(field) = parts.next_field().await.map_err(|_| bad())? {
        let name = field.name().ok_or_else(bad)?.to_string();
        pairs.push((name, field.text().await.map_err(|_| bad())?));
    }
    Ok(pairs)
}

/// A JSON object read pair by pair: serde_json's own map would keep the last of two
/// equal keys without a word.
struct Pairs(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut pairs = Vec::new();
                while let Some((k, Scalar(v))) = map.next_entry::<String, Scalar>()? {
                    pairs.push((k, v));
                }
                Ok(Pairs(pairs))
            }
        }
        d.deserialize_map(Object)
    }
}

/// A string or a number, as text; anything else (null, bool, array, object) is refused.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_type(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        h
    }

    async fn pairs(ct: &str, body: &str) -> Result<Vec<(String, String)>, OAuthError> {
        body_pairs(&with_type(ct), Bytes::from(body.to_string())).await
    }

    #[tokio::test]
    async fn json_takes_strings_and_numbers_only() {
        let p = pairs("application/json; charset=utf-8", r#"{"a":"x","n":3}"#).await.unwrap();
        assert_eq!(p, vec![("a".into(), "x".into()), ("n".into(), "3".into())]);
        for bad in [r#"{"a":null}"#, r#"{"a":true}"#, r#"{"a":[1]}"#, r#"{"a":{}}"#, "[1]", "{"] {
            assert!(pairs("application/json", bad).await.is_err(), "{bad}");
        }
        let twice = pairs("application/json", r#"{"a":"1","a":"2"}"#).await.unwrap();
        assert!(one_map(twice).is_err(), "a key twice in JSON is caught");
    }

    #[tokio::test]
    async fn multipart_fields_are_read() {
        let body = "--XX\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\nabc\r\n--XX--\r\n";
        let p = pairs("multipart/form-data; boundary=XX", body).await.unwrap();
        assert_eq!(p, vec![("client_id".into(), "abc".into())]);
        assert!(pairs("multipart/form-data", body).await.is_err(), "no boundary");
        assert!(pairs("multipart/form-data; boundary=YY", body).await.is_err());
    }

    #[tokio::test]
    async fn other_types_are_refused_and_empty_bodies_are_nothing() {
        assert!(pairs("text/plain", "a=1").await.is_err());
        assert!(pairs("", "a=1").await.is_err());
        assert!(pairs("text/plain", "").await.unwrap().is_empty());
    }
}
