//! The developer console: register, manage, edit and delete applications, and make new
//! client secrets (shown once).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_core::events::EventKind;
use gatehouse_core::model::{category_label, Client, ClientKind, CATEGORIES};
use gatehouse_core::registration::{self, NewClient, RegistrationError};

use super::account::signed_in;
use super::forms::{posted_form, unavailable};
use crate::audit;
use crate::error::AppError;
use crate::params::Params;
use crate::rate_limit::Peer;
use crate::session::Visitor;
use crate::AppState;

fn app_view(c: &Client) -> minijinja::Value {
    minijinja::context! {
        id => c.id, name => c.name, category => category_label(&c.category), kind => c.kind.as_str(),
        allow_implicit => c.allow_implicit, redirect_uris => c.redirect_uris,
    }
}

fn user_login(v: &Visitor) -> Option<String> {
    v.user().map(|u| u.login.clone())
}

pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers, "/console").await {
        Ok(v) => console_page(&state, &v, None).await,
        Err(r) => r,
    }
}

async fn console_page(state: &AppState, v: &Visitor, notice: Option<&str>) -> Response {
    let Some(user) = v.user() else { return unavailable() };
    let apps = match state.auth.store.list_clients(Some(&user.id)).await {
        Ok(apps) => apps,
        Err(e) => return AppError::page(e).into_response(),
    };
    let apps: Vec<_> = apps.iter().map(app_view).collect();
    let ctx = minijinja::context! { apps, notice, csrf => v.csrf_token(), user => user_login(v) };
    state.pages.render("console.html", StatusCode::OK, ctx)
}

/// A page asking to confirm a destructive action: the same form again, with `confirm=yes`.
pub(crate) struct Confirm<'a> {
    pub title: String,
    pub detail: String,
    pub action: String,
    pub fields: Vec<(String, String)>,
    pub button: String,
    pub cancel: &'a str,
}

pub(crate) fn confirm_page(state: &AppState, v: &Visitor, c: Confirm<'_>) -> Response {
    let ctx = minijinja::context! {
        title => c.title, detail => c.detail, action => c.action, fields => c.fields, button => c.button,
        cancel => c.cancel, csrf => v.csrf_token(), user => user_login(v),
    };
    state.pages.render("confirm.html", StatusCode::OK, ctx)
}

/// The form's values, to show again after an error.
#[derive(serde::Serialize, Default)]
struct FormValues {
    name: String,
    redirect_uris: String,
    category: String,
    client_type: String,
    allow_implicit: bool,
}

fn form_values(p: &Params) -> FormValues {
    FormValues {
        name: p.get("name").unwrap_or("").to_string(),
        redirect_uris: p.get("redirect_uris").unwrap_or("").to_string(),
        category: p.get("category").unwrap_or("other").to_string(),
        client_type: p.get("client_type").unwrap_or("confidential").to_string(),
        allow_implicit: p.get("allow_implicit") == Some("true"),
    }
}

fn form_page(state: &AppState, v: &Visitor, app_id: Option<&str>, form: &FormValues, error: Option<&str>, status: StatusCode) -> Response {
    let ctx = minijinja::context! { app_id, form, error, categories => CATEGORIES, csrf => v.csrf_token(), user => user_login(v) };
    state.pages.render("app_form.html", status, ctx)
}

pub async fn new_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers, "/console/apps/new").await {
        Ok(v) => form_page(&state, &v, None, &FormValues { category: "other".into(), ..Default::default() }, None, StatusCode::OK),
        Err(r) => r,
    }
}

fn uris(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// How long a new secret waits for its one look (the redirect right after the POST).
const SECRET_NOTE_TTL: i64 = 600;

fn note_purpose(app_id: &str) -> String {
    format!("client-secret:{app_id}")
}

/// POST-redirect-GET: the secret goes into a note sealed for this browser's session,
/// and the browser is sent to the page that shows it once. Reloading that page changes
/// nothing (the note is gone); the POST is never repeated.
async fn show_once(state: &AppState, v: &Visitor, app_id: &str, secret: &str, title: &str, note: &str) -> Response {
    let payload = serde_json::json!({ "secret": secret, "title": title, "note": note }).to_string();
    let sealed = v.seal(&note_purpose(app_id), &payload);
    let expires_at = state.auth.now() + SECRET_NOTE_TTL;
    if let Err(e) = state.auth.store.put_secret_note(&v.session_hash(), app_id, &sealed, expires_at).await {
        return AppError::page(e).into_response();
    }
    Redirect::to(&format!("/console/apps/{app_id}/secret")).into_response()
}

pub async fn show_secret(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let v = match signed_in(&state, &headers, &format!("/console/apps/{id}")).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = owned(&state, &v, &id).await {
        return r;
    }
    // The look is taken by reading it: a link from another site must not spend it.
    if headers.get("sec-fetch-site").is_some_and(|site| site == "cross-site") {
        let detail = "This page shows a new secret once. Open it from your console, not from a link on another site.";
        return state.pages.error(StatusCode::FORBIDDEN, "Open this from the console", detail);
    }
    let taken = match state.auth.store.take_secret_note(&v.session_hash(), &id, state.auth.now()).await {
        Ok(t) => t,
        Err(e) => return AppError::page(e).into_response(),
    };
    let note: Option<serde_json::Value> =
        taken.and_then(|sealed| v.open(&note_purpose(&id), &sealed)).and_then(|text| serde_json::from_str(&text).ok());
    let field = |k: &str| note.as_ref().and_then(|n| n[k].as_str().map(str::to_string));
    let ctx = minijinja::context! {
        app_id => id, secret => field("secret"), title => field("title"), old_secret_note => field("note"),
        csrf => v.csrf_token(), user => user_login(&v),
    };
    state.pages.render("secret.html", StatusCode::OK, ctx)
}

fn registration_error(e: &RegistrationError) -> StatusCode {
    match e {
        RegistrationError::NameTaken => StatusCode::CONFLICT,
        RegistrationError::Storage => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

pub async fn create(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    let (p, v) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let Some(user) = v.user() else { return Redirect::to("/login?next=%2Fconsole%2Fapps%2Fnew").into_response() };
    let form = form_values(&p);
    let new = NewClient {
        name: form.name.clone(),
        owner_user_id: user.id.clone(),
        category: form.category.clone(),
        kind: if form.client_type == "public" { ClientKind::Public } else { ClientKind::Confidential },
        allow_implicit: form.allow_implicit,
        redirect_uris: uris(&form.redirect_uris),
        jwt_access_tokens: false,
    };
    let registered = registration::register(&state.auth, new).await;
    if let Ok((client, _)) = &registered {
        audit::record(&state, audit::event(&state, EventKind::ClientCreated, &headers, peer).actor(user).client(&client.id)).await;
    }
    match registered {
        Ok((client, Some(secret))) => show_once(&state, &v, &client.id, &secret, &format!("{} is registered", client.name), "").await,
        Ok((client, None)) => Redirect::to(&format!("/console/apps/{}", client.id)).into_response(),
        Err(e) => form_page(&state, &v, None, &form, Some(&e.to_string()), registration_error(&e)),
    }
}

/// The client, if `v` owns it; anyone else gets a 404, as if it did not exist.
async fn owned(state: &AppState, v: &Visitor, id: &str) -> Result<Client, Response> {
    let login = v.user().map(|u| u.login.as_str());
    let not_found = || state.pages.error_for(login, StatusCode::NOT_FOUND, "Not found", "No such application in your console.");
    let user = v.user().ok_or_else(not_found)?;
    match state.auth.store.find_client(id).await {
        Ok(Some(c)) if c.owner_user_id == user.id => Ok(c),
        Ok(_) => Err(not_found()),
        Err(e) => Err(AppError::page(e).into_response()),
    }
}

pub async fn manage(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let v = match signed_in(&state, &headers, &format!("/console/apps/{id}")).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match owned(&state, &v, &id).await {
        Ok(c) => state.pages.render("app.html", StatusCode::OK, minijinja::context! { app => app_view(&c), csrf => v.csrf_token(), user => user_login(&v) }),
        Err(r) => r,
    }
}

pub async fn edit_form(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let v = match signed_in(&state, &headers, &format!("/console/apps/{id}/edit")).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match owned(&state, &v, &id).await {
        Ok(c) => {
            let form = FormValues {
                name: c.name.clone(),
                redirect_uris: c.redirect_uris.join("\n"),
                category: c.category.clone(),
                client_type: c.kind.as_str().into(),
                allow_implicit: c.allow_implicit,
            };
            form_page(&state, &v, Some(&c.id), &form, None, StatusCode::OK)
        }
        Err(r) => r,
    }
}

pub async fn update(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let (p, v) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let client = match owned(&state, &v, &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let form = form_values(&p);
    let edit = NewClient {
        name: form.name.clone(),
        owner_user_id: client.owner_user_id.clone(),
        category: form.category.clone(),
        kind: client.kind,
        allow_implicit: form.allow_implicit,
        redirect_uris: uris(&form.redirect_uris),
        jwt_access_tokens: client.jwt_access_tokens,
    };
    match registration::update(&state.auth, &client, edit).await {
        Ok(()) => {
            audit::record(&state, audit::by(&state, EventKind::ClientEdited, &headers, peer, &v).client(&id)).await;
            Redirect::to(&format!("/console/apps/{id}")).into_response()
        }
        Err(e) => form_page(&state, &v, Some(&id), &form, Some(&e.to_string()), registration_error(&e)),
    }
}

pub async fn new_secret(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let (p, v) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let client = match owned(&state, &v, &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let grace = match p.get("grace").unwrap_or("0") {
        "0" => None,
        "3600" => Some(3600),
        "86400" => Some(86_400),
        _ => return state.pages.error(StatusCode::BAD_REQUEST, "Bad request", "Choose how long to keep the old secret."),
    };
    if grace.is_none() && p.get("confirm") != Some("yes") {
        let name = &client.name;
        return confirm_page(&state, &v, Confirm {
            title: format!("Make a new secret for {name} now?"),
            detail: format!("The current secret stops working at once: {name}'s token requests fail until it uses the new one. To switch over without a gap, go back and keep the current secret for a while."),
            action: format!("/console/apps/{id}/secret"),
            fields: vec![("grace".into(), "0".into())],
            button: "Make a new secret".into(),
            cancel: &format!("/console/apps/{id}"),
        });
    }
    match registration::rotate_secret(&state.auth, &id, grace).await {
        Ok(secret) => {
            let rotated = audit::by(&state, EventKind::ClientSecretRotated, &headers, peer, &v).client(&client.id);
            let rotated = rotated.detail(match grace {
                None => "old secret ended at once".to_string(),
                Some(g) => format!("old secret kept {g} s"),
            });
            audit::record(&state, rotated).await;
            let note = match grace {
                None => "The previous secret no longer works.".to_string(),
                Some(g) => format!("The previous secret keeps working for {} more.", if g == 3600 { "1 hour" } else { "1 day" }),
            };
            show_once(&state, &v, &id, &secret, &format!("New client secret for {}", client.name), &note).await
        }
        Err(e) => state.pages.error(registration_error(&e), "Could not make a new secret", &e.to_string()),
    }
}

pub async fn delete(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let (p, v) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let client = match owned(&state, &v, &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let name = &client.name;
    if p.get("confirm") != Some("yes") {
        return confirm_page(&state, &v, Confirm {
            title: format!("Delete {name}?"),
            detail: format!("{name} is removed for good: every token issued to it stops working and everyone who authorized it is disconnected. This cannot be undone."),
            action: format!("/console/apps/{id}/delete"),
            fields: Vec::new(),
            button: format!("Delete {name}"),
            cancel: &format!("/console/apps/{id}"),
        });
    }
    match state.auth.store.delete_client(&id).await {
        Ok(_) => {
            let deleted = audit::by(&state, EventKind::ClientDeleted, &headers, peer, &v).client(&id).detail(name.clone());
            audit::record(&state, deleted).await;
            console_page(&state, &v, Some(&format!("Deleted {name}: its tokens were revoked."))).await
        }
        Err(e) => AppError::page(e).into_response(),
    }
}
