//! The axum side: a middleware that authenticates, one that requires a scope, and an
//! extractor for handlers.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::GuardError;
use crate::token_source::{body_may_carry_token, from_header, from_pairs, from_query};
use crate::{Guard, TokenInfo};

/// Form bodies larger than this are not searched for a token.
const MAX_FORM: usize = 64 * 1024;

/// Authenticates the request and stores its [`TokenInfo`] for [`Token`] and
/// [`require_scope`]. Requests without a token are refused with 401.
pub async fn authenticate(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    match check(&guard, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn check(guard: &Guard, req: Request) -> Result<Request, GuardError> {
    let mut found: Vec<String> = Vec::new();
    found.extend(from_header(req.headers())?);
    let in_query = from_query(req.uri())?;
    if in_query.is_some() && !guard.allow_query_tokens {
        return Err(GuardError::InvalidRequest("access tokens are not accepted in the query string".into()));
    }
    found.extend(in_query);

    let mut req = req;
    if body_may_carry_token(req.method(), req.headers()) {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_FORM)
            .await
            .map_err(|_| GuardError::InvalidRequest("the form body is too large".into()))?;
        found.extend(from_pairs(&bytes)?);
        req = Request::from_parts(parts, Body::from(bytes));
    }

    let token = match found.len() {
        0 => return Err(GuardError::Missing),
        1 => found.remove(0),
        _ => return Err(GuardError::InvalidRequest("send the access token one way only".into())),
    };
    let info = guard.verifier.verify(&token).await?;
    if let Some(client_id) = req.headers().get("client-id") {
        if client_id.as_bytes() != info.client_id.as_bytes() {
            return Err(GuardError::InvalidToken("the Client-Id header does not match the token's client".into()));
        }
    }
    req.extensions_mut().insert(info);
    Ok(req)
}

/// Refuses the request with 403 `insufficient_scope` unless its token has `scope`.
/// Use with `route_layer(from_fn_with_state("scope_name", require_scope))`.
pub async fn require_scope(State(scope): State<&'static str>, req: Request, next: Next) -> Response {
    match req.extensions().get::<TokenInfo>() {
        None => GuardError::Missing.into_response(),
        Some(t) if !t.has_scope(scope) => GuardError::InsufficientScope(scope.to_string()).into_response(),
        Some(_) => next.run(req).await,
    }
}

/// The checked token, for handlers behind [`authenticate`].
#[derive(Debug, Clone)]
pub struct Token(pub TokenInfo);

impl<S: Send + Sync> FromRequestParts<S> for Token {
    type Rejection = GuardError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<TokenInfo>().cloned().map(Token).ok_or(GuardError::Missing)
    }
}
