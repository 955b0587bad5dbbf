//! The real `gatehouse` binary, run as a child process.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

pub fn gatehouse(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("GATEHOUSE_DATABASE_URL")
        .env_remove("GATEHOUSE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gatehouse");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

pub struct Server {
    pub child: Child,
    pub base: String,
    /// The management listener: http://ADDR of /metrics, /healthz, /readyz.
    pub management: String,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(dir: &std::path::Path) -> Server {
    serve_on(dir, None)
}

/// `gatehouse serve` in `dir`, on `database_url` or the default SQLite file there.
pub fn serve_on(dir: &std::path::Path, database_url: Option<&str>) -> Server {
    serve_with(dir, database_url, &[])
}

/// The value of `name` in a start-up line, text (`name=value`) or JSON (`"name":"value"`).
fn field(line: &str, name: &str) -> Option<String> {
    if let Some(i) = line.find(&format!("{name}=")) {
        return line[i + name.len() + 1..].split_whitespace().next().map(str::to_string);
    }
    let key = format!("\"{name}\":\"");
    let i = line.find(&key)? + key.len();
    line[i..].split('"').next().map(str::to_string)
}

/// `serve_on`, with more environment variables. The management listener takes a free
/// port, so that servers of tests running at once do not collide.
pub fn serve_with(dir: &std::path::Path, database_url: Option<&str>, env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.env("GATEHOUSE_MANAGEMENT_LISTEN", "127.0.0.1:0");
    if database_url.is_some_and(|u| u.starts_with("postgres")) {
        // PostgreSQL deployments name their key; the same one for every restart.
        cmd.env("GATEHOUSE_KEY_ENCRYPTION_KEY", "dGVzdC1rZXktZm9yLXBvc3RncmVzLWluc3RhbmNlcyE=");
    }
    cmd.envs(env.iter().copied());
    match database_url {
        Some(url) => cmd.env("GATEHOUSE_DATABASE_URL", url),
        None => cmd.env_remove("GATEHOUSE_DATABASE_URL"),
    };
    // PostgreSQL deployments name their key explicitly (every instance shares it).
    if database_url.is_some_and(|u| u.starts_with("postgres")) && !env.iter().any(|(k, _)| *k == "GATEHOUSE_KEY_ENCRYPTION_KEY") {
        cmd.env("GATEHOUSE_KEY_ENCRYPTION_KEY", "dGVzdHMgb25seToga2V5IGtlcHQgaW4gdGhlIGNvZGU=");
    }
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("gatehouse listening") {
                let _ = tx.send((field(&line, "local").unwrap_or_default(), field(&line, "management").unwrap_or_default()));
            }
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
        }
    });
    let (addr, management) = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("server did not start");
    Server { child, base: format!("http://{addr}"), management: format!("http://{management}"), log }
}
