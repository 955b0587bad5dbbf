//! The authorization code flow for a native app (RFC 8252): a one-shot HTTP listener on
//! the loopback address receives the redirect, PKCE protects the code.

use std::borrow::Cow;
use std::time::Duration;

use oauth2::{AuthorizationCode, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{token_error, ClientError, Gatehouse, OAuthClient, TokenSet};

#[derive(Debug, Clone)]
pub struct LoopbackOptions {
    /// Port for the redirect listener (Twitch's CLI uses 3000). 0 picks a free one.
    pub port: u16,
    /// Host name in the redirect URI: it must match the registered one.
    pub redirect_host: String,
    /// How long to wait for the person to finish in the browser.
    pub timeout: Duration,
    /// Show the consent page even if the user granted these scopes before.
    pub force_verify: bool,
}

impl Default for LoopbackOptions {
    fn default() -> Self {
        LoopbackOptions { port: 3000, redirect_host: "localhost".into(), timeout: Duration::from_secs(300), force_verify: false }
    }
}

const DONE_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Gatehouse</title><p>Done: you can close this window and go back to the terminal.</p>";
const FAILED_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Gatehouse</title><p>The authorization did not succeed. See the terminal.</p>";

pub(crate) async fn user_token(
    _gh: &Gatehouse,
    oauth: &OAuthClient,
    http: &reqwest::Client,
    scopes: Vec<Scope>,
    options: LoopbackOptions,
    open: impl FnOnce(&str),
) -> Result<TokenSet, ClientError> {
    let listener = TcpListener::bind(("127.0.0.1", options.port))
        .await
        .map_err(|e| ClientError::Other(format!("cannot listen on port {}: {e}", options.port)))?;
    let port = listener.local_addr().map_err(|e| ClientError::Other(e.to_string()))?.port();
    let redirect = RedirectUrl::new(format!("http://{}:{port}", options.redirect_host))
        .map_err(|e| ClientError::Other(format!("bad redirect host: {e}")))?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = oauth
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scopes)
        .set_pkce_challenge(challenge)
        .set_redirect_uri(Cow::Borrowed(&redirect));
    if options.force_verify {
        request = request.add_extra_param("force_verify", "true");
    }
    let (url, state) = request.url();
    open(url.as_str());

    let code = tokio::time::timeout(options.timeout, wait_for_code(&listener, state.secret()))
        .await
        .map_err(|_| ClientError::Other("timed out waiting for the browser".into()))??;
    let r = oauth
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .set_redirect_uri(Cow::Borrowed(&redirect))
        .request_async(http)
        .await
        .map_err(token_error)?;
    Ok(TokenSet::from_response(&r, None))
}

/// Answers requests on the listener until one brings our `state` with a code or an
/// error. Other requests (a favicon, a stray visit) get a 404 and are ignored.
async fn wait_for_code(listener: &TcpListener, expected_state: &str) -> Result<String, ClientError> {
    loop {
        let (mut stream, _) = listener.accept().await.map_err(|e| ClientError::Other(e.to_string()))?;
        let mut buf = vec![0u8; 8192];
        let mut len = 0;
        // Only the request line matters; read until the end of the head or the buffer.
        while len < buf.len() {
            match stream.read(&mut buf[len..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    len += n;
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
        let head = String::from_utf8_lossy(&buf[..len]);
        let target = head.split_whitespace().nth(1).unwrap_or("/");
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
        let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let reply = |status: &str, body: &str| {
            format!("HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        };
        let Some(state) = get("state") else {
            let _ = stream.write_all(reply("404 Not Found", "").as_bytes()).await;
            continue;
        };
        // Compared in constant time: state is the flow's CSRF secret.
        if !bool::from(subtle::ConstantTimeEq::ct_eq(state.as_bytes(), expected_state.as_bytes())) {
            let _ = stream.write_all(reply("400 Bad Request", FAILED_PAGE).as_bytes()).await;
            return Err(ClientError::Other("the redirect carried the wrong state; possible CSRF, giving up".into()));
        }
        if let Some(error) = get("error") {
            let _ = stream.write_all(reply("200 OK", FAILED_PAGE).as_bytes()).await;
            return Err(ClientError::Server { error, description: get("error_description").unwrap_or_default() });
        }
        let Some(code) = get("code") else {
            let _ = stream.write_all(reply("400 Bad Request", FAILED_PAGE).as_bytes()).await;
            return Err(ClientError::Other("the redirect carried no code".into()));
        };
        let _ = stream.write_all(reply("200 OK", DONE_PAGE).as_bytes()).await;
        return Ok(code);
    }
}
