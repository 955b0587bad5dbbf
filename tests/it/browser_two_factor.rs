//! Two-factor sign-in in headless Chromium: sign up, turn it on from the page's secret,
//! read the recovery codes, sign out, sign in with password and then a code, and see the
//! session on the security page. Codes are computed here from the secret the page shows.
//! Ignored unless asked for, like the rest of the Chromium suite (browser.rs).

use std::time::Duration;

use fantoccini::Locator;
use gatehouse_core::totp;

use crate::browser::{browser, click, fill, text};
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver); run with --include-ignored"]
async fn turn_on_two_factor_and_sign_in_with_a_code_in_chromium() {
    let Some((c, _driver)) = browser().await else { return };
    let server = TestServer::start().await;

    c.goto(&server.url("/signup")).await.unwrap();
    fill(&c, "#login", "streamer").await;
    fill(&c, "#email", "streamer@example.com").await;
    fill(&c, "#password", PASSWORD).await;
    click(&c, "button[type=submit]").await;
    c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("a[href='/console/apps/new']")).await.expect("signed up");

    // Turn it on: the page shows the QR code and the key; confirm with the app's code.
    c.goto(&server.url("/settings/2fa")).await.unwrap();
    assert!(c.find(Locator::Css(".qr svg")).await.unwrap().is_displayed().await.unwrap(), "the QR code is drawn");
    let secret = text(&c, "#totp-secret").await.replace(' ', "");
    let uri = text(&c, "#otpauth-uri").await;
    assert!(uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")), "{uri}");
    fill(&c, "#code", &totp::code_at(&secret, server.auth.now()).unwrap()).await;
    click(&c, "form[action='/settings/2fa'] button[type=submit]").await;
    let codes = text(&c, "#recovery-codes").await;
    assert_eq!(codes.split_whitespace().count(), 10, "{codes}");

    // Sign out, then in: the password, then a page asking for the code.
    c.goto(&server.url("/")).await.unwrap();
    click(&c, "form[action='/logout'] [type=submit]").await;
    c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("a[href='/login']")).await.expect("signed out");
    c.goto(&server.url("/login")).await.unwrap();
    fill(&c, "#login", "streamer").await;
    fill(&c, "#password", PASSWORD).await;
    click(&c, "button[type=submit]").await;
    c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("input[name=pending]")).await.expect("asked for a code");
    server.clock.advance(30);
    fill(&c, "#code", &totp::code_at(&secret, server.auth.now()).unwrap()).await;
    click(&c, "button[type=submit]").await;
    c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("form[action='/logout']")).await.expect("signed in");

    // The security page lists this browser, and 2FA as on.
    c.goto(&server.url("/settings/security")).await.unwrap();
    let row = text(&c, "tr.session").await;
    assert!(row.contains("Chrome on Linux") && row.contains("this browser") && row.contains("127.0.0.1"), "{row}");
    assert!(c.source().await.unwrap().contains("Two-factor sign-in is <strong>on</strong>"));
    c.close().await.unwrap();
}
