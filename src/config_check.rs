//! `gatehouse config check`: validates the settings as `serve` would, and prints the ones
//! in effect (defaults from `gatehouse.example.toml`, then the file, then the environment),
//! secrets redacted.

use toml::{Table, Value};

use crate::config::{self, ConfigError, FileConfig};

/// The example file, the defaults' one source for what is printed.
pub const EXAMPLE: &str = include_str!("../gatehouse.example.toml");

/// Checks every setting; the text to print, or what is wrong.
pub fn check(file: &FileConfig, path: Option<&std::path::Path>, database_url: &str) -> Result<String, ConfigError> {
    file.policy()?;
    file.catalog()?;
    file.rate_limits(database_url)?;
    file.database_wait()?;
    file.cache_staleness()?;
    file.header_read_timeout()?;
    file.max_connections()?;
    file.oauth_query_params()?;
    file.shutdown_grace()?;
    file.log_format()?;
    file.trust_request_id()?;
    let key = config::key_source(file, database_url)?;

    let mut effective: Table = toml::from_str(EXAMPLE).map_err(|source| ConfigError::Parse { path: "gatehouse.example.toml".into(), source })?;
    if let Some(path) = path {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let own: Table = toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source })?;
        overlay(&mut effective, own);
    }
    // Top-level settings named in the environment win over the file, as for `serve`.
    let names: Vec<String> = effective.keys().cloned().chain(["issuer".into(), "key_file".into()]).collect();
    for name in names {
        if let Ok(value) = std::env::var(format!("GATEHOUSE_{}", name.to_ascii_uppercase())) {
            let typed = match effective.get(&name) {
                Some(Value::Boolean(_)) => value.parse().map(Value::Boolean).unwrap_or(Value::String(value)),
                Some(Value::Integer(_)) => value.parse().map(Value::Integer).unwrap_or(Value::String(value)),
                _ => Value::String(value),
            };
            effective.insert(name, typed);
        }
    }
    effective.insert("database_url".into(), Value::String(database_url.to_string()));
    effective.insert("key_source".into(), Value::String(key.to_string()));
    let mut out = String::new();
    if let Some(path) = path {
        out.push_str(&format!("# {} is valid; the settings in effect:\n", path.display()));
    } else {
        out.push_str("# no config file; the settings in effect:\n");
    }
    write_table(&mut out, &effective, "");
    Ok(out)
}

fn overlay(base: &mut Table, own: Table) {
    for (k, v) in own {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => overlay(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// A setting whose value must not be printed: keys, passwords, secrets.
fn secret(name: &str) -> bool {
    ["key_encryption_key", "password", "secret"].iter().any(|s| name.contains(s))
}

fn write_table(out: &mut String, table: &Table, prefix: &str) {
    for (k, v) in table.iter().filter(|(_, v)| !is_table(v)) {
        out.push_str(&format!("{k} = {}\n", shown(k, v)));
    }
    for (k, v) in table.iter().filter(|(_, v)| is_table(v)) {
        match v {
            Value::Table(t) => {
                out.push_str(&format!("\n[{prefix}{k}]\n"));
                write_table(out, t, &format!("{prefix}{k}."));
            }
            Value::Array(items) => {
                for item in items {
                    out.push_str(&format!("\n[[{prefix}{k}]]\n"));
                    if let Value::Table(t) = item {
                        write_table(out, t, &format!("{prefix}{k}."));
                    }
                }
            }
            _ => {}
        }
    }
}

fn is_table(v: &Value) -> bool {
    match v {
        Value::Table(_) => true,
        Value::Array(items) => !items.is_empty() && items.iter().all(|i| matches!(i, Value::Table(_))),
        _ => false,
    }
}

fn shown(name: &str, v: &Value) -> String {
    if secret(name) {
        return "\"(set; redacted)\"".into();
    }
    match v {
        // URLs may carry a password: postgres://user:***@host/db.
        Value::String(s) if s.contains("://") => quote(&gatehouse_store::redact_url(s)),
        Value::String(s) => quote(s),
        Value::Array(items) => format!("[{}]", items.iter().map(|i| shown(name, i)).collect::<Vec<_>>().join(", ")),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => d.to_string(),
        Value::Table(_) => "{…}".into(),
    }
}

/// A TOML basic string (JSON's escapes are TOML's).
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::de::{self, Deserialize, Visitor};

    use super::*;
    use crate::config::{PolicyConfig, RateLimitConfig};

    /// The names serde reads for `T`: serde's derive hands them to `deserialize_struct`,
    /// so a setting added to a config struct is known here without a list to update.
    fn serde_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        struct Names(Option<&'static [&'static str]>);
        #[derive(Debug)]
        struct Stop;
        impl std::fmt::Display for Stop {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("stop")
            }
        }
        impl std::error::Error for Stop {}
        impl de::Error for Stop {
            fn custom<M: std::fmt::Display>(_: M) -> Self {
                Stop
            }
        }
        impl<'de> de::Deserializer<'de> for &mut Names {
            type Error = Stop;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
                Err(Stop)
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Stop> {
                self.0 = Some(fields);
                Err(Stop)
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
                unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
            }
        }
        let mut names = Names(None);
        let _ = T::deserialize(&mut names);
        names.0.expect("a struct")
    }

    /// Each section's setting names in the example, commented out or not.
    fn example_names() -> std::collections::BTreeMap<String, BTreeSet<String>> {
        let mut sections = std::collections::BTreeMap::<String, BTreeSet<String>>::new();
        let mut section = String::new();
        for line in EXAMPLE.lines() {
            let line = line.trim_start_matches('#').trim();
            if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
                sections.entry(String::new()).or_default().insert(name.to_string());
                section = name.to_string();
            } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                sections.entry(String::new()).or_default().insert(name.to_string());
                section = name.to_string();
            } else if let Some((name, _)) = line.split_once(" = ") {
                if name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                    sections.entry(section.clone()).or_default().insert(name.to_string());
                }
            }
        }
        sections
    }

    #[test]
    fn the_example_lists_every_setting_the_code_reads() {
        let names = example_names();
        for (section, fields) in [
            ("", serde_fields::<FileConfig>()),
            ("policy", serde_fields::<PolicyConfig>()),
            ("rate_limits", serde_fields::<RateLimitConfig>()),
        ] {
            let listed = names.get(section).cloned().unwrap_or_default();
            let missing: Vec<_> = fields.iter().filter(|f| !listed.contains(**f)).collect();
            assert!(missing.is_empty(), "gatehouse.example.toml lacks {missing:?} in [{section}]");
            // And lists nothing the code does not read (a renamed setting).
            let stale: Vec<_> = listed.iter().filter(|l| !fields.contains(&l.as_str())).collect();
            assert!(stale.is_empty(), "gatehouse.example.toml lists {stale:?} in [{section}], which the code does not read");
        }
        assert!(serde_fields::<FileConfig>().contains(&"management_listen"), "the field names are read");
    }

    #[test]
    fn the_example_parses_and_its_values_are_the_defaults() {
        let example: FileConfig = toml::from_str(EXAMPLE).expect("the example is a valid config file");
        let none = FileConfig::default();
        let url = config::DEFAULT_DATABASE_URL;
        assert_eq!(example.database_url.as_deref(), Some(url));
        assert_eq!(example.listen.as_deref(), Some(config::DEFAULT_LISTEN));
        assert_eq!(example.management_listen.as_deref(), Some(config::DEFAULT_MANAGEMENT_LISTEN));
        let same = |a: String, b: String, what: &str| assert_eq!(a, b, "the example's {what} is not the default");
        same(format!("{:?}", example.policy().unwrap()), format!("{:?}", none.policy().unwrap()), "[policy]");
        same(format!("{:?}", example.rate_limits(url).unwrap()), format!("{:?}", none.rate_limits(url).unwrap()), "[rate_limits]");
        same(format!("{:?}", example.purge_interval()), format!("{:?}", none.purge_interval()), "purge_interval_seconds");
        same(format!("{:?}", example.header_read_timeout()), format!("{:?}", none.header_read_timeout()), "header_read_timeout");
        same(format!("{:?}", example.max_connections()), format!("{:?}", none.max_connections()), "max_connections");
        same(format!("{:?}", example.shutdown_grace()), format!("{:?}", none.shutdown_grace()), "shutdown_grace_seconds");
        same(format!("{:?}", example.log_format()), format!("{:?}", none.log_format()), "log_format");
        same(format!("{:?}", example.trust_request_id()), format!("{:?}", none.trust_request_id()), "trust_request_id");
        same(format!("{:?}", example.oauth_query_params()), format!("{:?}", none.oauth_query_params()), "oauth_query_params");
        same(format!("{:?}", example.database_wait()), format!("{:?}", none.database_wait()), "database_wait_seconds");
        same(format!("{:?}", example.cache_staleness()), format!("{:?}", none.cache_staleness()), "cache_staleness_ms");
        assert_eq!(example.scope_as_array.unwrap(), false);
        assert_eq!(example.api_query_tokens.unwrap(), true);
        assert_eq!(example.signup_enabled.unwrap(), true);
    }

    #[test]
    fn secrets_are_redacted() {
        let mut t = Table::new();
        t.insert("key_encryption_key".into(), Value::String("c2VjcmV0".into()));
        t.insert("database_url".into(), Value::String("postgres://gh:hunter2@db/gh".into()));
        t.insert("smtp_url".into(), Value::String("smtp://mailer:pa55word@mail:587".into()));
        t.insert("access_token_ttl".into(), Value::Integer(3600));
        let mut out = String::new();
        write_table(&mut out, &t, "");
        for leaked in ["c2VjcmV0", "hunter2", "pa55word"] {
            assert!(!out.contains(leaked), "{leaked} printed: {out}");
        }
        assert!(out.contains("access_token_ttl = 3600"), "{out}");
    }
}
