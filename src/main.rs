//! The `gatehouse` command: the server and its admin commands.

// glibc's tunables are what the allocator relies on; other targets keep Rust's default.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod alloc;
mod config;
mod config_check;
mod events_cli;
mod token_cli;
mod user_cli;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
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
        /// Address of /metrics, /healthz and /readyz (default 127.0.0.1:9091; `off` for none)
        #[arg(long, env = "GATEHOUSE_MANAGEMENT_LISTEN")]
        management_listen: Option<String>,
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
    /// Check the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Put a backup made by `backup` in place (the server stopped, the old files moved away)
    Restore {
        /// The copy `backup` made (its key beside it, FILE.key)
        file: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the settings as `serve` would and print those in effect, secrets redacted
    Check,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new signing key; old keys stay in the JWKS until their tokens expire
    Rotate {
        /// One JSON object on stdout
        #[arg(long)]
        json: bool,
    },
    /// List signing keys
    List {
        /// One JSON object on stdout
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user; the password is read from standard input
    Add {
        /// The username: 3 to 25 letters, digits or underscores
        #[arg(long)]
        login: String,
        /// The user's email address
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: passwords never go in argv)
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List user accounts
    List {
        /// One JSON object on standard output, for tools
        #[arg(long)]
        json: bool,
    },
    /// Show one account
    Show {
        /// The account's login
        login: String,
        /// One JSON object on standard output, for tools
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: it cannot sign in, and its sessions and tokens stop working at once
    Disable {
        /// The account's login
        login: String,
        /// One JSON object on standard output, for tools
        #[arg(long)]
        json: bool,
    },
    /// Enable a disabled account (tokens revoked when it was disabled stay revoked)
    Enable {
        /// The account's login
        login: String,
        /// One JSON object on standard output, for tools
        #[arg(long)]
        json: bool,
    },
    /// Delete an account, its consents and tokens, and the applications it owns
    Delete {
        /// The account's login
        login: String,
        /// One JSON object on standard output, for tools
        #[arg(long)]
        json: bool,
    },
    /// Set a new password, read from standard input; every session and token of the user stops working
    SetPassword {
        /// The account's login
        login: String,
        /// Read the password from standard input (required: passwords never go in argv)
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Print a one-time URL to choose a new password (works for 30 minutes; for deployments without mail)
    ResetLink {
        /// The account's login
        login: String,
        /// Public base URL the link starts with (default: the server's issuer setting)
        #[arg(long, env = "GATEHOUSE_ISSUER")]
        issuer: Option<String>,
        /// One JSON object on standard output, for tools
        #[arg(long)]
        json: bool,
    },
    /// Turn two-factor sign-in off, for a user who lost their authenticator and recovery codes
    #[command(name = "disable-2fa")]
    Disable2fa {
        /// The account's login
        login: String,
        /// One JSON object on standard output, for tools
        #[arg(long)]
        json: bool,
    },
    /// Grant or revoke the admin role (the /admin pages)
    Admin {
        /// The account's login
        login: String,
        /// Make the account an administrator
        #[arg(long, conflicts_with = "revoke", required_unless_present = "revoke")]
        grant: bool,
        /// Take the administrator role away
        #[arg(long)]
        revoke: bool,
        /// One JSON object on standard output, for tools
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register an application
    Create {
        /// The application's name, shown to users when they authorize it (unique)
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
        /// One JSON object on stdout
        #[arg(long)]
        json: bool,
    },
    /// List applications
    List {
        /// One JSON object on stdout
        #[arg(long)]
        json: bool,
    },
    /// Show one application (never its secret, which is stored only as a digest)
    Show {
        /// The application's client id
        client_id: String,
        /// One JSON object on standard output, for tools
        #[arg(long)]
        json: bool,
    },
    /// Delete an application and every token issued to it
    Delete {
        /// The application's client id
        client_id: String,
    },
    /// Give an application a new secret
    RotateSecret {
        /// The application's client id
        client_id: String,
        /// Keep the old secret working for this many seconds
        #[arg(long)]
        grace: Option<i64>,
        /// One JSON object on stdout
        #[arg(long)]
        json: bool,
    },
}

/// The command line, with the server-side options (global, for the admin commands)
/// hidden from `token`'s help: a client command never opens a database. Hidden copies
/// of them in `token` take their place (clap copies a global option into a subcommand
/// only where the subcommand has none of that name).
fn command() -> clap::Command {
    Cli::command().mut_subcommand("token", |t| {
        t.arg(clap::Arg::new("config").long("config").value_parser(clap::value_parser!(PathBuf)).hide(true))
            .arg(clap::Arg::new("database_url").long("database-url").value_parser(clap::value_parser!(String)).hide(true))
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    alloc::init();
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // The file is read again, and any error in it reported, when the command runs.
    let log_format = FileConfig::load(cli.global.config.as_deref())
        .ok()
        .and_then(|f| f.log_format().ok())
        .unwrap_or(config::LogFormat::Text);
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    match log_format {
        config::LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One object a line, its fields at the top: {"timestamp","level","message","request_id",…}.
        config::LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(writer)
            .init(),
    }
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
        Command::Config(ConfigCommand::Check) => {
            let path = cli.global.config.clone().or_else(|| {
                let default = std::path::Path::new("gatehouse.toml");
                default.exists().then(|| default.to_path_buf())
            });
            print!("{}", config_check::check(&file, path.as_deref(), &database_url(&cli.global, &file))?);
            return Ok(());
        }
        _ => {}
    }
    if matches!(cli.command, Command::Serve { .. } | Command::Keys(_)) {
        // A PostgreSQL deployment without a key is refused before anything is connected.
        config::key_source(&file, &database_url(&cli.global, &file))?;
    }
    let auth = authority(&cli.global, &file).await?;
    match cli.command {
        Command::Serve { listen, issuer, management_listen } => {
            let url = database_url(&cli.global, &file);
            let limits = file.rate_limits(&url)?;
            serve(auth, &file, &url, limits, Addresses { listen, issuer, management_listen }).await
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
        Command::Token(_) | Command::Backup { .. } | Command::Restore { .. } | Command::Config(_) => {
            unreachable!("handled before the database is opened")
        }
        Command::Keys(cmd) => {
            let url = database_url(&cli.global, &file);
            let keyring = gatehouse_core::oidc::Keyring::new(open_key(&auth, &file, &url).await?.0);
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
        ClientCommand::Show { client_id, json } => {
            let c = auth
                .store
                .find_client(&client_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no application with client_id {client_id:?}"))?;
            let owner = auth.store.find_user(&c.owner_user_id).await.map_err(|e| e.to_string())?.map(|u| u.login);
            let mut shown = client_json(&c);
            shown["owner"] = serde_json::json!(owner);
            if json {
                println!("{shown}");
            } else {
                println!("{}  {}", c.id, c.name);
                println!("  type:             {}", c.kind.as_str());
                println!("  owner:            {}", owner.as_deref().unwrap_or("(deleted user)"));
                println!("  category:         {}", c.category);
                println!("  redirect URIs:    {}", c.redirect_uris.join(" "));
                println!("  implicit grant:   {}", if c.allow_implicit { "allowed" } else { "off" });
                println!("  JWT access tokens: {}", if c.jwt_access_tokens { "yes" } else { "no" });
                println!("  created:          {}", c.created_at);
                if let Some(until) = c.previous_secret_expires_at {
                    println!("  previous secret valid until {until}");
                }
            }
            Ok(())
        }
        ClientCommand::List { json } => {
            let clients = auth.store.list_clients(None).await.map_err(|e| e.to_string())?;
            if json {
                let list: Vec<_> = clients.iter().map(client_json).collect();
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

/// An application as `--json` shows it: what it is, never a secret or its digest.
fn client_json(c: &gatehouse_core::model::Client) -> serde_json::Value {
    serde_json::json!({
        "client_id": c.id, "name": c.name, "type": c.kind.as_str(),
        "category": c.category, "redirect_uris": c.redirect_uris,
        "allow_implicit": c.allow_implicit, "jwt_access_tokens": c.jwt_access_tokens,
        "owner_user_id": c.owner_user_id, "created_at": c.created_at,
        "previous_secret_expires_at": c.previous_secret_expires_at,
    })
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

/// The key encryption key for the database at `url`, and where it came from.
async fn open_key(auth: &Authority, file: &FileConfig, url: &str) -> Result<(gatehouse_core::oidc::KeyEncryptionKey, config::KeySource), Failure> {
    let source = config::key_source(file, url)?;
    // Sealed keys in the database mean a missing key file is a lost key, not a first start.
    let sealed = !auth.store.list_signing_keys().await.map_err(|e| format!("signing keys: {e}"))?.is_empty();
    Ok((config::key_encryption_key(file, &source, url, sealed)?, source))
}

/// Where `serve` listens and what it calls itself, as given by flags or the environment.
struct Addresses {
    listen: Option<String>,
    issuer: Option<String>,
    management_listen: Option<String>,
}

async fn serve(
    mut auth: Authority,
    file: &FileConfig,
    url: &str,
    rate_limits: gatehouse_server::RateLimits,
    Addresses { listen, issuer, management_listen }: Addresses,
) -> Result<(), Failure> {
    let listen = listen.or_else(|| file.listen.clone()).unwrap_or_else(|| config::DEFAULT_LISTEN.to_string());
    let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let issuer = match issuer.or_else(|| file.issuer.clone()) {
        Some(issuer) => issuer,
        // Tokens and metadata would name http://0.0.0.0:…, which no client can reach.
        None if local.ip().is_unspecified() => {
            return Err(format!(
                "--listen {listen} needs --issuer (or GATEHOUSE_ISSUER / issuer in the config file): the public URL \
                 clients reach, e.g. --issuer https://id.example.com; an issuer of http://{local} is never right"
            )
            .into())
        }
        None => format!("http://{local}"),
    };
    auth.issuer = issuer.trim_end_matches('/').into();
    let management_listen = management_listen
        .or_else(|| file.management_listen.clone())
        .unwrap_or_else(|| config::DEFAULT_MANAGEMENT_LISTEN.to_string());
    let management = match management_listen.trim() {
        "off" | "" => None,
        addr => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (management_listen): {e}"))?,
        ),
    };
    // Before anything is counted (handles made earlier would count nowhere), and only
    // when someone can scrape: with no management listener, nothing is recorded.
    if management.is_some() {
        gatehouse_server::metrics::install();
    }
    let management_addr = match &management {
        Some(l) => l.local_addr().map_err(|e| e.to_string())?.to_string(),
        None => "off".to_string(),
    };
    let (key, key_source) = open_key(&auth, file, url).await?;
    let keyring = gatehouse_core::oidc::Keyring::new(key);
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
        shutdown_grace: file.shutdown_grace()?,
        trust_request_id: file.trust_request_id()?,
        console_requires_2fa: file.console_requires_2fa()?,
        mail: file.mail()?,
    };
    if config.mail.is_none() {
        tracing::info!("smtp_url is not set: email verification and password recovery by mail are off");
    }
    tracing::info!(
        version = %env!("CARGO_PKG_VERSION"),
        %local,
        issuer = %config.issuer,
        database = %describe_database(url),
        key = %key_source,
        management = %management_addr,
        "gatehouse listening"
    );
    if !config.secure_cookies() && !is_loopback_issuer(&config.issuer) {
        tracing::warn!(
            issuer = %config.issuer,
            "the issuer is plain http on a non-loopback host: session cookies cannot be Secure; serve Gatehouse over https in production"
        );
    }
    let state = AppState::new(auth, config);
    // One signal stops both listeners.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new connections; finishing the requests in flight");
        let _ = stop.send(true);
    });
    let on_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stopped| *stopped).await;
    };
    let management = management.map(|l| tokio::spawn(gatehouse_server::serve_management(l, state.clone(), on_stop(stopping.clone()))));
    gatehouse_server::serve(listener, state, on_stop(stopping)).await.map_err(|e| e.to_string())?;
    if let Some(task) = management {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The database for the start-up line: a SQLite path, or PostgreSQL's host and database
/// without user, password or options.
fn describe_database(url: &str) -> String {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return format!("sqlite {path}");
    }
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let rest = rest.split('?').next().unwrap_or(rest);
    format!("postgres {rest}")
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
    let key = config::key_text(file, &config::key_source(file, url)?)?;
    gatehouse_store::backup_sqlite(path, copy)?;
    config::write_private(&key_beside(copy), &key).map_err(|e| format!("{}: {e}", key_beside(copy).display()))?;
    println!("backed up {path} to {} and its key to {}", copy.display(), key_beside(copy).display());
    Ok(())
}

fn restore(url: &str, file: &FileConfig, copy: &std::path::Path) -> Result<(), Failure> {
    let path = sqlite_path(url)?;
    let key_file = key_beside(copy);
    let key = std::fs::read_to_string(&key_file).map_err(|e| format!("{}: {e} (backup writes the key there)", key_file.display()))?;
    config::restore_key(file, &config::key_source(file, url)?, key.trim())?;
    gatehouse_store::restore_sqlite(copy, path)?;
    println!("restored {} to {path}", copy.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_start_up_line_names_the_database_without_credentials() {
        assert_eq!(super::describe_database("postgres://gh:hunter2@db.internal:5432/gh?sslmode=require"), "postgres db.internal:5432/gh");
        assert_eq!(super::describe_database("postgresql://db/gh"), "postgres db/gh");
        assert_eq!(super::describe_database("sqlite:///var/lib/gatehouse/gatehouse.db"), "sqlite /var/lib/gatehouse/gatehouse.db");
    }
}
