//! Settings: flags first, then `GATEHOUSE_*` environment variables (clap reads both),
//! then the TOML config file, then defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_core::oidc::{KeyEncryptionKey, KeyError};
use gatehouse_core::policy::Policy;
use gatehouse_core::scope::{ScopeCatalog, ScopeDef};
use serde::Deserialize;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://gatehouse.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_MANAGEMENT_LISTEN: &str = "127.0.0.1:9091";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Why the settings cannot be used; printed to the operator as is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", .path.display())]
    Parse { path: PathBuf, source: toml::de::Error },
    /// A setting outside what it may be; the text names it.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{}: {source}", .path.display())]
    KeyFile { path: PathBuf, source: KeyError },
    #[error("cannot create {}: {source}", .path.display())]
    CreateKeyFile { path: PathBuf, source: std::io::Error },
}

/// The config file. Every field is optional; gatehouse.example.toml lists them all
/// (a test keeps it complete) and docs/configuration.md explains them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub listen: Option<String>,
    pub issuer: Option<String>,
    pub scope_as_array: Option<bool>,
    pub purge_interval_seconds: Option<u64>,
    /// Days security events are kept before the purge deletes them (default 90).
    pub event_retention_days: Option<u64>,
    /// How long a request waits for an unavailable database before it is answered 503.
    pub database_wait_seconds: Option<u64>,
    /// How long a cached lookup may be served (milliseconds; 0 turns the cache off).
    pub cache_staleness_ms: Option<u64>,
    pub api_query_tokens: Option<bool>,
    pub signup_enabled: Option<bool>,
    /// Seconds a connection may take to send its headers, or stay idle between requests.
    pub header_read_timeout_seconds: Option<u64>,
    /// Connections served at once.
    pub max_connections: Option<usize>,
    /// Seconds requests in flight get to finish after SIGTERM.
    pub shutdown_grace_seconds: Option<u64>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (`off`: nowhere).
    pub management_listen: Option<String>,
    /// `text` (the default) or `json`, one object a line.
    pub log_format: Option<String>,
    /// Take the request id from `X-Request-Id` (a proxy in front sets it).
    pub trust_request_id: Option<bool>,
    /// Accept parameters of the OAuth POST endpoints in the query string, as Twitch's
    /// clients send them (`GATEHOUSE_OAUTH_QUERY_PARAMS` wins over the file).
    pub oauth_query_params: Option<bool>,
    /// The developer console only for accounts with two-factor sign-in
    /// (`GATEHOUSE_CONSOLE_REQUIRES_2FA` wins over the file).
    pub console_requires_2fa: Option<bool>,
    /// Base64 of 32 bytes that encrypt the OpenID Connect signing keys at rest.
    pub key_encryption_key: Option<String>,
    /// A file holding that key, created on first start when missing (default gatehouse.key).
    pub key_file: Option<std::path::PathBuf>,
    /// The mail relay: `smtp://host:port` (plain on loopback, STARTTLS elsewhere) or
    /// `smtps://host:port`; unset turns mail (verification, recovery) off.
    pub smtp_url: Option<String>,
    /// The From address of mail, e.g. "Gatehouse <no-reply@example.com>".
    pub mail_from: Option<String>,
    /// Relay credentials, when not in `smtp_url`.
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub rate_limits: RateLimitConfig,
    /// Replaces the default scope catalog when given.
    pub scopes: Option<Vec<ScopeDef>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub access_token_ttl: Option<i64>,
    pub code_ttl: Option<i64>,
    pub public_refresh_idle_ttl: Option<i64>,
    pub refresh_reuse_grace: Option<i64>,
    pub max_refresh_per_client_user: Option<i64>,
    pub max_refresh_per_user: Option<i64>,
    pub allow_plain_pkce: Option<bool>,
    pub session_ttl: Option<i64>,
    pub jwt_access_tokens: Option<bool>,
}

/// Budgets: `capacity` requests refilled over `window_seconds`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Demo API, per client (app tokens) or per client and user (user tokens).
    pub api: Option<i64>,
    /// Token endpoint, per client.
    pub token: Option<i64>,
    /// Token and device endpoints, per (public client, caller address).
    pub token_per_address: Option<i64>,
    /// Sign-in attempts, per client address.
    pub login: Option<i64>,
    /// Sign-in attempts per account from unknown browsers, over `login_account_window_seconds`.
    pub login_account: Option<i64>,
    pub login_account_window_seconds: Option<i64>,
    /// Mails with a link (recovery, verification) to one address per hour.
    pub recovery_mail: Option<i64>,
    pub window_seconds: Option<i64>,
    /// Share buckets between instances through the database (default: on for PostgreSQL).
    pub shared: Option<bool>,
    pub trust_forwarded_for: Option<bool>,
    /// Proxies in front that each append to `X-Forwarded-For` (implies trusting it).
    pub trusted_proxies: Option<usize>,
}

impl FileConfig {
    pub fn rate_limits(&self, database_url: &str) -> Result<gatehouse_server::RateLimits, ConfigError> {
        let d = gatehouse_server::RateLimits::default();
        let r = &self.rate_limits;
        let window = r.window_seconds.unwrap_or(d.api.window);
        let budget = |name: &str, v: Option<i64>, default: i64| {
            let capacity = v.unwrap_or(default);
            // Buckets untouched for a day are purged as full: no window may be longer.
            // A billion keeps the bucket arithmetic (thousandths × seconds) inside 64 bits.
            if !(1..=1_000_000_000).contains(&capacity) || !(1..=86_400).contains(&window) {
                return Err(ConfigError::Invalid(format!(
                    "rate_limits.{name} must be between 1 and 1000000000 and window_seconds between 1 and 86400"
                )));
            }
            Ok(gatehouse_core::model::RateBudget { capacity, window })
        };
        Ok(gatehouse_server::RateLimits {
            api: budget("api", r.api, d.api.capacity)?,
            token: budget("token", r.token, d.token.capacity)?,
            token_per_address: budget("token_per_address", r.token_per_address, d.token_per_address.capacity)?,
            login: budget("login", r.login, d.login.capacity)?,
            login_account: {
                let b = budget("login_account", r.login_account, d.login_account.capacity)?;
                let window = r.login_account_window_seconds.unwrap_or(d.login_account.window);
                if !(1..=86_400).contains(&window) {
                    return Err(ConfigError::Invalid("rate_limits.login_account_window_seconds must be between 1 and 86400".into()));
                }
                gatehouse_core::model::RateBudget { window, ..b }
            },
            recovery_mail: match r.recovery_mail {
                None => d.recovery_mail,
                Some(n @ 1..=1000) => gatehouse_core::model::RateBudget { capacity: n, window: 3600 },
                Some(_) => return Err(ConfigError::Invalid("rate_limits.recovery_mail must be between 1 and 1000".into())),
            },
            shared: r.shared.unwrap_or(database_url.starts_with("postgres")),
            trust_forwarded_for: r.trust_forwarded_for.unwrap_or(r.trusted_proxies.is_some()),
            trusted_proxies: match r.trusted_proxies {
                None => d.trusted_proxies,
                Some(n @ 1..=16) => n,
                Some(_) => return Err(ConfigError::Invalid("rate_limits.trusted_proxies must be between 1 and 16".into())),
            },
        })
    }

    /// Reads `path` if given (it must exist), else `./gatehouse.toml` if that exists.
    pub fn load(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
        let path: PathBuf = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new("gatehouse.toml").exists() => PathBuf::from("gatehouse.toml"),
            None => return Ok(FileConfig::default()),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path, source })
    }

    pub fn policy(&self) -> Result<Policy, ConfigError> {
        let d = Policy::default();
        let p = &self.policy;
        let policy = Policy {
            access_token_ttl: p.access_token_ttl.unwrap_or(d.access_token_ttl),
            code_ttl: p.code_ttl.unwrap_or(d.code_ttl),
            public_refresh_idle_ttl: p.public_refresh_idle_ttl.unwrap_or(d.public_refresh_idle_ttl),
            refresh_reuse_grace: p.refresh_reuse_grace.unwrap_or(d.refresh_reuse_grace),
            max_refresh_per_client_user: p.max_refresh_per_client_user.unwrap_or(d.max_refresh_per_client_user),
            max_refresh_per_user: p.max_refresh_per_user.unwrap_or(d.max_refresh_per_user),
            allow_plain_pkce: p.allow_plain_pkce.unwrap_or(d.allow_plain_pkce),
            session_ttl: p.session_ttl.unwrap_or(d.session_ttl),
            jwt_access_tokens: p.jwt_access_tokens.unwrap_or(d.jwt_access_tokens),
        };
        let positive = [
            ("access_token_ttl", policy.access_token_ttl),
            ("code_ttl", policy.code_ttl),
            ("public_refresh_idle_ttl", policy.public_refresh_idle_ttl),
            ("max_refresh_per_client_user", policy.max_refresh_per_client_user),
            ("max_refresh_per_user", policy.max_refresh_per_user),
            ("session_ttl", policy.session_ttl),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v <= 0) {
            return Err(ConfigError::Invalid(format!("policy.{name} must be positive")));
        }
        if policy.code_ttl > 600 {
            return Err(ConfigError::Invalid("policy.code_ttl may be at most 600 seconds (RFC 6749 §4.1.2)".into()));
        }
        Ok(policy)
    }

    pub fn catalog(&self) -> Result<ScopeCatalog, ConfigError> {
        match &self.scopes {
            None => Ok(ScopeCatalog::default()),
            Some(list) => {
                for s in list {
                    // RFC 6749 §3.3 scope-token characters, minus space and quote.
                    let ok = !s.name.is_empty()
                        && s.name.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
                    if !ok {
                        return Err(ConfigError::Invalid(format!("scope name {:?} is not a valid scope token", s.name)));
                    }
                }
                Ok(ScopeCatalog::new(list.clone()))
            }
        }
    }

    /// From `GATEHOUSE_DATABASE_WAIT_SECONDS` or the file; 3 s by default.
    pub fn database_wait(&self) -> Result<Duration, ConfigError> {
        let seconds = match std::env::var("GATEHOUSE_DATABASE_WAIT_SECONDS") {
            Ok(text) => text
                .parse::<u64>()
                .map_err(|_| ConfigError::Invalid(format!("GATEHOUSE_DATABASE_WAIT_SECONDS={text:?} is not a number of seconds")))?,
            Err(_) => self.database_wait_seconds.unwrap_or(3),
        };
        Ok(Duration::from_secs(seconds.clamp(1, 60)))
    }

    /// From `GATEHOUSE_CACHE_STALENESS_MS` or the file; 1 s by default, 60 s at most.
    pub fn cache_staleness(&self) -> Result<Duration, ConfigError> {
        let ms = match std::env::var("GATEHOUSE_CACHE_STALENESS_MS") {
            Ok(text) => text
                .parse::<u64>()
                .map_err(|_| ConfigError::Invalid(format!("GATEHOUSE_CACHE_STALENESS_MS={text:?} is not a number of milliseconds")))?,
            Err(_) => self.cache_staleness_ms.unwrap_or(1000),
        };
        Ok(Duration::from_millis(ms.min(60_000)))
    }

    pub fn header_read_timeout(&self) -> Result<Duration, ConfigError> {
        match self.header_read_timeout_seconds {
            None => Ok(gatehouse_server::ServerConfig::default().header_read_timeout),
            Some(n @ 1..=3600) => Ok(Duration::from_secs(n)),
            Some(_) => Err(ConfigError::Invalid("header_read_timeout_seconds must be between 1 and 3600".into())),
        }
    }

    pub fn max_connections(&self) -> Result<usize, ConfigError> {
        match self.max_connections {
            None => Ok(gatehouse_server::ServerConfig::default().max_connections),
            Some(n @ 1..=1_000_000) => Ok(n),
            Some(_) => Err(ConfigError::Invalid("max_connections must be between 1 and 1000000".into())),
        }
    }

    pub fn shutdown_grace(&self) -> Result<Duration, ConfigError> {
        match self.shutdown_grace_seconds {
            None => Ok(gatehouse_server::ServerConfig::default().shutdown_grace),
            Some(n @ 0..=3600) => Ok(Duration::from_secs(n)),
            Some(_) => Err(ConfigError::Invalid("shutdown_grace_seconds must be between 0 and 3600".into())),
        }
    }

    /// On unless switched off; strict RFC 6749 deployments take parameters from the body only.
    pub fn oauth_query_params(&self) -> Result<bool, ConfigError> {
        match std::env::var("GATEHOUSE_OAUTH_QUERY_PARAMS") {
            Ok(text) => parse_switch(&text)
                .ok_or_else(|| ConfigError::Invalid("GATEHOUSE_OAUTH_QUERY_PARAMS must be true or false".into())),
            Err(_) => Ok(self.oauth_query_params.unwrap_or(true)),
        }
    }

    /// From `GATEHOUSE_LOG_FORMAT` or the file; text by default.
    pub fn log_format(&self) -> Result<LogFormat, ConfigError> {
        let text = std::env::var("GATEHOUSE_LOG_FORMAT").ok().or_else(|| self.log_format.clone());
        match text.as_deref().map(str::trim) {
            None | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(ConfigError::Invalid(format!("log_format must be \"text\" or \"json\", not {other:?}"))),
        }
    }

    pub fn trust_request_id(&self) -> Result<bool, ConfigError> {
        match std::env::var("GATEHOUSE_TRUST_REQUEST_ID") {
            Ok(text) => parse_switch(&text).ok_or_else(|| ConfigError::Invalid("GATEHOUSE_TRUST_REQUEST_ID must be true or false".into())),
            Err(_) => Ok(self.trust_request_id.unwrap_or(false)),
        }
    }

    /// Off unless switched on: the console asks for two-factor sign-in, as Twitch's does.
    pub fn console_requires_2fa(&self) -> Result<bool, ConfigError> {
        match std::env::var("GATEHOUSE_CONSOLE_REQUIRES_2FA") {
            Ok(text) => parse_switch(&text)
                .ok_or_else(|| ConfigError::Invalid("GATEHOUSE_CONSOLE_REQUIRES_2FA must be true or false".into())),
            Err(_) => Ok(self.console_requires_2fa.unwrap_or(false)),
        }
    }

    /// Mail settings from `GATEHOUSE_SMTP_URL`, `GATEHOUSE_MAIL_FROM`,
    /// `GATEHOUSE_SMTP_USERNAME`, `GATEHOUSE_SMTP_PASSWORD` or the file; None without
    /// an SMTP URL. Checked here, so a bad setting stops the start.
    pub fn mail(&self) -> Result<Option<gatehouse_server::mail::MailSettings>, ConfigError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let Some(smtp_url) = env("GATEHOUSE_SMTP_URL").or_else(|| self.smtp_url.clone()) else { return Ok(None) };
        let from = env("GATEHOUSE_MAIL_FROM")
            .or_else(|| self.mail_from.clone())
            .ok_or_else(|| ConfigError::Invalid("mail_from (GATEHOUSE_MAIL_FROM) is required when smtp_url is set".into()))?;
        let settings = gatehouse_server::mail::MailSettings {
            smtp_url,
            from,
            username: env("GATEHOUSE_SMTP_USERNAME").or_else(|| self.smtp_username.clone()),
            password: env("GATEHOUSE_SMTP_PASSWORD").or_else(|| self.smtp_password.clone()),
        };
        gatehouse_server::mail::Mailer::check(&settings).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(Some(settings))
    }

    pub fn purge_interval(&self) -> Duration {
        Duration::from_secs(self.purge_interval_seconds.unwrap_or(60).max(1))
    }

    /// From `GATEHOUSE_EVENT_RETENTION_DAYS` or the file; 90 days by default, one at least.
    pub fn event_retention(&self) -> Result<Duration, ConfigError> {
        let days = match std::env::var("GATEHOUSE_EVENT_RETENTION_DAYS") {
            Ok(text) => text.trim().parse().map_err(|_| {
                ConfigError::Invalid(format!("GATEHOUSE_EVENT_RETENTION_DAYS={text:?} is not a number of days"))
            })?,
            Err(_) => self.event_retention_days.unwrap_or(90),
        };
        // At most a century: a larger number (meant as "for ever") must not overflow into
        // a cutoff in the future, which would purge everything.
        Ok(Duration::from_secs(days.clamp(1, 36_500) * 86_400))
    }
}

fn parse_switch(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Where the key that seals signing keys comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `GATEHOUSE_KEY_ENCRYPTION_KEY`.
    Env,
    /// `key_encryption_key` in the config file.
    Config,
    /// A key file: `key_file`, or beside the SQLite database by default.
    File(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env => f.write_str("env GATEHOUSE_KEY_ENCRYPTION_KEY"),
            KeySource::Config => f.write_str("config key_encryption_key"),
            KeySource::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// The key file beside a SQLite database: `data/gatehouse.db` keeps its key in
/// `data/gatehouse.key`, wherever the server is started from.
pub fn default_key_file(sqlite_path: &str) -> PathBuf {
    Path::new(sqlite_path).with_extension("key")
}

/// Where the key comes from for the database `database_url`: the environment, the config
/// file, `key_file`, or (SQLite only) the file beside the database. PostgreSQL has no
/// "beside": every instance must be given the same key, so it is required there.
pub fn key_source(file: &FileConfig, database_url: &str) -> Result<KeySource, ConfigError> {
    if std::env::var_os("GATEHOUSE_KEY_ENCRYPTION_KEY").is_some() {
        return Ok(KeySource::Env);
    }
    if file.key_encryption_key.is_some() {
        return Ok(KeySource::Config);
    }
    if let Some(path) = &file.key_file {
        return Ok(KeySource::File(path.clone()));
    }
    match database_url.strip_prefix("sqlite://") {
        Some(path) if !path.is_empty() && path != ":memory:" => Ok(KeySource::File(default_key_file(path))),
        Some(_) => Ok(KeySource::File("gatehouse.key".into())),
        None => Err(ConfigError::Invalid(
            "a PostgreSQL deployment needs its key encryption key given explicitly, the same on every instance: \
             set key_file (a file holding base64 of 32 random bytes, e.g. `head -c32 /dev/urandom | base64`) \
             or GATEHOUSE_KEY_ENCRYPTION_KEY"
                .into(),
        )),
    }
}

/// The key that seals signing keys, from `source`. A missing key file is created (mode
/// 0600) only for a database that has nothing sealed yet (`sealed` is false): a fresh key
/// for a database with sealed keys would open none of them.
pub fn key_encryption_key(
    file: &FileConfig,
    source: &KeySource,
    database_url: &str,
    sealed: bool,
) -> Result<KeyEncryptionKey, ConfigError> {
    let path = match source {
        KeySource::Env | KeySource::Config => return Ok(KeyEncryptionKey::from_base64(&configured_key(file).unwrap_or_default())?),
        KeySource::File(path) => path.clone(),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => KeyEncryptionKey::from_base64(&text).map_err(|source| ConfigError::KeyFile { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && sealed => {
            // Earlier builds kept the key file in the working directory.
            let old = Path::new("gatehouse.key");
            let hint = if old.exists() && old != path {
                format!(" (an older Gatehouse kept it in {}: move that file to {})", old.display(), path.display())
            } else {
                String::new()
            };
            Err(ConfigError::Invalid(format!(
                "the database {} holds signing keys sealed with a key encryption key, but its key file {} is missing{hint}: \
                 put the key back there (or set key_file / GATEHOUSE_KEY_ENCRYPTION_KEY); a new key would open none of them",
                gatehouse_store::redact_url(database_url),
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, text) = KeyEncryptionKey::generate();
            if let Err(source) = write_private(&path, &text) {
                return Err(ConfigError::CreateKeyFile { path, source });
            }
            tracing::info!(path = %path.display(), "created a new key encryption key file; back it up with the database");
            Ok(key)
        }
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

/// The key given as text, in the environment or the config file.
fn configured_key(file: &FileConfig) -> Option<String> {
    std::env::var("GATEHOUSE_KEY_ENCRYPTION_KEY").ok().or_else(|| file.key_encryption_key.clone())
}

/// The key encryption key as text, for a backup. A missing key file is an error here:
/// a backup without the key that opens it restores nothing.
pub fn key_text(file: &FileConfig, source: &KeySource) -> Result<String, ConfigError> {
    match source {
        KeySource::Env | KeySource::Config => Ok(configured_key(file).unwrap_or_default().trim().to_string()),
        KeySource::File(path) => {
            std::fs::read_to_string(path).map(|t| t.trim().to_string()).map_err(|source| ConfigError::Read { path: path.clone(), source })
        }
    }
}

/// Puts a backup's key where the server will read it: into the key file when the key
/// comes from one and it does not exist yet. A different key already configured is an
/// error: the restored database's sealed keys would not open with it.
pub fn restore_key(file: &FileConfig, source: &KeySource, text: &str) -> Result<(), ConfigError> {
    KeyEncryptionKey::from_base64(text)?;
    let (existing, place) = match source {
        KeySource::Env | KeySource::Config => (configured_key(file), source.to_string()),
        KeySource::File(path) => match std::fs::read_to_string(path) {
            Ok(key) => (Some(key), path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return write_private(path, text).map_err(|source| ConfigError::CreateKeyFile { path: path.clone(), source })
            }
            Err(source) => return Err(ConfigError::Read { path: path.clone(), source }),
        },
    };
    match existing {
        Some(key) if key.trim() == text => Ok(()),
        _ => Err(ConfigError::Invalid(format!(
            "a different key encryption key is configured ({place}); the backup's key is needed to open its signing keys"
        ))),
    }
}

pub fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(toml_text: &str) -> Result<gatehouse_server::RateLimits, String> {
        let file: FileConfig = toml::from_str(toml_text).expect("valid TOML");
        file.rate_limits("sqlite://x.db").map_err(|e| e.to_string())
    }

    #[test]
    fn switches_read_the_usual_spellings() {
        assert_eq!(parse_switch(" False"), Some(false));
        assert_eq!(parse_switch("1"), Some(true));
        assert_eq!(parse_switch("maybe"), None);
        let file: FileConfig = toml::from_str("oauth_query_params = false\n").expect("valid TOML");
        assert_eq!(file.oauth_query_params, Some(false));
    }

    #[test]
    fn mail_needs_a_from_address_and_a_usable_url() {
        let file = |text: &str| toml::from_str::<FileConfig>(text).expect("valid TOML");
        assert!(file("").mail().unwrap().is_none(), "no smtp_url: mail is off");
        let err = file("smtp_url = \"smtp://127.0.0.1:2525\"\n").mail().unwrap_err().to_string();
        assert!(err.contains("mail_from"), "{err}");
        let err = file("smtp_url = \"ftp://x\"\nmail_from = \"a@b.c\"\n").mail().unwrap_err().to_string();
        assert!(err.contains("smtp://"), "{err}");
        let ok = file("smtp_url = \"smtps://u:pw@mail.example.com\"\nmail_from = \"Gatehouse <a@b.c>\"\nsmtp_password = \"p\"\n");
        let settings = ok.mail().unwrap().expect("mail on");
        assert_eq!((settings.from.as_str(), settings.password.as_deref()), ("Gatehouse <a@b.c>", Some("p")));
        assert_eq!(limits("[rate_limits]\nrecovery_mail = 5\n").unwrap().recovery_mail.capacity, 5);
        assert!(limits("[rate_limits]\nrecovery_mail = 0\n").is_err());
    }

    #[test]
    fn rate_budgets_are_bounded_so_the_bucket_arithmetic_cannot_overflow() {
        let ok = limits("[rate_limits]\ntoken = 1000000000\nwindow_seconds = 86400\n").expect("the largest budget");
        assert_eq!(ok.token.capacity, 1_000_000_000);
        for bad in ["token = 1000000001", "token = 0", "api = -5", "window_seconds = 86401"] {
            let err = limits(&format!("[rate_limits]\n{bad}\n")).expect_err(bad);
            assert!(err.contains("rate_limits."), "{bad}: {err}");
        }
    }
}
