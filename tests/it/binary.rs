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
    let mut cmd = Command::new(BIN);
    match database_url {
        Some(url) => cmd.env("GATEHOUSE_DATABASE_URL", url),
        None => cmd.env_remove("GATEHOUSE_DATABASE_URL"),
    };
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
            if let Some(i) = line.find("local=") {
                let addr: String = line[i + 6..].split_whitespace().next().unwrap_or("").to_string();
                let _ = tx.send(addr);
            }
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
        }
    });
    let addr = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("server did not start");
    Server { child, base: format!("http://{addr}"), log }
}
