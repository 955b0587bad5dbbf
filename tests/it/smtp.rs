//! A real SMTP server on loopback for the mail tests: Python's aiosmtpd, writing what it
//! receives to a maildir, which the tests read (parsed by Python's own email package).
//! Without aiosmtpd the tests say why and pass as skipped, unless GATEHOUSE_REQUIRE_SMTP=1.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Smtp {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

/// A received mail, decoded.
#[derive(Debug, serde::Deserialize)]
pub struct Received {
    pub to: String,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn available() -> bool {
    Command::new("python3").args(["-c", "import aiosmtpd"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// A free loopback port (bound and released: the server binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Smtp {
    /// Starts aiosmtpd on a free port, or None (saying why) when it is not installed.
    pub fn start() -> Option<Smtp> {
        Smtp::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Option<Smtp> {
        if !available() {
            if std::env::var("GATEHOUSE_REQUIRE_SMTP").is_ok_and(|v| v == "1") {
                panic!("GATEHOUSE_REQUIRE_SMTP=1 but python3 -m aiosmtpd is not available (pip install aiosmtpd)");
            }
            eprintln!("skipped: python3's aiosmtpd is not installed, so there is no SMTP server to test against");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("maildir"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn aiosmtpd");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "aiosmtpd did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Smtp { child: Some(child), port, dir })
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every mail received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        let script = r#"
import json, mailbox, os, sys
box = mailbox.Maildir(sys.argv[1], create=False)
arrived = lambda k: (os.stat(os.path.join(sys.argv[1], box._lookup(k))).st_mtime_ns, k)
out = []
for key in sorted(box.keys(), key=arrived):
    m = box.get_message(key)
    parts = {"text/plain": "", "text/html": ""}
    for p in m.walk():
        if p.get_content_type() in parts:
            parts[p.get_content_type()] = p.get_payload(decode=True).decode(p.get_content_charset() or "utf-8")
    out.append({"to": m["To"], "from": m["From"], "subject": m["Subject"], "text": parts["text/plain"], "html": parts["text/html"]})
print(json.dumps(out))
"#;
        let maildir = self.dir.path().join("maildir");
        if !maildir.join("new").exists() {
            return Vec::new();
        }
        let out = Command::new("python3").args(["-c", script]).arg(&maildir).output().expect("python3");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("mails as JSON")
    }

    /// Waits for the mail number `n` (from 1) to `to`, and returns it.
    pub async fn mail_to(&self, to: &str, n: usize) -> Received {
        let started = Instant::now();
        loop {
            let mut mine: Vec<_> = self.received().into_iter().filter(|m| m.to.contains(to)).collect();
            if mine.len() >= n {
                return mine.swap_remove(n - 1);
            }
            assert!(started.elapsed() < Duration::from_secs(15), "no mail number {n} to {to}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The one link in a mail's text that starts with `prefix`.
pub fn link(text: &str, prefix: &str) -> String {
    let start = text.find(prefix).unwrap_or_else(|| panic!("no link {prefix} in {text}"));
    text[start..].split_whitespace().next().unwrap().to_string()
}
