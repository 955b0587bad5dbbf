//! The authorization code flow for a native app (RFC 8252): a one-shot HTTP listener on
//! the loopback address receives the redirect, PKCE protects the code.

use std::borrow::Cow;
use std::time::Duration;

use oauth2::{AuthorizationCode, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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

/// The landing page the browser gets from the listener, in the server's own stylesheet.
fn landing_page(issuer: &str, title: &str, text: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t} · Gatehouse</title>\
         <link rel=\"stylesheet\" href=\"{css}\"></head><body><header class=\"top\"><span class=\"brand\">Gatehouse</span></header>\
         <main class=\"card\"><h1>{t}</h1><p id=\"outcome\">{x}</p></main></body></html>",
        t = escape(title),
        x = escape(text),
        css = escape(&format!("{}/static/style.css", issuer.trim_end_matches('/'))),
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn reply(status: &str, body: &str) -> String {
    format!("HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}

pub(crate) async fn user_token(
    gh: &Gatehouse,
    oauth: &OAuthClient,
    http: &reqwest::Client,
    scopes: Vec<Scope>,
    options: LoopbackOptions,
    open: impl FnOnce(&str),
) -> Result<TokenSet, ClientError> {
    let listener = TcpListener::bind(("127.0.0.1", options.port)).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => ClientError::PortInUse(options.port),
        _ => ClientError::Other(format!("cannot listen on port {}: {e}", options.port)),
    })?;
    let port = listener.local_addr().map_err(|e| ClientError::Other(e.to_string()))?.port();
    let redirect = RedirectUrl::new(format!("http://{}:{port}", options.redirect_host))
        .map_err(|e| ClientError::Other(format!("bad redirect host: {e}")))?;
    // Before anyone is sent to the browser: is the client known, its secret right, and
    // this redirect registered? Each would otherwise show only after the person finished.
    gh.check_client().await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let request = |extra: Option<(&'static str, &'static str)>| {
        let mut r = oauth
            .authorize_url(CsrfToken::new_random)
            .add_scopes(scopes.clone())
            .set_pkce_challenge(challenge.clone())
            .set_redirect_uri(Cow::Borrowed(&redirect));
        if let Some((k, v)) = extra {
            r = r.add_extra_param(k, v);
        }
        r.url()
    };
    let (probe, _) = request(Some(("prompt", "none")));
    check_authorize(http, probe.as_str(), redirect.as_str()).await?;
    let (url, state) = request(options.force_verify.then_some(("force_verify", "true")));
    open(url.as_str());

    let waited = tokio::time::timeout(options.timeout, wait_for_code(&listener, state.secret())).await;
    let (mut stream, code) = match waited {
        Err(_) => {
            return Err(ClientError::Other(format!(
                "timed out after {} s: the browser never came back to {} (was the request approved in the browser?)",
                options.timeout.as_secs(),
                redirect.as_str()
            )))
        }
        Ok(Err((stream, e))) => {
            if let Some(mut s) = stream {
                let page = landing_page(&gh.metadata.issuer, "Not authorized", &format!("{e}. See the terminal."));
                let _ = s.write_all(reply("200 OK", &page).as_bytes()).await;
            }
            return Err(e);
        }
        Ok(Ok(got)) => got,
    };
    let exchanged = oauth
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .set_redirect_uri(Cow::Borrowed(&redirect))
        .request_async(http)
        .await
        .map_err(token_error);
    // "Done" only once the tokens are in hand: the exchange can fail too.
    let page = match &exchanged {
        Ok(_) => landing_page(&gh.metadata.issuer, "Done", "You can close this window and go back to the terminal."),
        Err(e) => landing_page(&gh.metadata.issuer, "Not authorized", &format!("Getting the tokens failed: {e}. See the terminal.")),
    };
    let _ = stream.write_all(reply("200 OK", &page).as_bytes()).await;
    let _ = stream.shutdown().await;
    Ok(TokenSet::from_response(&exchanged?, None))
}

/// Asks the authorization endpoint about the request with `prompt=none`, following no
/// redirect: Gatehouse answers a bad client or redirect URI with a page (400), and a bad
/// scope with a redirect carrying the error; a good request comes back as
/// `login_required` (this HTTP client has no session).
async fn check_authorize(http: &reqwest::Client, url: &str, redirect: &str) -> Result<(), ClientError> {
    let res = http.get(url).send().await.map_err(|e| ClientError::Network(e.without_url().to_string()))?;
    if res.status().is_redirection() {
        let location = res.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()).unwrap_or("").to_string();
        let Ok(to) = url::Url::parse(&location) else { return Ok(()) };
        let param = |k: &str| to.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
        return match param("error") {
            Some(e) if !matches!(e.as_str(), "login_required" | "consent_required" | "interaction_required" | "account_selection_required") => {
                Err(ClientError::Server { error: e, description: param("error_description").unwrap_or_default() })
            }
            _ => Ok(()),
        };
    }
    if res.status().is_client_error() {
        let page = res.text().await.unwrap_or_default();
        // The reason is the page's alert paragraph.
        let reason = page
            .split_once("role=\"alert\">")
            .and_then(|(_, rest)| rest.split_once('<'))
            .map(|(text, _)| text.replace("&#x27;", "'").replace("&quot;", "\"").replace("&amp;", "&"))
            .unwrap_or_else(|| "the server refused the authorization request".into());
        return Err(ClientError::Rejected { reason, redirect: redirect.to_string() });
    }
    Ok(())
}

/// Answers requests on the listener until one brings our `state` with a code or an
/// error. Other requests (a favicon, a stray visit) get a 404 and are ignored. The
/// connection that brought the code is handed back, still open, for the final page.
async fn wait_for_code(listener: &TcpListener, expected_state: &str) -> Result<(TcpStream, String), (Option<TcpStream>, ClientError)> {
    loop {
        let (mut stream, _) = listener.accept().await.map_err(|e| (None, ClientError::Other(e.to_string())))?;
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
        let Some(state) = get("state") else {
            let _ = stream.write_all(reply("404 Not Found", "").as_bytes()).await;
            continue;
        };
        // Compared in constant time: state is the flow's CSRF secret.
        if !bool::from(subtle::ConstantTimeEq::ct_eq(state.as_bytes(), expected_state.as_bytes())) {
            return Err((Some(stream), ClientError::Other("the redirect carried the wrong state; possible CSRF, giving up".into())));
        }
        if let Some(error) = get("error") {
            return Err((Some(stream), ClientError::Server { error, description: get("error_description").unwrap_or_default() }));
        }
        let Some(code) = get("code") else {
            return Err((Some(stream), ClientError::Other("the redirect carried no code".into())));
        };
        return Ok((stream, code));
    }
}
