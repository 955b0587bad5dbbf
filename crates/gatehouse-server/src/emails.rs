//! The mails Gatehouse sends, each with a plain-text and an HTML part, every link in
//! them absolute and built from the issuer.

use gatehouse_core::links;
use gatehouse_core::model::{LinkPurpose, User};

use crate::mail::Mail;
use crate::AppState;

fn mail(state: &AppState, kind: &'static str, to: &str, subject: &str, template: &str, ctx: minijinja::Value) -> Option<Mail> {
    Some(Mail {
        to: to.to_string(),
        subject: subject.to_string(),
        text: state.pages.text(&format!("{template}.txt"), &ctx)?,
        html: state.pages.text(&format!("{template}.html"), &ctx)?,
        kind,
    })
}

fn send(state: &AppState, m: Option<Mail>) {
    if let (Some(mailer), Some(m)) = (&state.mailer, m) {
        mailer.send(m);
    }
}

/// Mails a new verification link for `email` (the account's own, or the one it is
/// changing to); the user's older verification link stops working.
pub(crate) async fn send_verification(state: &AppState, user: &User, email: &str) -> Result<(), gatehouse_core::error::StoreError> {
    if state.mailer.is_none() {
        return Ok(());
    }
    let token = links::issue(&state.auth, user, LinkPurpose::VerifyEmail, email).await?;
    let link = links::url(&state.config.issuer, LinkPurpose::VerifyEmail, &token);
    let change = user.email_verified || !user.email.eq_ignore_ascii_case(email);
    let ctx = minijinja::context! { login => user.login, email, link, change };
    send(state, mail(state, "verify_email", email, "Verify your email address", "mail_verify", ctx));
    Ok(())
}

/// Mails a password reset link; the user's older reset link stops working.
pub(crate) async fn send_reset(state: &AppState, user: &User, email: &str) -> Result<(), gatehouse_core::error::StoreError> {
    if state.mailer.is_none() {
        return Ok(());
    }
    let token = links::issue(&state.auth, user, LinkPurpose::ResetPassword, email).await?;
    let link = links::url(&state.config.issuer, LinkPurpose::ResetPassword, &token);
    let ctx = minijinja::context! { login => user.login, link };
    send(state, mail(state, "reset_password", email, "Reset your password", "mail_reset", ctx));
    Ok(())
}

/// Tells the owner of `email` that another account tried to use it, instead of a
/// verification link it could not follow: the page that asked says nothing of it.
pub(crate) fn send_already_used(state: &AppState, holder: &User, email: &str) {
    let link = format!("{}/forgot-password", state.config.issuer.trim_end_matches('/'));
    let ctx = minijinja::context! { login => holder.login, email, link };
    send(state, mail(state, "email_in_use", email, "Your email address was used to sign up", "mail_exists", ctx));
}

/// Sends the right mail for an address a user gave (at sign-up or as a change): a
/// verification link, or, when another account holds it verified, a notice to it.
pub(crate) async fn claim_address(state: &AppState, user: &User, email: &str) -> Result<(), gatehouse_core::error::StoreError> {
    if state.mailer.is_none() {
        return Ok(());
    }
    let holder = state.auth.store.find_users_by_email(email).await?.into_iter().find(|u| u.email_verified);
    match holder {
        Some(h) if h.id != user.id => {
            send_already_used(state, &h, email);
            Ok(())
        }
        // Already this account's verified address: nothing to prove.
        Some(_) => Ok(()),
        None => send_verification(state, user, email).await,
    }
}
