//! The `omnivox` binary as a child process, for what only a real process shows: what the
//! command line prints, signals, exit codes. The child is killed if the test ends first.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::TEST_JWT_SECRET;

/// A running `omnivox` process and the lines it wrote so far.
pub struct Process {
    child: Child,
    pub pid: u32,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
    /// Every stdout line read so far.
    pub stdout_seen: Vec<String>,
    /// Every stderr line read so far.
    pub stderr_seen: Vec<String>,
}

fn forward(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> mpsc::UnboundedReceiver<String> {
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

impl Process {
    /// Starts `omnivox <args>` against `database_url`, with the tests' JWT secret, JSON logs at
    /// `info` and no Redis (the in-process bus).
    pub fn spawn(args: &[&str], database_url: &str) -> Self {
        Self::spawn_with_env(args, database_url, &[])
    }

    /// [`Process::spawn`] with extra environment variables.
    pub fn spawn_with_env(args: &[&str], database_url: &str, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_omnivox"))
            .args(args)
            .envs(env.iter().copied())
            .env("DATABASE_URL", database_url)
            .env("OMNIVOX_JWT_SECRET", TEST_JWT_SECRET)
            .env("OMNIVOX_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env_remove("REDIS_URL")
            .env_remove("OMNIVOX_BIND")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the omnivox binary starts");
        let pid = child.id().expect("a running child has a pid");
        let stdout = forward(child.stdout.take().expect("stdout is piped"));
        let stderr = forward(child.stderr.take().expect("stderr is piped"));
        Self {
            child,
            pid,
            stdout,
            stderr,
            stdout_seen: Vec::new(),
            stderr_seen: Vec::new(),
        }
    }

    /// The next stdout line containing `needle` (earlier ones are kept in `stdout_seen`).
    pub async fn stdout_line(&mut self, needle: &str, wait: Duration) -> String {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stdout.recv()).await {
                Ok(Some(line)) => {
                    self.stdout_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Ok(None) => {
                    let output = self.output();
                    panic!("the process closed stdout before printing {needle:?}:\n{output}")
                }
                Err(_) => {
                    let output = self.output();
                    panic!("no stdout line with {needle:?} in {wait:?}:\n{output}")
                }
            }
        }
    }

    /// The next JSON log line (the log goes to stdout) whose message is `message`, as JSON.
    pub async fn log_line(&mut self, message: &str, wait: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stdout.recv()).await {
                Ok(Some(line)) => {
                    self.stdout_seen.push(line.clone());
                    if let Ok(json) = serde_json::from_str::<Value>(&line) {
                        if json["fields"]["message"] == message {
                            return json;
                        }
                    }
                }
                Ok(None) => {
                    let output = self.output();
                    panic!("the process ended before logging {message:?}:\n{output}")
                }
                Err(_) => {
                    let output = self.output();
                    panic!("no log line {message:?} in {wait:?}:\n{output}")
                }
            }
        }
    }

    /// The address `serve` logged it listens on.
    pub async fn listening_addr(&mut self, wait: Duration) -> SocketAddr {
        let line = self.log_line("omnivox listening", wait).await;
        line["fields"]["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line}"))
    }

    /// Everything written so far, stdout then stderr (reads what is buffered without waiting).
    pub fn output(&mut self) -> String {
        while let Ok(line) = self.stdout.try_recv() {
            self.stdout_seen.push(line);
        }
        while let Ok(line) = self.stderr.try_recv() {
            self.stderr_seen.push(line);
        }
        format!("{}\n{}", self.stdout_seen.join("\n"), self.stderr_seen.join("\n"))
    }

    /// Sends SIGTERM, as an orchestrator does.
    pub fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .expect("the kill command runs");
        assert!(status.success(), "kill -TERM {} failed", self.pid);
    }

    /// Waits for the process to exit; the rest of its output is collected.
    pub async fn wait_exit(&mut self, wait: Duration) -> ExitStatus {
        let status = tokio::time::timeout(wait, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the process did not exit within {wait:?}"))
            .expect("waiting for the child");
        // The pipes close with the process: collect what is left.
        while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(2), self.stderr.recv()).await {
            self.stderr_seen.push(line);
        }
        while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(2), self.stdout.recv()).await {
            self.stdout_seen.push(line);
        }
        status
    }
}
