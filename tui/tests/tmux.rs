//! The terminal app end to end in a real pseudo-terminal: tmux runs `blindtuner app` at 80×24
//! on the INSECURE test preset; the test presses `s`, waits for the results screen, presses
//! `q` and checks that the app exited and gave the terminal back.
//!
//! `.ci/run` installs tmux; without it this test says so and passes vacuously.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_blindtuner");

/// A tmux server of this test's own (`-L`), so that other tmux users on the machine (or a
/// server shutting down) cannot interfere.
fn socket() -> String {
    format!("blindtuner-test-{}", std::process::id())
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(["-L", &socket()])
        .args(args)
        .output()
        .expect("tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(session: &str, what: &str, secs: u64) -> String {
    wait_for_any(session, &[what], secs)
}

/// Polls the pane until one of `whats` is on it. The tab bar always shows every screen's
/// title, so the texts waited for must be ones that only a state change puts there.
fn wait_for_any(session: &str, whats: &[&str], secs: u64) -> String {
    let t0 = Instant::now();
    loop {
        let screen = tmux(&["capture-pane", "-p", "-t", session]);
        if whats.iter().any(|w| screen.contains(w)) {
            return screen;
        }
        if t0.elapsed() > Duration::from_secs(secs) {
            let _ = tmux(&["kill-session", "-t", session]);
            panic!("none of {whats:?} appeared in {secs} s; screen:\n{screen}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn app_starts_trains_finishes_and_quits_in_a_real_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: tmux is not installed (.ci/run installs it)");
        return;
    }
    let session = format!("blindtuner-test-{}", std::process::id());
    let cmd = format!(
        "RUST_BACKTRACE=0 {BIN} app --insecure-test-preset --steps 3; echo APP-EXITED-$?; sleep 30"
    );
    let out = Command::new("tmux")
        .args([
            "-L",
            &socket(),
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "80",
            "-y",
            "24",
            &cmd,
        ])
        .env("TERM", "xterm-256color")
        .output()
        .expect("tmux new-session");
    assert!(
        out.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let idle = wait_for(&session, "s start", 30);
    assert!(idle.contains("1 Data"), "{idle}");
    tmux(&["send-keys", "-t", &session, "s"]);
    // The state in the top right corner leaves "idle" once the key is read (the tab bar shows
    // "3 Training" all along, so that title proves nothing).
    wait_for_any(&session, &["running:", "finished"], 30);
    let results = wait_for(&session, "Confusion (encrypted)", 120);
    assert!(results.contains("finished"), "{results}");
    assert!(results.contains("encrypted"), "{results}");
    assert!(results.contains("Per class"), "{results}");
    tmux(&["send-keys", "-t", &session, "q"]);
    let after = wait_for(&session, "APP-EXITED-", 10);
    let _ = tmux(&["kill-server"]);
    assert!(after.contains("APP-EXITED-0"), "exit status 0: {after}");
    // The alternate screen is gone: the app's frame is no longer on the terminal.
    assert!(!after.contains("Confusion (encrypted)"), "{after}");
}
