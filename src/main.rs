//! The `gatehouse` command: the server and its admin commands.

// glibc's tunables are what the allocator relies on; other targets keep Rust's default.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod alloc;
mod config;
mod events_cli;
mod token_cli;
mod user_cli;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use gatehouse_core::events::{Event, EventKind};
use gatehouse_core::model::ClientKind;
use gatehouse_core::registration::{self, NewClient};
use gatehouse_core::{accounts, Authority};
use gatehouse_server::{AppState, ServerConfig};

use config::FileConfig;

#[derive(Parser)]
#[command(name = "gatehouse", version, about = "An OAuth 2.0 authorization server for platform APIs")]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct GlobalOpts {
    /// TOML config file (default: ./gatehouse.toml when it exists)
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    /// sqlite://relative.db, sqlite:///absolute.db or postgres://… (default sqlite://gatehouse.db)
    #[arg(long, global = true, env = "GATEHOUSE_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server
    Serve {
        /// Address to listen on (default 127.0.0.1:8080)
        #[arg(long, env = "GATEHOUSE_LISTEN")]
        listen: Option<String>,
        /// Public base URL (default http://LISTEN)
        #[arg(long, env = "GATEHOUSE_ISSUER")]
        issuer: Option<String>,
    },
    /// Manage user accounts
    #[command(subcommand)]
    User(UserCommand),
    /// Manage applications (OAuth clients)
    #[command(subcommand)]
    Client(ClientCommand),
    /// Create the database if needed and apply migrations, then exit
    Migrate,
    /// Manage OpenID Connect signing keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Show the security event log: sign-ins, secret changes, revocations, admin actions
    Events(events_cli::EventsArgs),
    /// Get, refresh, validate or revoke tokens from a Gatehouse server (a client command)
    Token(token_cli::TokenArgs),
    /// Copy the live SQLite database to FILE, and its key to FILE.key (the server may run)
    Backup {
        /// A new file for the copy
        file: std::path::PathBuf,
    },
    /// Put a backup made by `backup` in place (the server stopped, the old files moved away)
    Restore {
        /// The copy `backup` made (its key beside it, FILE.key)
        file: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new signing key; old keys stay in the JWKS until their tokens expire
    Rotate {
        #[arg(long)]
        json: bool,
    },
    /// List signing keys
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user; the password is read from standard input
    Add {
        #[arg(long)]
        login: String,
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: passwords never go in argv)
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List user accounts
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one account
    Show {
        login: String,
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: it cannot sign in, and its sessions and tokens stop working at once
    Disable {
        login: String,
        #[arg(long)]
        json: bool,
    },
    /// Enable a disabled account (tokens revoked when it was disabled stay revoked)
    Enable {
        login: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete an account, its consents and tokens, and the applications it owns
    Delete {
        login: String,
        #[arg(long)]
        json: bool,
    },
    /// Set a new password, read from standard input; every session and token of the user stops working
    SetPassword {
        login: String,
        /// Read the password from standard input (required: passwords never go in argv)
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Print a one-time URL to choose a new password (works for 30 minutes; for deployments without mail)
    ResetLink {
        login: String,
        /// Public base URL the link starts with (default: the server's issuer setting)
        #[arg(long, env = "GATEHOUSE_ISSUER")]
        issuer: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Grant or revoke the admin role (the /admin pages)
    Admin {
        login: String,
        #[arg(long, conflicts_with = "revoke", required_unless_present = "revoke")]
        grant: bool,
        #[arg(long)]
        revoke: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register an application
    Create {
        #[arg(long)]
        name: String,
        /// Login of the user who owns the application
        #[arg(long)]
        owner: String,
        /// A redirect URI; repeat for several
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A public client (native or browser app): no secret, PKCE required
        #[arg(long)]
        public: bool,
        /// chat_bot, website_integration, game_integration, broadcaster_suite, analytics, other
        #[arg(long, default_value = "other")]
        category: String,
        /// Allow the implicit grant (response_type=token)
        #[arg(long)]
        allow_implicit: bool,
        /// Issue RFC 9068 JWT access tokens to this client
        #[arg(long)]
        jwt_access_tokens: bool,
        #[arg(long)]
        json: bool,
    },
    /// List applications
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete an application and every token issued to it
    Delete { client_id: String },
    /// Give an application a new secret
    RotateSecret {
        client_id: String,
        /// Keep the old secret working for this many seconds
        #[arg(long)]
        grace: Option<i64>,
        #[arg(long)]
        json: bool,
    },
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    alloc::init();
    let cli = Cli::parse();
    // Log lines go to stderr from a thread of their own, written a batch at a time: one
    // line per request written inline cost a pipe write and a wake-up of the reader on
    // the request's thread (a fifth of the server's CPU under load). Nothing is dropped
    // (not lossy); `_log` flushes what is left when main returns.
    let (writer, _log) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // Eight thousand lines in flight at most (the default, 128,000, reserves 4 MB).
        .buffered_lines_limit(8192)
        .thread_name("gatehouse-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Token(args) = cli.command {
        // A client command: it talks HTTP to a server and never opens a database.
        return match runtime.block_on(token_cli::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => {
                eprintln!("error: {}", f.message);
                ExitCode::from(f.code)
            }
        };
    }
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Why a command failed, printed as `error: …`: a typed error from the crates, or the
/// text of one made here.
type Failure = Box<dyn std::error::Error>;

/// The first line of standard input: a password, which never goes in argv.
fn read_password() -> Result<String, Failure> {
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).map_err(|e| format!("reading the password: {e}"))?;
    Ok(password.lines().next().unwrap_or("").to_string())
}

/// The issuer `serve` would use without flags: the config file's, else http://LISTEN.
fn default_issuer(file: &FileConfig) -> String {
    let listen = file.listen.clone().unwrap_or_else(|| config::DEFAULT_LISTEN.to_string());
    file.issuer.clone().unwrap_or_else(|| format!("http://{listen}"))
}

fn database_url(global: &GlobalOpts, file: &FileConfig) -> String {
    global
        .database_url
        .clone()
        .or_else(|| file.database_url.clone())
        .unwrap_or_else(|| config::DEFAULT_DATABASE_URL.to_string())
}

async fn authority(global: &GlobalOpts, file: &FileConfig) -> Result<Authority, Failure> {
    let options = gatehouse_store::StoreOptions { wait: file.database_wait()?, staleness: file.cache_staleness()? };
    let store = gatehouse_store::open_with(&database_url(global, file), options).await?;
    let mut auth = Authority::new(store);
    auth.policy = file.policy()?;
    auth.catalog = file.catalog()?;
    Ok(auth)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let file = FileConfig::load(cli.global.config.as_deref())?;
    match &cli.command {
        Command::Backup { file: copy } => return backup(&database_url(&cli.global, &file), &file, copy),
        Command::Restore { file: copy } => return restore(&database_url(&cli.global, &file), &file, copy),
        _ => {}
    }
    let auth = authority(&cli.global, &file).await?;
    match cli.command {
        Command::Serve { listen, issuer } => {
            let limits = file.rate_limits(&database_url(&cli.global, &file))?;
            serve(auth, &file, limits, listen, issuer).await
        }
        Command::Migrate => {
            println!("database is up to date");
            Ok(())
        }
        Command::User(UserCommand::Add { login, email, .. }) => {
            let password = read_password()?;
            let user = accounts::create_user(&auth, &login, &email, &password).await.map_err(|e| e.to_string())?;
            println!("created user {} ({})", user.login, user.id);
            Ok(())
        }
        Command::User(cmd) => {
            let issuer = default_issuer(&file);
            user_cli::run(&auth, cmd, &issuer).await
        }
        Command::Client(cmd) => client_command(&auth, cmd).await,
        Command::Events(args) => events_cli::run(&auth, args).await,
        Command::Token(_) | Command::Backup { .. } | Command::Restore { .. } => {
            unreachable!("handled before the database is opened")
        }
        Command::Keys(cmd) => {
            let keyring = gatehouse_core::oidc::Keyring::new(config::key_encryption_key(&file)?);
            keys_command(&auth, &keyring, cmd).await
        }
    }
}

async fn client_command(auth: &Authority, cmd: ClientCommand) -> Result<(), Failure> {
    match cmd {
        ClientCommand::Create { name, owner, redirect_uris, public, category, allow_implicit, jwt_access_tokens, json } => {
            let owner = auth
                .store
                .find_user_by_login(&owner)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no user with login {owner:?}"))?;
            let new = NewClient {
                name,
                owner_user_id: owner.id,
                category,
                kind: if public { ClientKind::Public } else { ClientKind::Confidential },
                allow_implicit,
                redirect_uris,
                jwt_access_tokens,
            };
            let (client, secret) = registration::register(auth, new).await.map_err(|e| e.to_string())?;
            record(auth, EventKind::ClientCreated, &client.id).await;
            if json {
                let out = serde_json::json!({ "client_id": client.id, "client_secret": secret, "name": client.name });
                println!("{out}");
            } else {
                println!("Created application {:?} ({})", client.name, client.kind.as_str());
                println!("  client_id:     {}", client.id);
                if let Some(s) = secret {
                    println!("  client_secret: {s}");
                    println!("The secret is shown only this once: store it somewhere safe now.");
                }
            }
            Ok(())
        }
        ClientCommand::List { json } => {
            let clients = auth.store.list_clients(None).await.map_err(|e| e.to_string())?;
            if json {
                let list: Vec<_> = clients
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "client_id": c.id, "name": c.name, "type": c.kind.as_str(),
                            "category": c.category, "redirect_uris": c.redirect_uris,
                            "allow_implicit": c.allow_implicit,
                        })
                    })
                    .collect();
                println!("{}", serde_json::json!({ "clients": list }));
            } else if clients.is_empty() {
                println!("no applications");
            } else {
                for c in clients {
                    println!("{}  {:<12}  {}  {}", c.id, c.kind.as_str(), c.name, c.redirect_uris.join(" "));
                }
            }
            Ok(())
        }
        ClientCommand::Delete { client_id } => {
            if auth.store.delete_client(&client_id).await.map_err(|e| e.to_string())? {
                record(auth, EventKind::ClientDeleted, &client_id).await;
                println!("deleted {client_id} and every token issued to it");
                Ok(())
            } else {
                Err(format!("no application with client_id {client_id:?}").into())
            }
        }
        ClientCommand::RotateSecret { client_id, grace, json } => {
            let secret = registration::rotate_secret(auth, &client_id, grace).await.map_err(|e| e.to_string())?;
            record(auth, EventKind::ClientSecretRotated, &client_id).await;
            if json {
                println!("{}", serde_json::json!({ "client_id": client_id, "client_secret": secret }));
            } else {
                println!("New client_secret for {client_id}: {secret}");
                match grace.filter(|g| *g > 0) {
                    Some(g) => println!("The old secret keeps working for {g} more seconds."),
                    None => println!("The old secret no longer works."),
                }
            }
            Ok(())
        }
    }
}

/// Records an operator's change to an application in the event log; the change is made
/// whether or not the record can be written (a warning says so).
async fn record(auth: &Authority, kind: EventKind, client_id: &str) {
    let event = Event::new(kind, auth.now()).client(client_id).detail("by the command line");
    if let Err(e) = auth.store.record_event(&event).await {
        eprintln!("warning: the event log could not record this: {e}");
    }
}

async fn keys_command(auth: &Authority, keyring: &gatehouse_core::oidc::Keyring, cmd: KeysCommand) -> Result<(), Failure> {
    match cmd {
        KeysCommand::Rotate { json } => {
            let kid = keyring.rotate(auth.store.as_ref(), auth.now()).await?;
            if json {
                println!("{}", serde_json::json!({ "kid": kid }));
            } else {
                println!("new signing key {kid}; older keys stay published for {} seconds", gatehouse_core::oidc::RETIRED_KEY_GRACE);
            }
            Ok(())
        }
        KeysCommand::List { json } => {
            let keys = auth.store.list_signing_keys().await.map_err(|e| e.to_string())?;
            if json {
                let list: Vec<_> = keys
                    .iter()
                    .map(|k| serde_json::json!({ "kid": k.kid, "alg": k.alg, "created_at": k.created_at, "retired_at": k.retired_at }))
                    .collect();
                println!("{}", serde_json::json!({ "keys": list }));
            } else if keys.is_empty() {
                println!("no signing keys yet (one is made on first use)");
            } else {
                for k in keys {
                    let state = if k.retired_at.is_some() { "retired" } else { "signing" };
                    println!("{}  {}  {}  created {}", k.kid, k.alg, state, k.created_at);
                }
            }
            Ok(())
        }
    }
}

async fn serve(
    mut auth: Authority,
    file: &FileConfig,
    rate_limits: gatehouse_server::RateLimits,
    listen: Option<String>,
    issuer: Option<String>,
) -> Result<(), Failure> {
    let listen = listen.or_else(|| file.listen.clone()).unwrap_or_else(|| config::DEFAULT_LISTEN.to_string());
    let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let issuer = issuer.or_else(|| file.issuer.clone()).unwrap_or_else(|| format!("http://{local}"));
    auth.issuer = issuer.trim_end_matches('/').into();
    let keyring = gatehouse_core::oidc::Keyring::new(config::key_encryption_key(file)?);
    // The first start makes the first signing key (and proves the key file opens it).
    keyring.ensure(auth.store.as_ref(), auth.now()).await.map_err(|e| format!("signing keys: {e}"))?;
    auth.keyring = Some(std::sync::Arc::new(keyring));
    let config = ServerConfig {
        issuer: issuer.trim_end_matches('/').to_string(),
        scope_as_array: file.scope_as_array.unwrap_or(false),
        purge_interval: file.purge_interval(),
        event_retention: file.event_retention()?,
        rate_limits,
        api_query_tokens: file.api_query_tokens.unwrap_or(true),
        signup_enabled: file.signup_enabled.unwrap_or(true),
        header_read_timeout: file.header_read_timeout()?,
        max_connections: file.max_connections()?,
        query_params: file.oauth_query_params()?,
        mail: file.mail()?,
    };
    if config.mail.is_none() {
        tracing::info!("smtp_url is not set: email verification and password recovery by mail are off");
    }
    tracing::info!(%local, issuer = %config.issuer, "gatehouse listening");
    if !config.secure_cookies() && !is_loopback_issuer(&config.issuer) {
        tracing::warn!(
            issuer = %config.issuer,
            "the issuer is plain http on a non-loopback host: session cookies cannot be Secure; serve Gatehouse over https in production"
        );
    }
    let state = AppState::new(auth, config);
    let shutdown = async {
        shutdown_signal().await;
        tracing::info!("shutting down");
    };
    gatehouse_server::serve(listener, state, shutdown).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Ctrl-C, or SIGTERM from a service manager.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn is_loopback_issuer(issuer: &str) -> bool {
    let host = issuer.trim_start_matches("http://").split(['/', ':']).next().unwrap_or("");
    host == "localhost" || host.starts_with("127.") || issuer.starts_with("http://[::1]")
}

/// The SQLite file a database URL names; PostgreSQL has its own tools.
fn sqlite_path(url: &str) -> Result<&str, Failure> {
    url.strip_prefix("sqlite://").ok_or_else(|| {
        "backup and restore are for SQLite; for PostgreSQL use pg_dump and pg_restore, and keep the key encryption key with the dump".into()
    })
}

/// The key beside the copy, where `restore` looks for it.
fn key_beside(copy: &std::path::Path) -> std::path::PathBuf {
    let mut name = copy.as_os_str().to_owned();
    name.push(".key");
    name.into()
}

fn backup(url: &str, file: &FileConfig, copy: &std::path::Path) -> Result<(), Failure> {
    let path = sqlite_path(url)?;
    let key = config::key_text(file)?;
    gatehouse_store::backup_sqlite(path, copy)?;
    config::write_private(&key_beside(copy), &key).map_err(|e| format!("{}: {e}", key_beside(copy).display()))?;
    println!("backed up {path} to {} and its key to {}", copy.display(), key_beside(copy).display());
    Ok(())
}

fn restore(url: &str, file: &FileConfig, copy: &std::path::Path) -> Result<(), Failure> {
    let path = sqlite_path(url)?;
    let key_file = key_beside(copy);
    let key = std::fs::read_to_string(&key_file).map_err(|e| format!("{}: {e} (backup writes the key there)", key_file.display()))?;
    config::restore_key(file, key.trim())?;
    gatehouse_store::restore_sqlite(copy, path)?;
    println!("restored {} to {path}", copy.display());
    Ok(())
}
