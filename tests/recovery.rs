//! A damaged event log, as the binary meets it: a flipped byte with intact
//! records after it refuses to start, naming file and offset;
//! `fairflow events check` lists what a repair there would drop;
//! `fairflow events repair` cuts only there, and the server then starts. A
//! zero-filled tail is cut and keeps every acknowledged event.

use fairflow::domain::{Channel, Millis};
use fairflow::domain::{Event, EventKind};
use fairflow::events::EventLog;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_fairflow");

/// Writes `n` acknowledged purchases into the log in `dir`.
fn acknowledged(dir: &Path, n: usize) {
    let (log, _) = EventLog::open(dir, 0, Vec::new()).unwrap();
    let events = (0..n)
        .map(|i| Event {
            event_id: format!("ack-{i:04}"),
            time: Millis(1_795_132_800_000 + i as i64),
            user_id: format!("u{}", i % 9),
            kind: EventKind::Purchase {
                item_id: "g000112".into(),
                brand_id: "b0001".into(),
                seller_streamer_id: "s00300".into(),
                channel: Channel::Influencer,
                price: 20.0,
                venue: None,
            },
        })
        .collect();
    assert_eq!(log.ingest(events).unwrap().accepted.len(), n);
}

fn segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

/// Starts `serve` on `dir`; `Ok(())` once it listens (then stops it), or
/// `Err(stderr)` when it exits first.
fn start(dir: &Path) -> Result<(), String> {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .arg("--events-dir")
        .arg(dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Drained on a thread of its own to the end, so the server never
    // writes to a closed pipe.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening") {
                let _ = tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    let listening = rx.recv_timeout(Duration::from_secs(60)).is_ok();
    let _ = child.kill();
    child.wait().unwrap();
    let lines = reader.join().unwrap();
    if listening {
        Ok(())
    } else {
        Err(lines.join("\n"))
    }
}

fn events(args: &[&str], dir: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("events")
        .arg(args[0])
        .arg(dir)
        .args(&args[1..])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_flipped_byte_refuses_to_start_and_check_then_repair_is_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    acknowledged(dir.path(), 500);
    let seg = segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();

    let refused = start(dir.path()).expect_err("refuses to start");
    let name = seg.file_name().unwrap().to_str().unwrap();
    assert!(
        refused.contains(name) && refused.contains("at byte"),
        "{refused}"
    );
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "nothing cut");

    let (code, report) = events(&["check"], dir.path());
    assert_eq!(code, 1, "{report}");
    let at = report
        .split("--at ")
        .nth(1)
        .and_then(|s| s.split('`').next())
        .expect("a repair command")
        .to_string();
    assert!(at.starts_with(name), "{report}");
    // The flipped record is unreadable; the ~250 after it are listed.
    let lost: usize = report
        .split("would drop ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((200..300).contains(&lost), "{report}");

    let (code, out) = events(&["repair", "--at", &at], dir.path());
    assert_eq!(code, 0, "{out}");
    let (code, report) = events(&["check"], dir.path());
    assert_eq!(code, 0, "{report}");
    start(dir.path()).expect("starts after the repair");
    assert!(
        dir.path().join("dropped").read_dir().unwrap().count() > 0,
        "what was cut is kept"
    );
}

#[test]
fn a_zero_filled_tail_is_cut_and_every_acknowledged_event_kept() {
    let dir = tempfile::tempdir().unwrap();
    acknowledged(dir.path(), 500);
    let seg = segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len + 4096)
        .unwrap();
    let (code, report) = events(&["check"], dir.path());
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("torn tail") && report.contains("500 intact records"),
        "{report}"
    );
    start(dir.path()).expect("starts");
    let (_, records) = EventLog::open(dir.path(), 0, Vec::new()).unwrap();
    assert_eq!(records.len(), 500);
}
