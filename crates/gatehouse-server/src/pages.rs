//! Server-rendered pages: minijinja templates compiled into the binary, auto-escaped.

use std::sync::LazyLock;

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;

pub struct Pages {
    env: Environment<'static>,
}

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("consent.html", include_str!("../templates/consent.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("activate.html", include_str!("../templates/activate.html")),
    ("device_done.html", include_str!("../templates/device_done.html")),
    ("signup.html", include_str!("../templates/signup.html")),
    ("console.html", include_str!("../templates/console.html")),
    ("app_form.html", include_str!("../templates/app_form.html")),
    ("app.html", include_str!("../templates/app.html")),
    ("secret.html", include_str!("../templates/secret.html")),
    ("connections.html", include_str!("../templates/connections.html")),
    ("password.html", include_str!("../templates/password.html")),
    ("confirm.html", include_str!("../templates/confirm.html")),
    ("sign_out.html", include_str!("../templates/sign_out.html")),
    ("login_code.html", include_str!("../templates/login_code.html")),
    ("two_factor.html", include_str!("../templates/two_factor.html")),
    ("two_factor_codes.html", include_str!("../templates/two_factor_codes.html")),
    ("needs_2fa.html", include_str!("../templates/needs_2fa.html")),
    ("security.html", include_str!("../templates/security.html")),
    ("account_deleted.html", include_str!("../templates/account_deleted.html")),
    ("admin.html", include_str!("../templates/admin.html")),
    ("admin_user.html", include_str!("../templates/admin_user.html")),
    ("admin_app.html", include_str!("../templates/admin_app.html")),
    ("admin_confirm.html", include_str!("../templates/admin_confirm.html")),
    ("forgot.html", include_str!("../templates/forgot.html")),
    ("reset.html", include_str!("../templates/reset.html")),
    ("notice.html", include_str!("../templates/notice.html")),
    ("email.html", include_str!("../templates/email.html")),
    // Mails: the .txt part is not escaped, the .html part is.
    ("mail_verify.txt", include_str!("../templates/mail_verify.txt")),
    ("mail_verify.html", include_str!("../templates/mail_verify.html")),
    ("mail_reset.txt", include_str!("../templates/mail_reset.txt")),
    ("mail_reset.html", include_str!("../templates/mail_reset.html")),
    ("mail_exists.txt", include_str!("../templates/mail_exists.txt")),
    ("mail_exists.html", include_str!("../templates/mail_exists.html")),
];

pub const STYLESHEET: &str = include_str!("../static/style.css");
pub const CONSOLE_JS: &str = include_str!("../static/console.js");

static PAGES: LazyLock<Pages> = LazyLock::new(Pages::new);

impl Pages {
    /// The templates, compiled once for the process: error pages are written where no
    /// state is at hand (`AppError`).
    pub fn shared() -> &'static Pages {
        &PAGES
    }

    fn new() -> Self {
        let mut env = Environment::new();
        for (name, src) in TEMPLATES {
            // Templates are part of the binary and covered by tests; a broken one is a
            // build defect worth failing loudly on at start-up.
            env.add_template(name, src).unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        Pages { env }
    }

    pub fn render(&self, name: &str, status: StatusCode, ctx: impl Serialize) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => {
                let mut res = (status, Html(html)).into_response();
                // Pages carry CSRF tokens and account details: never cache them.
                res.headers_mut().insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
                res
            }
            Err(e) => {
                tracing::error!(template = name, error = %e, "rendering failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "page could not be rendered").into_response()
            }
        }
    }

    /// A template as text (a mail's parts); None if it fails, which is logged.
    pub fn text(&self, name: &str, ctx: impl Serialize) -> Option<String> {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(text) => Some(text),
            Err(e) => {
                tracing::error!(template = name, error = %e, "rendering failed");
                None
            }
        }
    }

    /// A page that tells how something went, with a link onwards.
    pub fn notice(&self, status: StatusCode, title: &str, detail: &str, next: Option<(&str, &str)>) -> Response {
        let (next, next_label) = next.unzip();
        let failed = !status.is_success();
        self.render("notice.html", status, minijinja::context! { title, detail, next, next_label, failed })
    }

    pub fn error(&self, status: StatusCode, title: &str, detail: &str) -> Response {
        self.render("error.html", status, minijinja::context! { title, detail })
    }

    /// An error page that knows who is signed in, so its header says so (not "Sign in").
    pub fn error_for(&self, user: Option<&str>, status: StatusCode, title: &str, detail: &str) -> Response {
        self.render("error.html", status, minijinja::context! { title, detail, user })
    }
}
