//! New passwords follow NIST SP 800-63B: long ones welcome, common ones and ones built
//! from the login or email refused with the reason (issue 24, finding 5).

use reqwest::StatusCode;

use crate::common::*;

async fn sign_up(f: &Fixture, login: &str, password: &str) -> (StatusCode, String) {
    let b = f.server.browser();
    let page = b.http.get(f.server.url("/signup")).send().await.unwrap().text().await.unwrap();
    let csrf = form_fields(&page, "/signup").into_iter().find(|(n, _)| n == "csrf").unwrap().1;
    let email = format!("{login}.mail@example.com");
    let form = [("login", login), ("email", email.as_str()), ("password", password), ("csrf", csrf.as_str()), ("next", "/")];
    let res = b.http.post(f.server.url("/signup")).form(&form).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
async fn common_passwords_and_ones_made_of_the_login_or_email_are_refused() {
    let f = Fixture::new().await;
    for common in ["password", "12345678", "iloveyou", "Qwerty123", "PASSWORD1"] {
        let (status, page) = sign_up(&f, "carol", common).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{common}");
        assert!(page.contains("too common"), "{common}: {page}");
    }
    for own in ["carol_the_great", "xxCAROLxx99", "carol.mail@example.com"] {
        let (status, page) = sign_up(&f, "carol", own).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{own}");
        assert!(page.contains("login or email"), "{own}: {page}");
    }
    // Length over composition: a long passphrase of lower-case words is fine, and so is
    // one of 64 characters and more.
    assert_eq!(sign_up(&f, "carol", "purple monkey dishwasher").await.0, StatusCode::SEE_OTHER);
    assert_eq!(sign_up(&f, "dave", &"long passphrase ".repeat(8)).await.0, StatusCode::SEE_OTHER);

    // The same rules for a new password on /settings/password.
    let browser = f.server.browser();
    assert_eq!(browser.sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    for (new, reason) in [("password123", "too common"), ("alice-2024-xyz", "login or email")] {
        let page = browser.http.get(f.server.url("/settings/password")).send().await.unwrap().text().await.unwrap();
        let csrf = form_fields(&page, "/settings/password").into_iter().find(|(n, _)| n == "csrf").unwrap().1;
        let form = [("csrf", csrf.as_str()), ("current_password", PASSWORD), ("new_password", new)];
        let res = browser.http.post(f.server.url("/settings/password")).form(&form).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{new}");
        assert!(res.text().await.unwrap().contains(reason), "{new}");
    }
}
