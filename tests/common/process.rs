//! The `fairflow` binary as a separate process: started on free ports,
//! its JSON log read, signalled, waited for.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_fairflow");

/// A running `fairflow serve`, killed when dropped (a failing test leaves
/// no server behind).
pub struct Process {
    pub child: Child,
    /// The gRPC address.
    pub addr: String,
    /// The metrics endpoint's address.
    pub metrics: String,
    /// Every line it wrote to stderr, once it has exited.
    logs: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Process {
    /// Stops it with SIGTERM; returns every line it wrote to stderr.
    pub fn stop(mut self) -> Vec<String> {
        signal(&self.child, "TERM");
        let _ = self.child.wait();
        self.logs.take().unwrap().join().unwrap()
    }

    /// Kills it with SIGKILL: no shutdown, no snapshot.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `fairflow serve` on free ports with its event log in `events`;
/// returns once it announces its addresses (read from its JSON log).
pub fn spawn(extra: &[&str], events: &std::path::Path) -> Process {
    let (child, addr, metrics, logs) = start(extra, events);
    Process {
        child,
        addr,
        metrics,
        logs: Some(logs),
    }
}

type Started = (Child, String, String, std::thread::JoinHandle<Vec<String>>);

/// The child, its gRPC and metrics addresses, and its stderr's reader.
fn start(extra: &[&str], events: &std::path::Path) -> Started {
    let mut child = Command::new(BIN)
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .arg("--events-dir")
        .arg(events)
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn fairflow");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Keep draining stderr so the child never blocks on a full pipe.
    let logs = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let message = &v["fields"]["message"];
                if message == "listening" || message == "metrics at GET /metrics" {
                    let addr = v["fields"]["addr"].as_str().unwrap().to_string();
                    let _ = tx.send((message == "listening", addr));
                }
            }
            lines.push(line);
        }
        lines
    });
    let (mut addr, mut metrics) = (None, None);
    while addr.is_none() || metrics.is_none() {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok((true, a)) => addr = Some(a),
            Ok((false, a)) => metrics = Some(a),
            Err(_) => {
                let _ = child.kill();
                let logs = logs.join().unwrap_or_default();
                panic!("server did not announce its addresses: {logs:#?}");
            }
        }
    }
    (child, addr.unwrap(), metrics.unwrap(), logs)
}

/// [`spawn`], as (child, gRPC address, stderr lines).
pub fn spawn_server_with_events(
    extra: &[&str],
    events: &std::path::Path,
) -> (Child, String, std::thread::JoinHandle<Vec<String>>) {
    let (child, addr, _, logs) = start(extra, events);
    (child, addr, logs)
}

/// The sum of every sample of the metric `name` in a scrape.
pub fn metric_sum(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub type Spawned = (
    Child,
    String,
    std::thread::JoinHandle<Vec<String>>,
    tempfile::TempDir,
);

/// The same with the event log in a fresh temporary directory (returned, so
/// it lives as long as the caller holds it).
pub fn spawn_server(extra: &[&str]) -> Spawned {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, reader) = spawn_server_with_events(extra, dir.path());
    (child, addr, reader, dir)
}

/// Sends the signal `name` (`TERM`, `HUP`) to the child.
pub fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{name}");
}

pub async fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let poll = async {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    match tokio::time::timeout(limit, poll).await {
        Ok(status) => status,
        Err(_) => {
            let _ = child.kill();
            panic!("server did not exit within {limit:?}");
        }
    }
}

/// The JSON log line with `message`, as a value.
pub fn log_line(logs: &[String], message: &str) -> serde_json::Value {
    logs.iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == message)
        .unwrap_or_else(|| panic!("no `{message}` in {logs:?}"))
}
