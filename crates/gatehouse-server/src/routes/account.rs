//! A person's own pages: sign-up, connections (authorized apps), password change.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_core::accounts::{self, AccountError};
use gatehouse_core::model::category_label;
use serde::Deserialize;

use gatehouse_core::events::EventKind;

use super::forms::{app_name, next_query, posted_form, safe_next, unavailable, with_cookie};
use crate::audit;
use crate::error::AppError;
use crate::rate_limit::{self, Peer};
use crate::session::Visitor;
use crate::{password_budget, AppState};

/// The signed-in visitor, or a redirect to sign in and come back to `here`.
pub(crate) async fn signed_in(state: &AppState, headers: &HeaderMap, here: &str) -> Result<Visitor, Response> {
    let visitor = Visitor::load(state, headers).await.map_err(|_| unavailable())?;
    if visitor.signed_in.is_none() {
        let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("next", here).finish();
        return Err(with_cookie(Redirect::to(&format!("/login?{q}")).into_response(), &visitor));
    }
    Ok(visitor)
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

async fn signup_page(state: &AppState, v: &Visitor, next: &str, login: &str, email: &str, error: Option<&str>, status: StatusCode) -> Response {
    let ctx = minijinja::context! {
        csrf => v.csrf_token(), next, next_query => next_query(next), app => app_name(state, next).await,
        login, email, error, user => v.user().map(|u| u.login.clone()),
    };
    with_cookie(state.pages.render("signup.html", status, ctx), v)
}

fn signup_off(state: &AppState) -> Response {
    state.pages.error(StatusCode::NOT_FOUND, "Sign-up is closed", "New accounts are made by the administrator of this server.")
}

pub async fn signup_form(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<NextQuery>) -> Response {
    if !state.config.signup_enabled {
        return signup_off(&state);
    }
    let Ok(visitor) = Visitor::load(&state, &headers).await else { return unavailable() };
    signup_page(&state, &visitor, &safe_next(q.next.as_deref()), "", "", None, StatusCode::OK).await
}

pub async fn signup(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    if !state.config.signup_enabled {
        return signup_off(&state);
    }
    let (p, visitor) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let next = safe_next(p.get("next"));
    let (login, email) = (p.get("login").unwrap_or("").trim().to_string(), p.get("email").unwrap_or("").trim().to_string());
    let budget = state.config.rate_limits.login;
    let d = state.take_rate(&format!("signup:{}", state.client_ip(&headers, peer)), budget).await;
    if !d.allowed {
        let mut res = signup_page(&state, &visitor, &next, &login, &email, Some("Too many attempts. Try again in a minute."), StatusCode::TOO_MANY_REQUESTS).await;
        rate_limit::add_headers(res.headers_mut(), budget, &d);
        return res;
    }
    let password = p.get("password").unwrap_or("").to_string();
    let now = state.auth.now();
    let (l, e) = (login.clone(), email.clone());
    let made = tokio::task::spawn_blocking(move || accounts::new_user(&l, &e, &password, now)).await;
    let user = match made {
        Ok(Ok(u)) => u,
        Ok(Err(err)) => return signup_page(&state, &visitor, &next, &login, &email, Some(&err.to_string()), StatusCode::BAD_REQUEST).await,
        Err(_) => return unavailable(),
    };
    if let Err(e) = state.auth.store.create_user(&user).await {
        if let AccountError::LoginTaken = AccountError::from(e.clone()) {
            return signup_page(&state, &visitor, &next, &login, &email, Some("That username is taken."), StatusCode::CONFLICT).await;
        }
        return AppError::page(e).into_response();
    }
    // The page says the same, as fast, whether or not the address has an account
    // elsewhere: the mail is decided after the answer.
    let (bg, new_user) = (state.clone(), user.clone());
    tokio::spawn(async move {
        if let Err(e) = crate::emails::claim_address(&bg, &new_user, &new_user.email).await {
            e.log();
        }
    });
    let dest = if next == "/" { "/console".to_string() } else { next };
    let remember = crate::known_browser::remember(&state, &user);
    match Visitor::sign_in(&state, user).await {
        Ok(v) => {
            let mut res = with_cookie(Redirect::to(&dest).into_response(), &v);
            res.headers_mut().extend(remember.map(|c| (axum::http::header::SET_COOKIE, c)));
            res
        }
        Err(_) => unavailable(),
    }
}

pub(crate) fn when(unix: i64) -> String {
    // Days since the epoch → a calendar date, without a date library.
    let days = unix.div_euclid(86_400);
    let (z, era) = (days + 719_468, (days + 719_468).div_euclid(146_097));
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

async fn connections_page(state: &AppState, visitor: &Visitor, notice: Option<&str>) -> Response {
    let Some(user) = visitor.user() else { return unavailable() };
    let list = match state.auth.store.list_consents(&user.id).await {
        Ok(list) => list,
        Err(e) => return AppError::page(e).into_response(),
    };
    let connections: Vec<_> = list
        .iter()
        .map(|(consent, client)| {
            let scopes: Vec<_> = consent
                .scopes
                .iter()
                .map(|s| minijinja::context! { name => s, description => state.auth.catalog.get(s).map(|d| d.description.clone()).unwrap_or_default() })
                .collect();
            minijinja::context! {
                client_id => client.id, name => client.name, category => category_label(&client.category),
                granted => when(consent.granted_at), scopes,
            }
        })
        .collect();
    let ctx = minijinja::context! { connections, notice, csrf => visitor.csrf_token(), user => user.login.clone() };
    state.pages.render("connections.html", StatusCode::OK, ctx)
}

pub async fn connections(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers, "/settings/connections").await {
        Ok(v) => connections_page(&state, &v, None).await,
        Err(r) => r,
    }
}

pub async fn disconnect(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Path(client_id): Path<String>,
    body: Bytes,
) -> Response {
    let (p, visitor) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let Some(user) = visitor.user() else { return Redirect::to("/login?next=%2Fsettings%2Fconnections").into_response() };
    let name = match state.auth.store.find_client(&client_id).await {
        Ok(c) => c.map(|c| c.name).unwrap_or_else(|| "the application".into()),
        Err(e) => return AppError::page(e).into_response(),
    };
    if p.get("confirm") != Some("yes") {
        let ctx = minijinja::context! {
            title => format!("Disconnect {name}?"),
            detail => format!("{name} loses access to your account: every token it holds for you stops working, and it must ask you again."),
            action => format!("/settings/connections/{client_id}/disconnect"),
            fields => Vec::<(String, String)>::new(),
            button => format!("Disconnect {name}"),
            cancel => "/settings/connections",
            csrf => visitor.csrf_token(), user => user.login.clone(),
        };
        return state.pages.render("confirm.html", StatusCode::OK, ctx);
    }
    if let Err(e) = state.auth.store.disconnect(&user.id, &client_id).await {
        return AppError::page(e).into_response();
    }
    audit::record(&state, audit::event(&state, EventKind::ConsentRevoked, &headers, peer).actor(user).client(&client_id)).await;
    connections_page(&state, &visitor, Some(&format!("Disconnected {name}: its tokens were revoked."))).await
}

fn password_page(state: &AppState, v: &Visitor, error: Option<&str>, notice: Option<&str>, status: StatusCode) -> Response {
    let ctx = minijinja::context! { csrf => v.csrf_token(), error, notice, user => v.user().map(|u| u.login.clone()) };
    state.pages.render("password.html", status, ctx)
}

pub async fn password_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers, "/settings/password").await {
        Ok(v) => password_page(&state, &v, None, None, StatusCode::OK),
        Err(r) => r,
    }
}

pub async fn change_password(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    let (p, visitor) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let Some((session, user)) = visitor.signed_in.clone() else { return Redirect::to("/login?next=%2Fsettings%2Fpassword").into_response() };
    let (current, new) = (p.get("current_password").unwrap_or("").to_string(), p.get("new_password").unwrap_or("").to_string());
    if new == current {
        let same = "The new password is the same as the current one: choose a different one.";
        return password_page(&state, &visitor, Some(same), None, StatusCode::BAD_REQUEST);
    }
    if let Err(e) = accounts::check_new_password(&new, &user.login, &user.email) {
        return password_page(&state, &visitor, Some(&e.to_string()), None, StatusCode::BAD_REQUEST);
    }
    // A password check like a sign-in: a stolen session must not make it a free oracle.
    if let Err(t) = password_budget::take(&state, &headers, peer, &user.login, Some(&user)).await {
        let mut res = password_page(&state, &visitor, Some(&t.message), None, StatusCode::TOO_MANY_REQUESTS);
        t.add_headers(&mut res);
        return res;
    }
    let Ok(_permit) = state.password_checks.acquire().await else { return unavailable() };
    let stored = user.password_hash.clone();
    let checked = tokio::task::spawn_blocking(move || {
        accounts::verify_password(&current, &stored).then(|| accounts::hash_password(&new))
    })
    .await;
    let new_hash = match checked {
        Ok(Some(h)) => h,
        Ok(None) => return password_page(&state, &visitor, Some("The current password is not right."), None, StatusCode::UNAUTHORIZED),
        Err(_) => return unavailable(),
    };
    if let Err(e) = state.auth.store.change_password(&user.id, &new_hash, &session.id_hash).await {
        return AppError::page(e).into_response();
    }
    audit::record(&state, audit::event(&state, EventKind::PasswordChanged, &headers, peer).actor(&user)).await;
    password_page(&state, &visitor, None, Some("Password changed. Applications will need you to authorize them again."), StatusCode::OK)
}
