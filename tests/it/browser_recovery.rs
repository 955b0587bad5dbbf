//! In headless Chromium, with real SMTP: sign up → follow the mailed verification link →
//! "Forgot password?" on the sign-in card → follow the mailed reset link → sign in with
//! the new password. Ignored unless asked for; skips, saying why, without Chromium or
//! aiosmtpd (GATEHOUSE_REQUIRE_BROWSER / GATEHOUSE_REQUIRE_SMTP make that a failure).

use std::time::Duration;

use fantoccini::Locator;
use gatehouse_core::policy::Policy;
use gatehouse_server::mail::MailSettings;
use gatehouse_server::ServerConfig;

use crate::browser::{browser, click, fill, text};
use crate::common::*;
use crate::smtp::{link, Smtp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium, chromedriver and python3 aiosmtpd: run with --include-ignored"]
async fn sign_up_verify_forget_and_reset_in_a_real_browser() {
    let Some(smtp) = Smtp::start() else { return };
    let Some((c, _driver)) = browser().await else { return };
    let mail = MailSettings { smtp_url: smtp.url(), from: "Gatehouse <no-reply@example.com>".into(), username: None, password: None };
    let server = TestServer::start_with(Policy::default(), ServerConfig { mail: Some(mail), ..Default::default() }).await;

    c.goto(&server.url("/signup")).await.unwrap();
    fill(&c, "#login", "erin").await;
    fill(&c, "#email", "erin@example.com").await;
    fill(&c, "#password", PASSWORD).await;
    click(&c, "button[type=submit]").await;
    assert!(text(&c, ".who").await.contains("erin"), "signed in after sign-up");

    let verify = smtp.mail_to("erin@example.com", 1).await;
    c.goto(&link(&verify.text, &format!("{}/verify-email?token=", server.base))).await.unwrap();
    assert_eq!(text(&c, "h1").await, "Verify your email address");
    click(&c, "#confirm").await;
    let verified = Locator::XPath("//h1[text()='Email verified']");
    c.wait().at_most(Duration::from_secs(10)).for_element(verified).await.expect("the address verified");
    c.goto(&server.url("/settings/email")).await.unwrap();
    assert_eq!(text(&c, "#email-status").await, "verified");

    // Signed out, from the sign-in card.
    c.delete_all_cookies().await.unwrap();
    c.goto(&server.url("/login")).await.unwrap();
    click(&c, "a[href='/forgot-password']").await;
    fill(&c, "#email", "erin@example.com").await;
    click(&c, "button[type=submit]").await;
    assert!(text(&c, "[role=status]").await.contains("on its way"));

    let reset = smtp.mail_to("erin@example.com", 2).await;
    assert_eq!(reset.subject, "Reset your password");
    c.goto(&link(&reset.text, &format!("{}/reset-password?token=", server.base))).await.unwrap();
    fill(&c, "#password", "a-brand-new-passphrase").await;
    click(&c, "button[type=submit]").await;
    let changed = Locator::XPath("//h1[text()='Password changed']");
    c.wait().at_most(Duration::from_secs(10)).for_element(changed).await.expect("the password changed");

    click(&c, "main a[href='/login']").await;
    c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("#login")).await.unwrap();
    fill(&c, "#login", "erin").await;
    fill(&c, "#password", "a-brand-new-passphrase").await;
    click(&c, "button[type=submit]").await;
    assert!(text(&c, ".who").await.contains("erin"), "signed in with the new password");
    c.close().await.unwrap();
}
