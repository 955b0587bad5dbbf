//! The demo platform API, built with gatehouse-guard. Every scope of the default catalog
//! guards at least one endpoint; the table is in the README ("Protecting your API").

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::{Json, Router};
use gatehouse_core::model::{Channel, Relation, RelatedUser, User};
use gatehouse_core::secret::random_token;
use gatehouse_guard::{authenticate, require_scope, Guard, GuardError, Token};

use crate::error::AppError;
use crate::params::Params;
use crate::wire::{
    ApiUser, ChannelBody, ChannelEditBody, ChatLoginBody, CommercialBody, CommercialRequest, EmailBody, ErrorBody, PeopleBody, Person,
    StreamKeyBody,
};
use crate::{rate_limit, AppState};

/// `route` guarded by `scope`.
fn needs(scope: &'static str, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.route_layer(from_fn_with_state(scope, require_scope))
}

pub fn router(state: &AppState) -> Router<AppState> {
    let guard = Arc::new(Guard::local(state.auth.clone()).allow_query_tokens(state.config.api_query_tokens));
    Router::new()
        .route("/api/user", get(user))
        .route("/api/user/email", needs("user_read", get(email)))
        .route("/api/user/follows", get(follows))
        .route("/api/user/follows/{login}", needs("user_follows_edit", put(follow).delete(unfollow)))
        .route("/api/user/blocks", needs("user_blocks_read", get(blocks)))
        .route("/api/user/blocks/{login}", needs("user_blocks_edit", put(block).delete(unblock)))
        .route("/api/user/subscriptions", needs("user_subscriptions", get(user_subscriptions)))
        .route("/api/channel", get(channel).merge(needs("channel_editor", put(edit_channel))))
        .route(
            "/api/channel/stream_key",
            needs("channel_read", get(stream_key)).merge(needs("channel_stream", delete(reset_stream_key))),
        )
        .route("/api/channel/commercial", needs("channel_commercial", post(commercial)))
        .route("/api/channel/subscriptions", needs("channel_subscriptions", get(channel_subscribers)))
        .route("/api/channel/subscriptions/{login}", needs("channel_check_subscription", get(check_subscription)))
        .route("/api/chat/login", needs("chat_login", get(chat_login)))
        // Layers run outside in: authenticate, then count against the rate limit.
        .route_layer(from_fn_with_state(state.clone(), rate_limit::api))
        .route_layer(from_fn_with_state(guard, authenticate))
}

/// An API error in the same JSON shape as every other Gatehouse error.
fn fail(status: StatusCode, error: &str, message: &str) -> AppError {
    ErrorBody::new(status, error, message).into()
}

/// The signed-in user behind a user token; app tokens have none.
async fn token_user(state: &AppState, token: &Token) -> Result<User, AppError> {
    let Some(user_id) = &token.0.user_id else {
        return Err(GuardError::InvalidToken("this endpoint needs a user access token".into()).into());
    };
    let user = state.auth.store.find_user(user_id).await?;
    user.ok_or_else(|| GuardError::InvalidToken("the token's user no longer exists".into()).into())
}

/// The user's channel; made on first use with a fresh stream key.
async fn my_channel(state: &AppState, user: &User) -> Result<Channel, AppError> {
    let key = format!("live_{}", random_token(30));
    Ok(state.auth.store.channel(&user.id, &key, state.auth.now()).await?)
}

async fn other_user(state: &AppState, login: &str) -> Result<User, AppError> {
    let no_such_user = || fail(StatusCode::NOT_FOUND, "not_found", "no such user");
    if gatehouse_core::accounts::check_login(login).is_err() {
        return Err(no_such_user());
    }
    state.auth.store.find_user_by_login(login).await?.ok_or_else(no_such_user)
}

#[utoipa::path(
    get, path = "/api/user", tag = "demo API",
    responses((status = 200, description = "OK", body = ApiUser), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn user(State(state): State<AppState>, token: Token) -> Result<Response, AppError> {
    let user = token_user(&state, &token).await?;
    let email = if token.0.has_scope("user_read") { Some(user.email) } else { None };
    Ok(Json(ApiUser { id: user.id, login: user.login, created_at: user.created_at, email }).into_response())
}

#[utoipa::path(
    get, path = "/api/user/email", tag = "demo API",
    responses((status = 200, description = "OK", body = EmailBody), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn email(State(state): State<AppState>, token: Token) -> Result<Response, AppError> {
    let user = token_user(&state, &token).await?;
    Ok(Json(EmailBody { email: user.email }).into_response())
}

fn channel_json(user: &User, ch: &Channel, private: bool) -> Json<ChannelBody> {
    Json(ChannelBody {
        email: private.then(|| user.email.clone()),
        game: ch.game.clone(),
        login: user.login.clone(),
        status: ch.status.clone(),
        stream_key: private.then(|| ch.stream_key.clone()),
        updated_at: ch.updated_at,
        user_id: user.id.clone(),
    })
}

#[utoipa::path(
    get, path = "/api/channel", tag = "demo API",
    responses((status = 200, description = "OK", body = ChannelBody), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn channel(State(state): State<AppState>, token: Token) -> Result<Response, AppError> {
    let user = token_user(&state, &token).await?;
    let ch = my_channel(&state, &user).await?;
    Ok(channel_json(&user, &ch, token.0.has_scope("channel_read")).into_response())
}

/// Reads a form or JSON body (a form may also carry `oauth_token`, which is ignored here).
fn body<T: serde::de::DeserializeOwned + Default>(headers: &HeaderMap, bytes: &Bytes) -> Result<T, AppError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let bad = || fail(StatusCode::BAD_REQUEST, "invalid_request", "the body could not be read");
    if bytes.is_empty() {
        Ok(T::default())
    } else if ct.starts_with("application/json") {
        serde_json::from_slice(bytes).map_err(|_| bad())
    } else {
        Params::parse(bytes).map_err(|_| bad())?.decode().map_err(|_| bad())
    }
}

#[utoipa::path(
    put, path = "/api/channel", tag = "demo API",
    request_body(content = ChannelEditBody, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "OK", body = ChannelBody), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn edit_channel(State(state): State<AppState>, token: Token, headers: HeaderMap, bytes: Bytes) -> Result<Response, AppError> {
    let user = token_user(&state, &token).await?;
    let edit: ChannelEditBody = body(&headers, &bytes)?;
    for v in [&edit.status, &edit.game].into_iter().flatten() {
        if v.chars().count() > 140 || v.chars().any(char::is_control) {
            return Err(fail(StatusCode::BAD_REQUEST, "invalid_request", "status and game are at most 140 printable characters"));
        }
    }
    my_channel(&state, &user).await?;
    let now = state.auth.now();
    state.auth.store.update_channel(&user.id, edit.status.as_deref(), edit.game.as_deref(), now).await?;
    let ch = my_channel(&state, &user).await?;
    Ok(channel_json(&user, &ch, token.0.has_scope("channel_read")).into_response())
}

#[utoipa::path(
    get, path = "/api/channel/stream_key", tag = "demo API",
    responses((status = 200, description = "OK", body = StreamKeyBody), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn stream_key(State(state): State<AppState>, token: Token) -> Result<Response, AppError> {
    let user = token_user(&state, &token).await?;
    let ch = my_channel(&state, &user).await?;
    Ok(Json(StreamKeyBody { stream_key: ch.stream_key }).into_response())
}

#[utoipa::path(
    delete, path = "/api/channel/stream_key", tag = "demo API",
    responses((status = 200, description = "OK", body = StreamKeyBody), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn reset_stream_key(State(state): State<AppState>, token: Token) -> Result<Response, AppError> {
    let user = token_user(&state, &token).await?;
    my_channel(&state, &user).await?;
    let key = format!("live_{}", random_token(30));
    state.auth.store.set_stream_key(&user.id, &key, state.auth.now()).await?;
    Ok(Json(StreamKeyBody { stream_key: key }).into_response())
}

#[utoipa::path(
    post, path = "/api/channel/commercial", tag = "demo API",
    request_body(content = CommercialRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "OK", body = CommercialBody), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn commercial(State(state): State<AppState>, token: Token, headers: HeaderMap, bytes: Bytes) -> Result<Response, AppError> {
    let user = token_user(&state, &token).await?;
    let req: CommercialRequest = body(&headers, &bytes)?;
    let length: i64 = match req.length.as_deref().unwrap_or("30").parse() {
        Ok(l) if [30, 60, 90, 120, 150, 180].contains(&l) => l,
        _ => return Err(fail(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", "length must be 30, 60, 90, 120, 150 or 180")),
    };
    my_channel(&state, &user).await?;
    state.auth.store.record_commercial(&user.id, state.auth.now()).await?;
    Ok(Json(CommercialBody { length, message: format!("a {length} second commercial is running") }).into_response())
}

/// Which list a [`PeopleBody`] carries.
#[derive(Clone, Copy)]
enum Field {
    Follows,
    Blocks,
    Subscriptions,
}

fn people(list: Vec<RelatedUser>, field: Field) -> Response {
    let items: Vec<Person> = list.into_iter().map(Person::from).collect();
    let mut body = PeopleBody { _total: items.len() as i64, blocks: None, follows: None, subscriptions: None };
    *match field {
        Field::Follows => &mut body.follows,
        Field::Blocks => &mut body.blocks,
        Field::Subscriptions => &mut body.subscriptions,
    } = Some(items);
    Json(body).into_response()
}

async fn list(state: &AppState, token: &Token, kind: Relation, outgoing: bool, field: Field) -> Result<Response, AppError> {
    let user = token_user(state, token).await?;
    let store = &state.auth.store;
    let found = if outgoing { store.related_to(kind, &user.id).await } else { store.related_from(kind, &user.id).await };
    Ok(people(found?, field))
}

#[utoipa::path(
    get, path = "/api/user/follows", tag = "demo API",
    responses((status = 200, description = "OK", body = PeopleBody), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn follows(State(state): State<AppState>, token: Token) -> Result<Response, AppError> {
    list(&state, &token, Relation::Follow, true, Field::Follows).await
}

#[utoipa::path(
    get, path = "/api/user/blocks", tag = "demo API",
    responses((status = 200, description = "OK", body = PeopleBody), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn blocks(State(state): State<AppState>, token: Token) -> Result<Response, AppError> {
    list(&state, &token, Relation::Block, true, Field::Blocks).await
}

#[utoipa::path(
    get, path = "/api/user/subscriptions", tag = "demo API",
    responses((status = 200, description = "OK", body = PeopleBody), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn user_subscriptions(State(state): State<AppState>, token: Token) -> Result<Response, AppError> {
    list(&state, &token, Relation::Subscription, true, Field::Subscriptions).await
}

#[utoipa::path(
    get, path = "/api/channel/subscriptions", tag = "demo API",
    responses((status = 200, description = "OK", body = PeopleBody), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn channel_subscribers(State(state): State<AppState>, token: Token) -> Result<Response, AppError> {
    list(&state, &token, Relation::Subscription, false, Field::Subscriptions).await
}

async fn set_relation(state: &AppState, token: &Token, kind: Relation, login: &str, on: bool) -> Result<Response, AppError> {
    let user = token_user(state, token).await?;
    let other = other_user(state, login).await?;
    if other.id == user.id {
        return Err(fail(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", "that would be yourself"));
    }
    let store = &state.auth.store;
    let done = if on { store.relate(kind, &user.id, &other.id, state.auth.now()).await } else { store.unrelate(kind, &user.id, &other.id).await };
    done?;
    Ok(if on {
        Json(Person { created_at: None, login: other.login, user_id: other.id }).into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    })
}

#[utoipa::path(
    put, path = "/api/user/follows/{login}", tag = "demo API",
    params(("login" = String, Path, description = "Another user's login", example = "bob")),
    responses((status = 200, description = "OK", body = Person), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn follow(State(state): State<AppState>, token: Token, Path(login): Path<String>) -> Result<Response, AppError> {
    set_relation(&state, &token, Relation::Follow, &login, true).await
}

#[utoipa::path(
    delete, path = "/api/user/follows/{login}", tag = "demo API",
    params(("login" = String, Path, description = "Another user's login", example = "bob")),
    responses((status = 204, description = "Done"), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn unfollow(State(state): State<AppState>, token: Token, Path(login): Path<String>) -> Result<Response, AppError> {
    set_relation(&state, &token, Relation::Follow, &login, false).await
}

#[utoipa::path(
    put, path = "/api/user/blocks/{login}", tag = "demo API",
    params(("login" = String, Path, description = "Another user's login", example = "bob")),
    responses((status = 200, description = "OK", body = Person), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn block(State(state): State<AppState>, token: Token, Path(login): Path<String>) -> Result<Response, AppError> {
    set_relation(&state, &token, Relation::Block, &login, true).await
}

#[utoipa::path(
    delete, path = "/api/user/blocks/{login}", tag = "demo API",
    params(("login" = String, Path, description = "Another user's login", example = "bob")),
    responses((status = 204, description = "Done"), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn unblock(State(state): State<AppState>, token: Token, Path(login): Path<String>) -> Result<Response, AppError> {
    set_relation(&state, &token, Relation::Block, &login, false).await
}

#[utoipa::path(
    get, path = "/api/channel/subscriptions/{login}", tag = "demo API",
    params(("login" = String, Path, description = "Another user's login", example = "bob")),
    responses((status = 200, description = "OK", body = Person), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn check_subscription(State(state): State<AppState>, token: Token, Path(login): Path<String>) -> Result<Response, AppError> {
    let user = token_user(&state, &token).await?;
    let other = other_user(&state, &login).await?;
    let subs = state.auth.store.related_from(Relation::Subscription, &user.id).await?;
    match subs.into_iter().find(|s| s.user_id == other.id) {
        Some(s) => Ok(Json(Person::from(s)).into_response()),
        None => Err(fail(StatusCode::NOT_FOUND, "not_found", "that user is not subscribed to your channel")),
    }
}

#[utoipa::path(
    get, path = "/api/chat/login", tag = "demo API",
    responses((status = 200, description = "OK", body = ChatLoginBody), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn chat_login(State(state): State<AppState>, token: Token) -> Result<Response, AppError> {
    let user = token_user(&state, &token).await?;
    Ok(Json(ChatLoginBody { allowed: true, chat_server: "irc://chat.gatehouse.invalid:6667".into(), login: user.login }).into_response())
}
