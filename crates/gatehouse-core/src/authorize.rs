//! The authorization endpoint (RFC 6749 §4.1.1, §4.2.1): validating the request,
//! deciding whether consent must be asked, and answering with a code or a token.

use url::Url;

use crate::authority::Authority;
use crate::error::{ErrorCode, OAuthError};
use crate::grant::{mint, Refresh};
use crate::model::{AuthorizationCode, Client, ClientKind};
use crate::pkce;
use crate::redirect::match_registered;
use crate::scope::ScopeSet;
use crate::secret::{new_token, token_key};

/// The authorize request's parameters as they arrived.
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub force_verify: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    pub include_granted_scopes: Option<String>,
    pub prompt: Option<String>,
    /// OpenID Connect: the most seconds since the user last typed their password.
    pub max_age: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    Code,
    /// The implicit grant: the token goes in the URL fragment.
    Token,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    None,
    Login,
    Consent,
}

/// A request that passed every check: it names a real client, a registered redirect URI
/// and known scopes.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub client: Client,
    pub response_type: ResponseType,
    pub redirect: RedirectTarget,
    pub scopes: ScopeSet,
    pub nonce: Option<String>,
    pub code_challenge: Option<(String, pkce::Method)>,
    pub force_verify: bool,
    pub include_granted_scopes: bool,
    pub prompt: Option<Prompt>,
    pub max_age: Option<i64>,
}

/// Where the answer goes: the redirect URI, with `state`, in the query (code) or the
/// fragment (token).
#[derive(Debug, Clone)]
pub struct RedirectTarget {
    pub uri: String,
    /// The request named the URI; false when the sole registered one was used.
    pub given: bool,
    pub state: Option<String>,
    pub fragment: bool,
    /// Sent as `iss` with every answer (RFC 9207), so a client talking to several
    /// servers can tell which one answered (the mix-up defense of RFC 9700 §4.4).
    pub issuer: String,
}

impl RedirectTarget {
    pub fn with(&self, params: &[(&str, &str)]) -> String {
        let mut url = match Url::parse(&self.uri) {
            Ok(u) => u,
            // Registered URIs were parsed at registration; this cannot happen.
            Err(_) => return self.uri.clone(),
        };
        let state = self.state.as_deref().map(|s| ("state", s));
        let all = params.iter().copied().chain(state).chain([("iss", self.issuer.as_str())]);
        if self.fragment {
            let frag = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(all).finish();
            url.set_fragment(Some(&frag));
        } else {
            url.query_pairs_mut().extend_pairs(all);
        }
        url.into()
    }

    pub fn error(&self, e: &OAuthError) -> String {
        self.with(&[("error", e.code.as_str()), ("error_description", &e.description)])
    }
}

#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or redirect URI can't be trusted: show an error page, never redirect
    /// (RFC 6749 §4.1.2.1).
    Page(OAuthError),
    /// Tell the client, at its redirect URI.
    Redirect(RedirectTarget, OAuthError),
}

impl AuthorizeError {
    pub fn oauth(&self) -> &OAuthError {
        match self {
            AuthorizeError::Page(e) | AuthorizeError::Redirect(_, e) => e,
        }
    }
}

fn flag(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true") | Some("1"))
}

pub async fn validate(auth: &Authority, p: &AuthorizeParams) -> Result<AuthorizeRequest, AuthorizeError> {
    let page = |e: OAuthError| AuthorizeError::Page(e);
    let client_id =
        p.client_id.as_deref().ok_or_else(|| page(OAuthError::invalid_request("client_id is required")))?;
    if !crate::client_auth::plausible_client_id(client_id) {
        return Err(page(OAuthError::invalid_client("unknown client_id")));
    }
    let client = auth
        .store
        .find_client(client_id)
        .await
        .map_err(|e| page(e.into()))?
        .ok_or_else(|| page(OAuthError::invalid_client("unknown client_id")))?;

    let redirect_uri = match p.redirect_uri.as_deref() {
        Some(r) => match_registered(r, &client.redirect_uris)
            .map(|_| r.to_string())
            .ok_or_else(|| page(OAuthError::invalid_request("redirect_uri is not registered for this client")))?,
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return Err(page(OAuthError::invalid_request("redirect_uri is required"))),
    };

    let response_type = match p.response_type.as_deref() {
        Some("code") => ResponseType::Code,
        Some("token") => ResponseType::Token,
        _ => {
            let target = RedirectTarget {
                uri: redirect_uri,
                given: p.redirect_uri.is_some(),
                state: p.state.clone(),
                fragment: false,
                issuer: auth.issuer.trim_end_matches('/').to_string(),
            };
            return Err(AuthorizeError::Redirect(
                target,
                OAuthError::new(ErrorCode::UnsupportedResponseType, "response_type must be code or token"),
            ));
        }
    };
    let redirect = RedirectTarget {
        uri: redirect_uri,
        given: p.redirect_uri.is_some(),
        state: p.state.clone(),
        fragment: response_type == ResponseType::Token,
        issuer: auth.issuer.trim_end_matches('/').to_string(),
    };
    let back = |e: OAuthError| AuthorizeError::Redirect(redirect.clone(), e);

    if response_type == ResponseType::Token && !client.allow_implicit {
        return Err(back(OAuthError::unauthorized_client("the implicit grant is not enabled for this client")));
    }
    let scopes = auth.catalog.parse(p.scope.as_deref()).map_err(back)?;
    if scopes.contains(crate::oidc::OPENID) && auth.keyring.is_none() {
        return Err(back(OAuthError::invalid_scope("OpenID Connect is not configured on this server")));
    }

    let code_challenge = match (response_type, p.code_challenge.as_deref()) {
        (ResponseType::Code, Some(c)) => {
            let m = pkce::check_challenge(c, p.code_challenge_method.as_deref(), auth.policy.allow_plain_pkce)
                .map_err(back)?;
            Some((c.to_string(), m))
        }
        (ResponseType::Code, None) if client.kind == ClientKind::Public => {
            return Err(back(OAuthError::invalid_request("code_challenge is required for public clients (PKCE)")));
        }
        _ => None,
    };
    // The nonce is stored with the code: bound its size and keep it printable.
    if p.nonce.as_deref().is_some_and(|n| n.len() > 512 || n.chars().any(char::is_control)) {
        return Err(back(OAuthError::invalid_request("nonce is too long or has control characters")));
    }
    let prompt = match p.prompt.as_deref() {
        None | Some("") => None,
        Some("none") => Some(Prompt::None),
        Some("login") => Some(Prompt::Login),
        Some("consent") => Some(Prompt::Consent),
        Some(_) => return Err(back(OAuthError::invalid_request("prompt must be none, login or consent"))),
    };

    let max_age = match p.max_age.as_deref() {
        None => None,
        Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            back(OAuthError::invalid_request("max_age must be a whole number of seconds"))
        })?),
    };

    Ok(AuthorizeRequest {
        max_age,
        response_type,
        redirect: redirect.clone(),
        scopes,
        nonce: p.nonce.clone(),
        code_challenge,
        force_verify: flag(&p.force_verify),
        include_granted_scopes: flag(&p.include_granted_scopes),
        prompt,
        client,
    })
}

/// Whether the user must be asked, and what they granted this client before.
#[derive(Debug)]
pub struct ConsentState {
    pub must_ask: bool,
    pub previously_granted: ScopeSet,
}

pub async fn consent_state(
    auth: &Authority,
    req: &AuthorizeRequest,
    user_id: &str,
) -> Result<ConsentState, AuthorizeError> {
    let consent = auth
        .store
        .find_consent(user_id, &req.client.id)
        .await
        .map_err(|e| AuthorizeError::Redirect(req.redirect.clone(), e.into()))?;
    // With no consent on record even an empty scope request is asked once.
    let remembered = consent.is_some();
    let previously_granted = consent.map(|c| c.scopes).unwrap_or_default();
    let must_ask = req.force_verify
        || req.prompt == Some(Prompt::Consent)
        || !remembered
        || !req.scopes.is_subset_of(&previously_granted)
        || !identity_assured(req);
    Ok(ConsentState { must_ask, previously_granted })
}

/// Whether the redirect proves which app asks (RFC 8252 §8.6). A confidential client
/// proves itself with its secret at the token endpoint; a public client only by an https
/// redirect on a host it controls. Another program on the user's machine can pose as a
/// native app at a loopback port or a custom scheme, so such a request is asked again,
/// consent on record or not.
fn identity_assured(req: &AuthorizeRequest) -> bool {
    if req.client.kind != ClientKind::Public {
        return true;
    }
    match url::Url::parse(&req.redirect.uri) {
        Ok(uri) => uri.scheme() == "https" && !crate::redirect::is_loopback(&uri),
        Err(_) => false,
    }
}

/// The user allowed the request: on the consent page (`on_record` is None), or by the
/// consent on record that covers it (`on_record` holds its scopes, as `consent_state`
/// read them). Remembers the consent, then answers with a code or token.
/// Returns the URL to send the browser to.
pub async fn approve(
    auth: &Authority,
    req: &AuthorizeRequest,
    user_id: &str,
    auth_time: i64,
    on_record: Option<ScopeSet>,
) -> Result<String, AuthorizeError> {
    let back = |e: OAuthError| AuthorizeError::Redirect(req.redirect.clone(), e);
    let now = auth.now();
    let store = &auth.store;
    // A consent on record that covers the request has nothing to add: no second read and
    // no write (no wait for the disk) on the usual path of a returning user. An answer
    // given on the consent page is always recorded; it also dates the connection.
    let previously = match on_record {
        Some(scopes) => scopes,
        None => {
            let consent = store.find_consent(user_id, &req.client.id).await.map_err(|e| back(e.into()))?;
            store.grant_consent(user_id, &req.client.id, &req.scopes, now).await.map_err(|e| back(e.into()))?;
            consent.map(|c| c.scopes).unwrap_or_default()
        }
    };
    // Incremental authorization: the new grant carries the earlier ones too.
    let scopes = if req.include_granted_scopes { req.scopes.union(&previously) } else { req.scopes.clone() };

    match req.response_type {
        ResponseType::Code => {
            let code = new_token();
            let record = AuthorizationCode {
                code_hash: token_key(&code),
                client_id: req.client.id.clone(),
                user_id: user_id.to_string(),
                redirect_uri: req.redirect.uri.clone(),
                redirect_uri_given: req.redirect.given,
                scopes,
                code_challenge: req.code_challenge.as_ref().map(|(c, _)| c.clone()),
                code_challenge_method: req.code_challenge.as_ref().map(|(_, m)| *m),
                nonce: req.nonce.clone(),
                auth_time,
                created_at: now,
                expires_at: now + auth.policy.code_ttl,
                used: false,
            };
            store.insert_code(&record).await.map_err(|e| back(e.into()))?;
            Ok(req.redirect.with(&[("code", &code)]))
        }
        ResponseType::Token => {
            // RFC 6749 §4.2.2: the implicit grant never issues a refresh token.
            let minted = mint(auth, &req.client, Some(user_id), &scopes, Refresh::None, None).await.map_err(back)?;
            store
                .insert_tokens(&minted.issue, auth.policy.refresh_caps(), now)
                .await
                .map_err(|e| back(e.into()))?;
            let r = &minted.response;
            let expires_in = r.expires_in.to_string();
            let scope = r.scope.to_space_separated();
            Ok(req.redirect.with(&[
                ("access_token", &r.access_token),
                ("token_type", r.token_type),
                ("expires_in", &expires_in),
                ("scope", &scope),
            ]))
        }
    }
}

/// The user refused: RFC 6749 §4.1.2.1 `access_denied`.
pub fn deny(req: &AuthorizeRequest) -> String {
    req.redirect.error(&OAuthError::new(ErrorCode::AccessDenied, "the user denied the request"))
}
