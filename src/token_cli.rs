//! `gatehouse token`: get, refresh, validate and revoke tokens the way Twitch's CLI does,
//! through gatehouse-client. Credentials given once are remembered in a per-user file
//! (mode 0600) and never printed.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use gatehouse_client::{ClientError, Gatehouse, LoopbackOptions, TokenSet};
use serde::{Deserialize, Serialize};

#[derive(Args)]
pub struct TokenArgs {
    /// Gatehouse base URL (default: remembered, else http://localhost:8080)
    #[arg(long, env = "GATEHOUSE_SERVER")]
    server: Option<String>,
    /// Client id (remembered once given)
    #[arg(long)]
    client_id: Option<String>,
    /// Client secret (remembered once given; never printed)
    #[arg(long, env = "GATEHOUSE_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// A user access token: opens the browser, listens on localhost for the redirect
    #[arg(short = 'u', long = "user-token")]
    user: bool,
    /// A user access token by the device flow, for machines without a browser
    #[arg(long, conflicts_with = "user")]
    device: bool,
    /// Space-separated scopes
    #[arg(short = 's', long = "scopes", default_value = "")]
    scopes: String,
    /// Revoke this token (with --client-id for a token another client created)
    #[arg(short = 'r', long = "revoke", conflicts_with_all = ["user", "device", "validate", "refresh"])]
    revoke: Option<String>,
    /// Validate this token
    #[arg(short = 'v', long = "validate", conflicts_with_all = ["user", "device", "refresh"])]
    validate: Option<String>,
    /// Exchange this refresh token for new tokens
    #[arg(short = 'R', long = "refresh", conflicts_with_all = ["user", "device"])]
    refresh: Option<String>,
    /// Always show the consent page
    #[arg(long)]
    forceverify: bool,
    /// Port of the local redirect listener (register http://localhost:3000 for the default)
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Host name in the redirect URI
    #[arg(long, default_value = "localhost")]
    redirect_host: String,
    /// Seconds to wait for the browser to come back with -u
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    timeout: u64,
    /// Print the URL instead of opening a browser
    #[arg(long)]
    no_browser: bool,
    /// One JSON object on stdout
    #[arg(long)]
    json: bool,
}

/// Exit codes scripts can rely on: 1 the server said no (or the person did), 2 the
/// command line was wrong, 3 the server could not be reached, 4 a problem on this
/// machine (the redirect port is taken, the settings file cannot be written).
pub const EXIT_REFUSED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_UNREACHABLE: u8 = 3;
pub const EXIT_LOCAL: u8 = 4;

pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = match e {
            ClientError::Server { .. } | ClientError::Rejected { .. } => EXIT_REFUSED,
            ClientError::Network(_) => EXIT_UNREACHABLE,
            ClientError::PortInUse(_) => EXIT_LOCAL,
            ClientError::Other(_) => EXIT_REFUSED,
        };
        let message = match &e {
            ClientError::PortInUse(port) => format!(
                "port {port} is already in use: pass --port with a free one (its http://localhost:PORT registered in the console), \
                 or --port 0 for any free port"
            ),
            ClientError::Rejected { reason, redirect } if reason.contains("redirect_uri") => {
                format!("{reason}: register {redirect} as an OAuth Redirect URL of this application in the console, or pass --port to use one that is")
            }
            ClientError::Rejected { reason, .. } if reason.contains("client") => format!("{reason}: check --client-id"),
            ClientError::Server { error, .. } if error == "invalid_client" => {
                format!("{e}: check --client-id and --client-secret (a confidential client needs its secret)")
            }
            _ => e.to_string(),
        };
        Failure { code, message }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure { code: EXIT_USAGE, message: message.into() }
}

#[derive(Default, Serialize, Deserialize)]
struct Remembered {
    server: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn config_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("GATEHOUSE_CLI_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("gatehouse").join("cli.json"))
}

fn load() -> Remembered {
    config_path()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn save(r: &Remembered) -> Result<(), String> {
    use std::io::Write;
    let Some(path) = config_path() else { return Ok(()) };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // The mode above only applies to a new file: tighten an existing one too.
    #[cfg(unix)]
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(|e| e.to_string())?;
    let text = serde_json::to_string_pretty(r).map_err(|e| e.to_string())?;
    f.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

fn token_json(t: &TokenSet) -> serde_json::Value {
    serde_json::json!({
        "access_token": t.access_token,
        "refresh_token": t.refresh_token,
        "expires_in": t.expires_in().map(|d| d.as_secs()),
        "expires_at": t.expires_at,
        "scopes": t.scopes,
    })
}

fn print_tokens(kind: &str, t: &TokenSet, json: bool) {
    if json {
        println!("{}", token_json(t));
        return;
    }
    println!("{kind} Access Token: {}", t.access_token);
    if let Some(rt) = &t.refresh_token {
        println!("Refresh Token: {rt}");
    }
    if let Some(left) = t.expires_in() {
        println!("Expires in: {} seconds", left.as_secs());
    }
    println!("Scopes: {}", if t.scopes.is_empty() { "(none)".to_string() } else { t.scopes.join(" ") });
}

fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A spinner on stderr while waiting, only when a person is watching.
fn spinner(what: &'static str) -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    Some(tokio::spawn(async move {
        let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
        for i in 0.. {
            eprint!("\r{} {what}", frames[i % frames.len()]);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }))
}

fn stop(spin: Option<tokio::task::JoinHandle<()>>) {
    if let Some(s) = spin {
        s.abort();
        eprint!("\r\x1b[2K");
    }
}

fn print_validation(v: &gatehouse_client::Validation, json: bool) {
    if json {
        println!("{}", serde_json::to_string(v).unwrap_or_default());
        return;
    }
    println!("Client ID: {}", v.client_id);
    if let (Some(login), Some(id)) = (&v.login, &v.user_id) {
        println!("User: {login} ({id})");
    } else {
        println!("App access token (no user)");
    }
    println!("Scopes: {}", if v.scopes.is_empty() { "(none)".to_string() } else { v.scopes.join(" ") });
    println!("Expires in: {} seconds", v.expires_in);
}

pub async fn run(args: TokenArgs) -> Result<(), Failure> {
    let mut remembered = load();
    let server = args.server.clone().or(remembered.server.clone()).unwrap_or_else(|| "http://localhost:8080".into());
    if let Some(token) = &args.validate {
        // Validation asks the server about the token alone: no client needed.
        let gh = Gatehouse::discover(&server, args.client_id.as_deref().unwrap_or(""), None).await?;
        print_validation(&gh.validate(token).await?, args.json);
        return Ok(());
    }
    let changed = args.server.is_some() || args.client_id.is_some() || args.client_secret.is_some();
    // Revoking another client's token names that client; it is not remembered then.
    let client_id = args
        .client_id
        .clone()
        .or(remembered.client_id.clone())
        .ok_or_else(|| usage("no client id: pass --client-id once (it is remembered)"))?;
    let same_client = remembered.client_id.as_deref().is_none_or(|c| c == client_id);
    let secret = args.client_secret.clone().or(if same_client { remembered.client_secret.clone() } else { None });
    let scopes: Vec<&str> = args.scopes.split_whitespace().collect();

    let gh = Gatehouse::discover(&server, &client_id, secret.as_deref()).await?;

    if let Some(token) = &args.revoke {
        // RFC 7009: the server answers 200 whether or not it knew the token, so ask first
        // whether it is a live access token, and say only what is known.
        let live = gh.validate(token).await.is_ok();
        gh.revoke(token).await?;
        if args.json {
            println!("{}", serde_json::json!({ "accepted": true, "was_live_access_token": live }));
        } else if live {
            println!("Access token revoked.");
        } else {
            println!(
                "The server accepted the revocation, but this was not a live access token. It answers the same for a \
                 token it does not know (RFC 7009): if it was a refresh token of this client, that is revoked; otherwise nothing changed."
            );
        }
        return Ok(());
    }
    let (kind, tokens) = if let Some(rt) = &args.refresh {
        ("User", gh.refresh(rt).await?)
    } else if args.device {
        let spin_slot = std::sync::Mutex::new(None);
        let t = gh
            .device_token(&scopes, |d| {
                eprintln!("To sign in, visit {} and enter the code {}", d.verification_uri().as_str(), d.user_code().secret());
                if let Some(complete) = d.verification_uri_complete() {
                    eprintln!("Or open {}", complete.secret());
                }
                *spin_slot.lock().unwrap_or_else(|e| e.into_inner()) = spinner("Waiting for you to approve…");
            })
            .await;
        stop(spin_slot.lock().unwrap_or_else(|e| e.into_inner()).take());
        ("User", t?)
    } else if args.user {
        let options = LoopbackOptions {
            port: args.port,
            redirect_host: args.redirect_host.clone(),
            force_verify: args.forceverify,
            timeout: Duration::from_secs(args.timeout),
        };
        let no_browser = args.no_browser;
        let spin_slot = std::sync::Mutex::new(None);
        let t = gh
            .user_token(&scopes, options, |url| {
                if no_browser || !open_browser(url) {
                    eprintln!("Open this URL in your browser to sign in:\n{url}");
                } else {
                    eprintln!("Opened your browser. If it did not open, visit:\n{url}");
                }
                *spin_slot.lock().unwrap_or_else(|e| e.into_inner()) = spinner("Waiting for the browser…");
            })
            .await;
        stop(spin_slot.lock().unwrap_or_else(|e| e.into_inner()).take());
        ("User", t?)
    } else {
        ("App", gh.app_token(&scopes).await?)
    };
    // Remembered only now: the server accepted these credentials.
    if changed {
        remembered.server = Some(server.clone());
        if remembered.client_id.as_deref() != Some(&client_id) {
            remembered.client_secret = None;
        }
        remembered.client_id = Some(client_id.clone());
        if args.client_secret.is_some() {
            remembered.client_secret = args.client_secret.clone();
        }
        save(&remembered).map_err(|e| Failure { code: EXIT_LOCAL, message: format!("cannot save settings: {e}") })?;
    }
    print_tokens(kind, &tokens, args.json);
    Ok(())
}
