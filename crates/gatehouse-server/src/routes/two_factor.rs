//! Two-factor sign-in (TOTP, RFC 6238): `/settings/2fa` to turn it on (a QR code of the
//! otpauth URI, rendered here, confirmed with a code, then ten recovery codes shown once)
//! and off (password and code), the sign-in step that asks for a code after the
//! password, and the gate that keeps the console to accounts with it when
//! `console_requires_2fa` is set.
//!
//! Nothing half-done is stored: a secret being set up travels in the form as a note
//! sealed by the keyring, and a sign-in between password and code is a sealed note tied
//! to the browser's cookie. Only a confirmed secret is stored, sealed.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_core::model::{TwoFactor, User};
use gatehouse_core::secret::hash_secret;
use gatehouse_core::totp;
use subtle::ConstantTimeEq;

use super::account::{signed_in, when};
use super::forms::{posted_form, unavailable, with_cookie};
use gatehouse_core::events::EventKind;

use crate::audit;
use crate::error::AppError;
use crate::params::Params;
use crate::rate_limit::Peer;
use crate::session::Visitor;
use crate::{password_budget, AppState};

const SETUP_PURPOSE: &str = "2fa-setup";
const PENDING_PURPOSE: &str = "2fa-pending";
/// How long a QR code shown for setup may be confirmed.
const SETUP_TTL: i64 = 15 * 60;
/// How long a sign-in may wait between the password and the code.
const PENDING_TTL: i64 = 5 * 60;

/// What the stored secret is bound to: its user.
fn bound_to(user_id: &str) -> String {
    format!("totp:{user_id}")
}

/// Ties a note to the password: a password change voids a half-done sign-in.
fn password_tag(user: &User) -> String {
    hash_secret(&user.password_hash)[..16].to_string()
}

/// The label of this server in authenticator apps: its host.
fn issuer_label(state: &AppState) -> String {
    let host = url::Url::parse(&state.config.issuer).ok().and_then(|u| {
        u.host_str().map(|h| match u.port() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_string(),
        })
    });
    host.unwrap_or_else(|| "Gatehouse".into())
}

/// The QR code of `text` as inline SVG (no external service, no script).
fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let svg = code.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).quiet_zone(true).build();
    // Inline in HTML: the XML declaration goes.
    Some(svg[svg.find("<svg")?..].to_string())
}

/// What came of checking a code (or recovery code) presented for `user`.
pub(crate) enum CodeCheck {
    Accepted,
    Refused,
}

/// Checks a six-digit code (accepted once: its step must be newer than the last used)
/// or a recovery code (used up). The caller has taken the password budget.
pub(crate) async fn check_code(state: &AppState, user: &User, presented: &str) -> Result<CodeCheck, Response> {
    let store = &state.auth.store;
    let record = match store.find_two_factor(&user.id).await {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(CodeCheck::Refused),
        Err(e) => return Err(AppError::page(e).into_response()),
    };
    let now = state.auth.now();
    let accepted = if totp::looks_like_code(presented).is_some() {
        let Some(keyring) = state.auth.keyring.as_ref() else { return Err(unavailable()) };
        let secret = keyring.open_stored(&record.secret_sealed, &bound_to(&user.id)).map_err(|e| {
            tracing::error!(error = %e, "cannot open a two-factor secret");
            unavailable()
        })?;
        let Some(key) = totp::secret_bytes(&secret) else { return Err(unavailable()) };
        match totp::matching_step(&key, presented, now, record.last_step) {
            Some(step) => store.claim_totp_step(&user.id, step).await.map_err(|e| AppError::page(e).into_response())?,
            None => false,
        }
    } else if let Some(digest) = totp::recovery_code_digest(presented) {
        store.use_recovery_code(&user.id, &digest, now).await.map_err(|e| AppError::page(e).into_response())?
    } else {
        false
    };
    if !accepted {
        tracing::info!("two-factor code refused");
    }
    Ok(if accepted { CodeCheck::Accepted } else { CodeCheck::Refused })
}

/// Whether the user has two-factor sign-in on.
pub(crate) async fn is_on(state: &AppState, user_id: &str) -> Result<bool, Response> {
    state.auth.store.find_two_factor(user_id).await.map(|t| t.is_some()).map_err(|e| AppError::page(e).into_response())
}

// ---- Sign-in: the step after the password ----

fn code_page(state: &AppState, v: &Visitor, next: &str, login: &str, pending: &str, error: Option<&str>, status: StatusCode) -> Response {
    let ctx = minijinja::context! { csrf => v.csrf_token(), next, login, pending, error, user => v.user().map(|u| u.login.clone()) };
    with_cookie(state.pages.render("login_code.html", status, ctx), v)
}

/// The password was right and the account has two-factor on: ask for a code. The
/// half-done sign-in is a sealed note naming the user, when, this browser, and the
/// password it was given under.
pub(crate) fn ask_code(state: &AppState, v: &Visitor, user: &User, next: &str) -> Response {
    let Some(keyring) = state.auth.keyring.as_ref() else { return unavailable() };
    let note = format!("{}|{}|{}|{}", user.id, state.auth.now(), v.binding(), password_tag(user));
    let pending = keyring.seal_note(&note, PENDING_PURPOSE);
    code_page(state, v, next, &user.login, &pending, None, StatusCode::OK)
}

/// The user a pending note names, if it is genuine, fresh, of this browser, and the
/// password has not changed since.
async fn pending_user(state: &AppState, v: &Visitor, pending: &str) -> Result<Option<User>, Response> {
    let Some(note) = state.auth.keyring.as_ref().and_then(|k| k.open_note(pending, PENDING_PURPOSE)) else { return Ok(None) };
    let mut parts = note.split('|');
    let (Some(user_id), Some(issued), Some(binding), Some(tag)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Ok(None);
    };
    let fresh = issued.parse::<i64>().is_ok_and(|t| state.auth.now() - t < PENDING_TTL);
    if !fresh || !bool::from(binding.as_bytes().ct_eq(v.binding().as_bytes())) {
        return Ok(None);
    }
    match state.auth.store.find_user(user_id).await {
        Ok(Some(u)) if bool::from(password_tag(&u).as_bytes().ct_eq(tag.as_bytes())) => Ok(Some(u)),
        Ok(_) => Ok(None),
        Err(e) => Err(AppError::page(e).into_response()),
    }
}

/// `POST /login` with `pending` and `code`: the second step of a sign-in.
pub(crate) async fn second_step(state: &AppState, peer: Peer, headers: &HeaderMap, p: &Params, v: Visitor) -> Response {
    let next = super::forms::safe_next(p.get("next"));
    let pending = p.get("pending").unwrap_or("");
    let user = match pending_user(state, &v, pending).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            let msg = "That sign-in took too long or was started elsewhere. Enter your password again.";
            return super::sign_in::login_page(state, &v, &next, "", Some(msg), StatusCode::UNAUTHORIZED).await;
        }
        Err(r) => return r,
    };
    // Codes are guessed like passwords: the same budgets hold them.
    if let Err(t) = password_budget::take(state, headers, peer.0, &user.login, Some(&user)).await {
        let mut res = code_page(state, &v, &next, &user.login, pending, Some(&t.message), StatusCode::TOO_MANY_REQUESTS);
        t.add_headers(&mut res);
        return res;
    }
    match check_code(state, &user, p.get("code").unwrap_or("")).await {
        Ok(CodeCheck::Accepted) => super::sign_in::finish_sign_in(state, headers, peer.0, v, user, &next, true).await,
        Ok(CodeCheck::Refused) => {
            let failed = audit::event(state, EventKind::TwoFactorFailed, headers, peer.0).subject(&user).detail("sign-in");
            audit::record(state, failed).await;
            let msg = Some("That code is not right, or it was used already. Wait for the next one and try again.");
            code_page(state, &v, &next, &user.login, pending, msg, StatusCode::UNAUTHORIZED)
        }
        Err(r) => r,
    }
}

// ---- /settings/2fa ----

#[derive(Default)]
struct Messages<'a> {
    error: Option<&'a str>,
    notice: Option<&'a str>,
}

/// The page for a user with two-factor on: its state and the form that turns it off.
fn enabled_page(state: &AppState, v: &Visitor, t: &TwoFactor, m: Messages<'_>, status: StatusCode) -> Response {
    let ctx = minijinja::context! {
        enabled => true, since => when(t.enabled_at), recovery_left => t.recovery_codes_left,
        csrf => v.csrf_token(), error => m.error, notice => m.notice, user => v.user().map(|u| u.login.clone()),
    };
    state.pages.render("two_factor.html", status, ctx)
}

/// The setup page for `secret`: QR code, key, and the form to confirm it with a code.
fn setup_page(state: &AppState, v: &Visitor, user: &User, secret: &str, m: Messages<'_>, status: StatusCode) -> Response {
    let Some(keyring) = state.auth.keyring.as_ref() else { return unavailable() };
    let uri = totp::otpauth_uri(&issuer_label(state), &user.login, secret);
    let setup = keyring.seal_note(&format!("{}|{}|{}", user.id, secret, state.auth.now()), SETUP_PURPOSE);
    let shown: Vec<&str> = secret.as_bytes().chunks(4).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    let ctx = minijinja::context! {
        enabled => false, qr => qr_svg(&uri).unwrap_or_default(), uri, secret => shown.join(" "), setup,
        csrf => v.csrf_token(), error => m.error, notice => m.notice, user => Some(user.login.clone()),
    };
    state.pages.render("two_factor.html", status, ctx)
}

fn no_keyring(state: &AppState) -> Response {
    state.pages.error(StatusCode::SERVICE_UNAVAILABLE, "Two-factor sign-in is not available", "This server has no key to keep two-factor secrets with.")
}

async fn settings_page(state: &AppState, v: &Visitor, m: Messages<'_>) -> Response {
    let Some(user) = v.user() else { return unavailable() };
    if state.auth.keyring.is_none() {
        return no_keyring(state);
    }
    match state.auth.store.find_two_factor(&user.id).await {
        Ok(Some(t)) => enabled_page(state, v, &t, m, StatusCode::OK),
        Ok(None) => setup_page(state, v, user, &totp::new_secret(), m, StatusCode::OK),
        Err(e) => AppError::page(e).into_response(),
    }
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers, "/settings/2fa").await {
        Ok(v) => settings_page(&state, &v, Messages::default()).await,
        Err(r) => r,
    }
}

/// The secret a setup note carries, if it is genuine, this user's, and fresh.
fn setup_secret(state: &AppState, user: &User, setup: &str) -> Option<String> {
    let note = state.auth.keyring.as_ref()?.open_note(setup, SETUP_PURPOSE)?;
    let mut parts = note.split('|');
    let (user_id, secret, issued) = (parts.next()?, parts.next()?, parts.next()?.parse::<i64>().ok()?);
    (user_id == user.id && state.auth.now() - issued < SETUP_TTL).then(|| secret.to_string())
}

/// `POST /settings/2fa`: confirms the secret shown with a code and turns two-factor on.
pub async fn enable(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    let (p, v) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let Some(user) = v.user().cloned() else { return Redirect::to("/login?next=%2Fsettings%2F2fa").into_response() };
    let Some(keyring) = state.auth.keyring.clone() else { return no_keyring(&state) };
    let Some(secret) = setup_secret(&state, &user, p.get("setup").unwrap_or("")) else {
        let error = Some("That setup expired. Scan this new code and try again.");
        return settings_page(&state, &v, Messages { error, notice: None }).await;
    };
    if let Err(t) = password_budget::take(&state, &headers, peer, &user.login, Some(&user)).await {
        let mut res = setup_page(&state, &v, &user, &secret, Messages { error: Some(&t.message), notice: None }, StatusCode::TOO_MANY_REQUESTS);
        t.add_headers(&mut res);
        return res;
    }
    let now = state.auth.now();
    let step = totp::secret_bytes(&secret).and_then(|key| totp::matching_step(&key, p.get("code").unwrap_or(""), now, 0));
    let Some(step) = step else {
        let error = Some("That code is not right. Check the time on your phone, and type the code the app shows now.");
        return setup_page(&state, &v, &user, &secret, Messages { error, notice: None }, StatusCode::UNAUTHORIZED);
    };
    let codes = totp::new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|(_, h)| h.clone()).collect();
    let record = TwoFactor {
        user_id: user.id.clone(),
        secret_sealed: keyring.seal_stored(&secret, &bound_to(&user.id)),
        last_step: step,
        enabled_at: now,
        recovery_codes_left: hashes.len() as i64,
    };
    match state.auth.store.enable_two_factor(&record, &hashes).await {
        Ok(true) => {
            tracing::info!("two-factor sign-in turned on");
            audit::record(&state, audit::event(&state, EventKind::TwoFactorEnabled, &headers, peer).actor(&user)).await;
            let shown: Vec<String> = codes.into_iter().map(|(c, _)| c).collect();
            let ctx = minijinja::context! { codes => shown, user => Some(user.login.clone()) };
            state.pages.render("two_factor_codes.html", StatusCode::OK, ctx)
        }
        // On already (another tab): this secret was not stored.
        Ok(false) => settings_page(&state, &v, Messages { error: Some("Two-factor sign-in was already on."), notice: None }).await,
        Err(e) => AppError::page(e).into_response(),
    }
}

/// `POST /settings/2fa/disable`: the password and a code turn two-factor off.
pub async fn disable(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    let (p, v) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let Some(user) = v.user().cloned() else { return Redirect::to("/login?next=%2Fsettings%2F2fa").into_response() };
    let record = match state.auth.store.find_two_factor(&user.id).await {
        Ok(Some(r)) => r,
        Ok(None) => return settings_page(&state, &v, Messages { error: None, notice: Some("Two-factor sign-in is off.") }).await,
        Err(e) => return AppError::page(e).into_response(),
    };
    match confirm_identity(&state, &headers, peer, &user, &p, true).await {
        Ok(Confirmed::Yes) => {}
        Ok(Confirmed::No(msg, status)) => return enabled_page(&state, &v, &record, Messages { error: Some(msg), notice: None }, status),
        Ok(Confirmed::Throttled(t)) => {
            let mut res = enabled_page(&state, &v, &record, Messages { error: Some(&t.message), notice: None }, StatusCode::TOO_MANY_REQUESTS);
            t.add_headers(&mut res);
            return res;
        }
        Err(r) => return r,
    }
    match state.auth.store.disable_two_factor(&user.id).await {
        Ok(_) => {
            tracing::info!("two-factor sign-in turned off");
            audit::record(&state, audit::event(&state, EventKind::TwoFactorDisabled, &headers, peer).actor(&user)).await;
            settings_page(&state, &v, Messages { error: None, notice: Some("Two-factor sign-in is off. Your recovery codes no longer work.") }).await
        }
        Err(e) => AppError::page(e).into_response(),
    }
}

/// What came of asking a signed-in user to prove it is them again.
pub(crate) enum Confirmed {
    Yes,
    /// What is wrong, and the status to answer with.
    No(&'static str, StatusCode),
    Throttled(password_budget::Throttled),
}

/// A fresh confirmation for a sensitive action: the form's `password` and, when the
/// user has two-factor on (or `code_required`), its `code`. One take of the password
/// budget covers both; the code is only checked (and used up) once the password is right.
pub(crate) async fn confirm_identity(state: &AppState, headers: &HeaderMap, peer: Option<std::net::SocketAddr>, user: &User, p: &Params, code_required: bool) -> Result<Confirmed, Response> {
    let needs_code = code_required || is_on(state, &user.id).await?;
    if let Err(t) = password_budget::take(state, headers, peer, &user.login, Some(user)).await {
        return Ok(Confirmed::Throttled(t));
    }
    let password = p.get("password").unwrap_or("").to_string();
    if !state.verify_password(password, user.password_hash.clone()).await {
        return Ok(Confirmed::No("The password is not right.", StatusCode::UNAUTHORIZED));
    }
    if needs_code {
        match check_code(state, user, p.get("code").unwrap_or("")).await? {
            CodeCheck::Accepted => {}
            CodeCheck::Refused => {
                let failed = audit::event(state, EventKind::TwoFactorFailed, headers, peer).actor(user).detail("confirmation");
                audit::record(state, failed).await;
                return Ok(Confirmed::No("The code is not right, or it was used already.", StatusCode::UNAUTHORIZED));
            }
        }
    }
    Ok(Confirmed::Yes)
}

// ---- The console's gate ----

/// With `console_requires_2fa`, a signed-in user without two-factor sign-in is sent to
/// set it up instead of reaching the console. Visitors not signed in go on, to be asked
/// to sign in by the console itself.
pub async fn console_gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.config.console_requires_2fa {
        return next.run(req).await;
    }
    let Ok(v) = Visitor::load(&state, req.headers()).await else { return unavailable() };
    if let Some(user) = v.user() {
        match is_on(&state, &user.id).await {
            Ok(true) => {}
            Ok(false) => {
                let ctx = minijinja::context! { user => Some(user.login.clone()) };
                return state.pages.render("needs_2fa.html", StatusCode::FORBIDDEN, ctx);
            }
            Err(r) => return r,
        }
    }
    next.run(req).await
}
