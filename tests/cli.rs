//! The real `caucus` binary, as separate processes with their own homes on 127.0.0.1:
//! bad input, pinned JSON, and three organizers (one with a phone) and a relay.
//!
//! Every wait is on a process's output or on a command's answer, with a bound; no test
//! sleeps and hopes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_caucus");
const PASS: &str = "test passphrase";
const WAIT: Duration = Duration::from_secs(60);

fn caucus(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(args)
        .env("CAUCUS_PASSPHRASE", PASS)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run caucus")
}

/// Runs a command that must succeed; returns stdout.
#[track_caller]
fn ok(home: &Path, args: &[&str]) -> String {
    let out = caucus(home, args);
    assert!(
        out.status.success(),
        "caucus {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with a one-line reason; returns it.
#[track_caller]
fn fails(home: &Path, args: &[&str]) -> String {
    let out = caucus(home, args);
    assert!(!out.status.success(), "caucus {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("caucus: "), "{err}");
    err.trim_end().to_string()
}

fn json(home: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(home, &a)).unwrap()
}

fn init(home: &Path, name: &str) {
    ok(home, &["init", "--name", name, "--kdf-memory-mib", "19"]);
}

/// A long-running `caucus` process whose stdout lines arrive on a channel.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn start(home: &Path, args: &[&str]) -> Daemon {
        let mut child = Command::new(BIN)
            .arg("--home")
            .arg(home)
            .args(args)
            .env("CAUCUS_PASSPHRASE", PASS)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn caucus");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`; returns it.
    fn wait_line(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; saw {:?}", self.seen),
            }
        }
    }

    /// The first TCP listen address on 127.0.0.1, with its /p2p/ suffix.
    fn address(&mut self) -> String {
        let line = self.wait_line("/ip4/127.0.0.1/tcp/");
        line.split_whitespace()
            .find(|w| w.starts_with("/ip4/127.0.0.1/tcp/"))
            .unwrap()
            .to_string()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it is true, at most [`WAIT`].
#[track_caller]
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn names(home: &Path) -> Vec<String> {
    let mut v: Vec<String> = json(home, &["contact", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn homes(n: usize) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let v = (0..n).map(|i| dir.path().join(format!("h{i}"))).collect();
    (dir, v)
}

#[test]
fn bad_input_is_refused_with_one_line_and_nothing_written() {
    let (_d, h) = homes(2);
    let home = &h[0];
    let e = fails(home, &["contact", "list"]);
    assert!(e.contains("no caucus home"), "{e}");
    let e = fails(home, &["init", "--name", "Dana", "--kdf-memory-mib", "8"]);
    assert!(e.contains("at least 19"), "{e}");
    init(home, "Dana");
    let e = fails(home, &["init", "--name", "Dana", "--kdf-memory-mib", "19"]);
    assert!(e.contains("already holds"), "{e}");
    ok(home, &["group", "create", "JFK8 committee"]);
    let entries = |h: &Path| json(h, &["group", "list"])[0]["entries"].as_u64().unwrap();
    let before = entries(home);
    for (args, needle) in [
        (
            vec!["contact", "add", "--name", "Ana", "--rating", "6"],
            "rating must be 1",
        ),
        (
            vec!["contact", "add", "--name", "Ana", "--rating", "0"],
            "rating must be 1",
        ),
        (vec!["contact", "add", "--dept", "Stow"], "needs --name"),
        (
            vec!["contact", "rate", "deadbeef", "2"],
            "no contact with id",
        ),
        (
            vec!["contact", "note", "deadbeef", "hello"],
            "no contact with id",
        ),
        (
            vec![
                "followup",
                "add",
                "deadbeef",
                "--due",
                "2026-13-40",
                "--task",
                "call",
            ],
            "bad date",
        ),
        (
            vec![
                "notice", "send", "--title", "x", "--at", "tomorrow", "--place", "hall",
            ],
            "bad time",
        ),
        (vec!["join", "caucus1-notaticket"], "invite"),
        (vec!["join", "hello"], "caucus1-"),
        (vec!["device", "revoke", "ffff"], "matches 0"),
        (vec!["member", "remove", "nobody"], "no current member"),
        (vec!["notice", "ack", "abcd"], "no notice"),
        (
            vec!["import", "--contacts", "/nonexistent/contacts.csv"],
            "/nonexistent",
        ),
        (
            vec!["contact", "list", "--group", "no such group"],
            "no group matches",
        ),
    ] {
        let e = fails(home, &args);
        assert!(e.contains(needle), "{args:?}: {e}");
    }
    // A bad row in a spreadsheet: refused whole, naming the line.
    let csv = home.join("bad.csv");
    std::fs::write(
        &csv,
        "name,department,shift,job,phone,rating,tags,assigned_to\nAna,Stow,Day,Tech,+1-555-0101,2,,Dana\nBen,Stow,Day,Tech,+1-555-0102,9,,Dana\n",
    )
    .unwrap();
    let e = fails(home, &["import", "--contacts", csv.to_str().unwrap()]);
    assert!(e.contains("line 3"), "{e}");
    assert_eq!(entries(home), before, "a refused command wrote something");
    // A wrong passphrase.
    let out = Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(["contact", "list"])
        .env("CAUCUS_PASSPHRASE", "not it")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "caucus: wrong passphrase"
    );
    // A port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let e = fails(home, &["run", "--listen", &listen, "--no-mdns"]);
    assert!(
        e.contains("could not listen") && e.contains("in use"),
        "{e}"
    );
    let e = fails(&h[1], &["relay", "--listen", &listen]);
    assert!(
        e.contains("could not listen") && e.contains("in use"),
        "{e}"
    );
}

#[test]
fn json_field_names_are_pinned() {
    let (_d, h) = homes(1);
    let home = &h[0];
    init(home, "Dana");
    ok(home, &["group", "create", "Committee"]);
    ok(
        home,
        &[
            "contact",
            "add",
            "--name",
            "Ana Ortiz",
            "--dept",
            "Outbound",
            "--shift",
            "nights",
            "--job",
            "picker",
            "--phone",
            "+1-555-0101",
            "--rating",
            "2",
            "--tag",
            "signed card",
            "--assign",
            "Dana",
        ],
    );
    let list = json(home, &["contact", "list"]);
    let c = &list[0];
    let mut keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "assigned_to",
            "department",
            "id",
            "job",
            "name",
            "phone",
            "rating",
            "shift",
            "tags"
        ]
    );
    assert_eq!(c["rating"], 2);
    assert_eq!(c["tags"][0], "signed card");
    let g = json(home, &["group", "list"]);
    let mut keys: Vec<&str> = g[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["entries", "epoch", "group", "members", "name", "role"]
    );
    let id = c["id"].as_str().unwrap()[..8].to_string();
    ok(home, &["contact", "note", &id, "talked at the break room"]);
    let shown = json(home, &["contact", "show", &id]);
    assert_eq!(shown["notes"][0]["text"], "talked at the break room");
    let m = json(home, &["map"]);
    assert_eq!(m["supportive"], 1);
    assert!(m["cells"][0]["by_rating"].is_array());
}

/// Three organizers and the office relay, each a `caucus` process: invite and join, a
/// phone linked to a laptop, contacts written on each while one is stopped, the same
/// `contact list --json` everywhere, an urgent notice acknowledged by all, and a removed
/// member who never shows what is written after the removal.
#[test]
fn three_organizers_a_phone_and_a_relay() {
    let (_d, h) = homes(5);
    let [relay_home, dana, phone, luis, maria] = [&h[0], &h[1], &h[2], &h[3], &h[4]];
    let net = ["--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"];

    init(dana, "Dana");
    ok(dana, &["group", "create", "JFK8 committee"]);
    let grant = json(dana, &["group", "relay-grant"])["grant"]
        .as_str()
        .unwrap()
        .to_string();
    let mut relay = Daemon::start(
        relay_home,
        &[
            "relay",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--allow",
            &grant,
        ],
    );
    let relay_addr = relay.address();

    let mut dana_run = {
        let mut a = vec!["run", "--peer", &relay_addr];
        a.extend(net);
        Daemon::start(dana, &a)
    };
    let dana_addr = dana_run.address();
    // `caucus run` says it reached the relay it was given, even when the dial finished
    // before it listened to its node's events.
    let relay_id = relay_addr.rsplit('/').next().unwrap().to_string();
    dana_run.wait_line(&format!("peer {relay_id} connected"));

    // Phone + laptop.
    let mut link = Daemon::start(dana, &["device", "link"]);
    let code_line = link.wait_line("caucus device add");
    let code = code_line.split_whitespace().nth(3).unwrap().to_string();
    let out = caucus(
        phone,
        &[
            "device",
            "add",
            &code,
            "--peer",
            &dana_addr,
            "--kdf-memory-mib",
            "19",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    link.wait_line("linked");

    // Invites.
    for (home, name) in [(luis, "Luis"), (maria, "Maria")] {
        init(home, name);
        let ticket = json(dana, &["invite", "create", "--address", &dana_addr])["ticket"]
            .as_str()
            .unwrap()
            .to_string();
        let mut a = vec!["join", &ticket];
        a.extend(net);
        let joined = json(home, &a);
        assert_eq!(joined["name"], "JFK8 committee");
    }
    let e = fails(luis, &["join", "caucus1-aaaa"]);
    assert!(e.contains("invite"), "{e}");
    // A revoked invite and an expired one are refused, and the joiner stays in no group.
    let revoked = json(dana, &["invite", "create", "--address", &dana_addr]);
    let id = revoked["invite"].as_str().unwrap()[..8].to_string();
    ok(dana, &["invite", "revoke", &id]);
    let (_d2, h2) = homes(1);
    init(&h2[0], "Eve");
    let mut a = vec!["join", revoked["ticket"].as_str().unwrap()];
    a.extend(net);
    let e = fails(&h2[0], &a);
    assert!(e.contains("revoked or already used"), "{e}");
    let expired = json(
        dana,
        &["invite", "create", "--address", &dana_addr, "--hours", "0"],
    );
    let mut a = vec!["join", expired["ticket"].as_str().unwrap()];
    a.extend(net);
    let e = fails(&h2[0], &a);
    assert!(e.contains("expired"), "{e}");
    assert_eq!(json(&h2[0], &["group", "list"]), serde_json::json!([]));
    // A mistyped pairing code is refused before anything is made.
    let e = fails(
        &h2[0].with_extension("phone"),
        &["device", "add", "0000-0000", "--peer", &dana_addr],
    );
    assert!(e.contains("code"), "{e}");
    assert!(!h2[0].with_extension("phone").exists());

    // Contacts on each while Maria is stopped.
    let mut runs = Vec::new();
    for home in [phone, luis] {
        let mut a = vec!["run", "--peer", &relay_addr, "--peer", &dana_addr];
        a.extend(net);
        runs.push(Daemon::start(home, &a));
        runs.last_mut().unwrap().wait_line("listening on");
    }
    ok(
        dana,
        &[
            "contact",
            "add",
            "--name",
            "Ana Ortiz",
            "--dept",
            "Outbound",
            "--rating",
            "2",
        ],
    );
    ok(
        phone,
        &[
            "contact", "add", "--name", "Ben Cole", "--dept", "Inbound", "--rating", "3",
        ],
    );
    ok(
        luis,
        &[
            "contact", "add", "--name", "Kim Tran", "--dept", "ICQA", "--rating", "1",
        ],
    );
    ok(
        maria,
        &[
            "contact",
            "add",
            "--name",
            "Omar Haddad",
            "--dept",
            "Stow",
            "--rating",
            "4",
        ],
    );
    let mut maria_run = {
        let mut a = vec!["run", "--peer", &relay_addr, "--peer", &dana_addr];
        a.extend(net);
        Daemon::start(maria, &a)
    };
    maria_run.wait_line("listening on");
    let all = ["Ana Ortiz", "Ben Cole", "Kim Tran", "Omar Haddad"];
    for home in [dana, phone, luis, maria] {
        eventually("the same contact list everywhere", || names(home) == all);
    }
    let lists: Vec<Value> = [dana, phone, luis, maria]
        .iter()
        .map(|h| json(h, &["contact", "list"]))
        .collect();
    assert!(lists.windows(2).all(|w| w[0] == w[1]));

    // An urgent notice, acknowledged by every member's node.
    let sent = json(
        dana,
        &[
            "notice",
            "send",
            "--title",
            "Emergency meeting",
            "--at",
            "+2h",
            "--place",
            "Union hall",
            "--urgent",
        ],
    );
    let notice = sent["notice"].as_str().unwrap()[..8].to_string();
    eventually("acks from all three members", || {
        json(dana, &["notice", "show", &notice])["acked"] == 3
    });

    // Dana removes Luis; what is written after never shows on Luis's node.
    let e = fails(luis, &["member", "remove", "Maria"]);
    assert!(
        e.contains("admin") || e.contains("not allowed") || e.contains("may"),
        "{e}"
    );
    ok(dana, &["member", "remove", "Luis"]);
    ok(
        dana,
        &[
            "contact",
            "add",
            "--name",
            "After Removal",
            "--dept",
            "Outbound",
        ],
    );
    for home in [phone, maria] {
        eventually("the new contact on the remaining devices", || {
            names(home).contains(&"After Removal".to_string())
        });
    }
    // Luis's node has synced past the removal (it sees the MemberRemoved) …
    eventually("Luis's node to see his removal", || {
        !json(luis, &["member", "list"])
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "Luis" && m["current"] == true)
    });
    // … and still cannot show the contact written after it.
    assert!(!names(luis).contains(&"After Removal".to_string()));
    // A member sees what the relay holds of the group.
    eventually("the relay's usage in `caucus status`", || {
        let s = json(dana, &["status"]);
        s["relays"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x["entries"].as_u64().unwrap_or(0) > 0))
    });
    // Revoking the device that holds an identity's key (Maria's only one) says what
    // that means, in one line.
    let devices = json(dana, &["device", "list"]);
    let maria_device = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["member_name"] == "Maria")
        .unwrap()["device"]
        .as_str()
        .unwrap()[..16]
        .to_string();
    let out = ok(dana, &["device", "revoke", &maria_device]);
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning")).collect();
    assert_eq!(
        warnings,
        [
            "warning: that device holds Maria's identity key; treat the identity as compromised: `caucus member remove` them and invite them again under a new identity (`caucus init` on a fresh home)"
        ],
        "{out}"
    );
    for r in runs {
        r.stop();
    }
    maria_run.stop();
    dana_run.stop();
    relay.stop();
}

/// A spreadsheet in and out: imported with no node running (one transaction), then a
/// second sheet through a running node (the control socket), and exported back.
#[test]
fn spreadsheets_import_and_export_with_and_without_a_running_node() {
    let (_d, h) = homes(1);
    let home = &h[0];
    init(home, "Dana");
    ok(home, &["group", "create", "Committee"]);
    let header = "name,department,shift,job,phone,rating,tags,assigned_to\n";
    let first = home.join("first.csv");
    std::fs::write(
        &first,
        format!("{header}Ana Ortiz,Outbound,Night,Picker,+1-555-0101,2,signed card,Dana\nBen Cole,Inbound,Day,Stower,+1-555-0102,4,,Dana\n"),
    )
    .unwrap();
    let notes = home.join("notes.csv");
    std::fs::write(
        &notes,
        "contact_phone,author,date,text\n+1-555-0101,Dana,2026-03-01,wants a shift meeting\n",
    )
    .unwrap();
    let r = json(
        home,
        &[
            "import",
            "--contacts",
            first.to_str().unwrap(),
            "--notes",
            notes.to_str().unwrap(),
        ],
    );
    assert_eq!(
        (r["contacts"].as_u64(), r["notes"].as_u64()),
        (Some(2), Some(1))
    );
    let mut run = Daemon::start(
        home,
        &["run", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"],
    );
    run.wait_line("listening on");
    let second = home.join("second.csv");
    std::fs::write(
        &second,
        format!("{header}Kim Tran,ICQA,Day,Problem solver,+1-555-0103,1,potential leader,Luis\n"),
    )
    .unwrap();
    ok(home, &["import", "--contacts", second.to_str().unwrap()]);
    assert_eq!(names(home), ["Ana Ortiz", "Ben Cole", "Kim Tran"]);
    let (c_out, n_out) = (home.join("out.csv"), home.join("out-notes.csv"));
    ok(
        home,
        &[
            "export",
            "--contacts",
            c_out.to_str().unwrap(),
            "--notes",
            n_out.to_str().unwrap(),
        ],
    );
    let exported = std::fs::read_to_string(&c_out).unwrap();
    assert_eq!(exported.lines().count(), 4, "{exported}");
    assert!(
        exported.contains("Kim Tran") && exported.contains("signed card"),
        "{exported}"
    );
    assert!(
        std::fs::read_to_string(&n_out)
            .unwrap()
            .contains("wants a shift meeting")
    );
    // An export never overwrites a file.
    let e = fails(
        home,
        &[
            "export",
            "--contacts",
            c_out.to_str().unwrap(),
            "--notes",
            n_out.to_str().unwrap(),
        ],
    );
    assert!(e.contains("never overwrites"), "{e}");
    run.stop();
}
