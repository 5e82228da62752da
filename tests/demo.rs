//! `caucus demo`, the README's main job, run as a new user would: the real binary, in
//! its own temporary homes on 127.0.0.1. It exits 0 only if every step's check passed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

#[test]
fn the_demo_tells_the_whole_story_and_passes_every_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_caucus"))
        .arg("demo")
        .env_remove("CAUCUS_HOME")
        .stdin(Stdio::null())
        .output()
        .expect("run caucus demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "0. office relay",
        "2. Dana's phone links",
        "5. partition",
        "6. Dana sends an urgent notice",
        "7. Dana removes Luis",
        "8. store and forward",
        "9. the relay holds",
    ] {
        assert!(stdout.contains(step), "missing step {step:?}:\n{stdout}");
    }
    assert!(stdout.contains("delivered to 3 of 3 members"), "{stdout}");
    assert!(stdout.contains(": 0 hits"), "{stdout}");
    assert!(stdout.contains("every check passed"));
}
