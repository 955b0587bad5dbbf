//! `gatehouse user …`: operators' commands on accounts, through the same store
//! operations as the pages, so a running server sees their effect at once.

use gatehouse_core::events::{Event, EventKind};
use gatehouse_core::model::{LinkPurpose, User};
use gatehouse_core::{accounts, links, Authority};

use crate::{read_password, Failure, UserCommand};

fn user_json(u: &User) -> serde_json::Value {
    serde_json::json!({
        "id": u.id, "login": u.login, "email": u.email, "email_verified": u.email_verified,
        "disabled": u.disabled, "is_admin": u.is_admin, "created_at": u.created_at,
    })
}

fn flags(u: &User) -> String {
    let mut f = vec![if u.email_verified { "verified" } else { "unverified" }];
    if u.disabled {
        f.push("disabled");
    }
    if u.is_admin {
        f.push("admin");
    }
    f.join(",")
}

async fn find(auth: &Authority, login: &str) -> Result<User, Failure> {
    auth.store
        .find_user_by_login(login)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user with login {login:?}").into())
}

/// Records what an operator did to an account; the change stands whether or not the
/// record can be written (a warning says so).
async fn record(auth: &Authority, kind: EventKind, user: &User) {
    let event = Event::new(kind, auth.now()).subject(user).detail("by the command line");
    if let Err(e) = auth.store.record_event(&event).await {
        eprintln!("warning: the event log could not record this: {e}");
    }
}

/// Prints a one-line result: the JSON object, or the sentence.
fn done(json: bool, value: serde_json::Value, text: String) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

pub(crate) async fn run(auth: &Authority, cmd: UserCommand, issuer: &str) -> Result<(), Failure> {
    match cmd {
        UserCommand::Add { .. } => unreachable!("handled by main"),
        UserCommand::List { json } => {
            let users = auth.store.list_users().await.map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::json!({ "users": users.iter().map(user_json).collect::<Vec<_>>() }));
            } else if users.is_empty() {
                println!("no users");
            } else {
                for u in &users {
                    println!("{:<25}  {:<32}  {}  {}", u.login, u.email, flags(u), u.id);
                }
            }
            Ok(())
        }
        UserCommand::Show { login, json } => {
            let u = find(auth, &login).await?;
            let apps = auth.store.list_clients(Some(&u.id)).await.map_err(|e| e.to_string())?;
            let consents = auth.store.list_consents(&u.id).await.map_err(|e| e.to_string())?;
            if json {
                let mut v = user_json(&u);
                v["applications"] = apps.iter().map(|c| serde_json::json!({ "client_id": c.id, "name": c.name })).collect();
                v["authorized_applications"] = consents.iter().map(|(_, c)| serde_json::json!({ "client_id": c.id, "name": c.name })).collect();
                println!("{v}");
            } else {
                println!("login:       {}", u.login);
                println!("id:          {}", u.id);
                println!("email:       {} ({})", u.email, if u.email_verified { "verified" } else { "not verified" });
                println!("disabled:    {}", if u.disabled { "yes" } else { "no" });
                println!("admin:       {}", if u.is_admin { "yes" } else { "no" });
                println!("created_at:  {}", u.created_at);
                println!("owns:        {}", apps.iter().map(|c| format!("{} ({})", c.name, c.id)).collect::<Vec<_>>().join(", "));
                println!("authorized:  {}", consents.iter().map(|(_, c)| c.name.clone()).collect::<Vec<_>>().join(", "));
            }
            Ok(())
        }
        UserCommand::Disable { login, json } => {
            let u = find(auth, &login).await?;
            auth.store.set_user_disabled(&u.id, true).await.map_err(|e| e.to_string())?;
            record(auth, EventKind::AccountDisabled, &u).await;
            let text = format!("disabled {}: signed out everywhere, every token revoked; sign-in is refused", u.login);
            done(json, serde_json::json!({ "login": u.login, "id": u.id, "disabled": true }), text);
            Ok(())
        }
        UserCommand::Enable { login, json } => {
            let u = find(auth, &login).await?;
            auth.store.set_user_disabled(&u.id, false).await.map_err(|e| e.to_string())?;
            record(auth, EventKind::AccountEnabled, &u).await;
            let text = format!("enabled {}: they may sign in again (revoked tokens stay revoked)", u.login);
            done(json, serde_json::json!({ "login": u.login, "id": u.id, "disabled": false }), text);
            Ok(())
        }
        UserCommand::Delete { login, json } => {
            let u = find(auth, &login).await?;
            let apps = auth.store.delete_user(&u.id).await.map_err(|e| e.to_string())?.ok_or("the user was deleted meanwhile")?;
            record(auth, EventKind::AccountDeleted, &u).await;
            for app in &apps {
                let event = Event::new(EventKind::ClientDeleted, auth.now()).subject(&u).client(app).detail("with its owner's account");
                if let Err(e) = auth.store.record_event(&event).await {
                    eprintln!("warning: the event log could not record this: {e}");
                }
            }
            let text = if apps.is_empty() {
                format!("deleted {} with its consents, sessions and tokens; they owned no applications", u.login)
            } else {
                format!(
                    "deleted {} with its consents, sessions and tokens, and deleted the {} applications they owned ({}) with every token issued to them",
                    u.login,
                    apps.len(),
                    apps.join(", ")
                )
            };
            done(json, serde_json::json!({ "login": u.login, "id": u.id, "deleted": true, "deleted_applications": apps }), text);
            Ok(())
        }
        UserCommand::SetPassword { login, .. } => {
            let u = find(auth, &login).await?;
            let password = read_password()?;
            accounts::check_new_password(&password, &u.login, &u.email).map_err(|e| e.to_string())?;
            let hash = tokio::task::spawn_blocking(move || accounts::hash_password(&password)).await.map_err(|e| e.to_string())?;
            auth.store.change_password(&u.id, &hash, "").await.map_err(|e| e.to_string())?;
            record(auth, EventKind::PasswordReset, &u).await;
            println!("new password set for {}: signed out everywhere, every token revoked", u.login);
            Ok(())
        }
        UserCommand::ResetLink { login, issuer: given, json } => {
            let u = find(auth, &login).await?;
            if u.disabled {
                return Err(format!("{} is disabled: enable the account first", u.login).into());
            }
            let issuer = given.unwrap_or_else(|| issuer.to_string());
            let token = links::issue(auth, &u, LinkPurpose::ResetPassword, &u.email).await.map_err(|e| e.to_string())?;
            let url = links::url(&issuer, LinkPurpose::ResetPassword, &token);
            let text = format!("{url}\nGive this link to {} only: it sets a new password, once, within 30 minutes.", u.login);
            done(json, serde_json::json!({ "login": u.login, "url": url, "expires_in": links::RESET_TTL }), text);
            Ok(())
        }
        UserCommand::Disable2fa { login, json } => {
            let u = find(auth, &login).await?;
            if !auth.store.disable_two_factor(&u.id).await.map_err(|e| e.to_string())? {
                return Err(format!("{} does not have two-factor sign-in on", u.login).into());
            }
            record(auth, EventKind::TwoFactorDisabled, &u).await;
            let text = format!("two-factor sign-in is off for {}: the password alone signs in until they turn it on again", u.login);
            done(json, serde_json::json!({ "login": u.login, "id": u.id, "two_factor": false }), text);
            Ok(())
        }
        UserCommand::Admin { login, grant, json, .. } => {
            let u = find(auth, &login).await?;
            auth.store.set_user_admin(&u.id, grant).await.map_err(|e| e.to_string())?;
            record(auth, if grant { EventKind::AdminGranted } else { EventKind::AdminRevoked }, &u).await;
            let text = if grant { format!("{} is now an admin", u.login) } else { format!("{} is no longer an admin", u.login) };
            done(json, serde_json::json!({ "login": u.login, "id": u.id, "is_admin": grant }), text);
            Ok(())
        }
    }
}
