//! `caucus-bench`: multi-node scenarios on loopback, printed as a table and written as
//! JSON, each next to what a user would pick instead, measured in the same run.
//!
//! Scenarios (`--scenarios`, default all):
//!
//! - **fanout**: an urgent notice from one organizer until all N nodes hold it, for
//!   several N (in-process), next to bare libp2p gossipsub on the same topology
//!   ([`fanout`]);
//! - **sync**: the campaign dataset (`--campaign DIR`, default the reference
//!   `shared/data/campaign-10k`, plus 200 notices) written by one organizer, synced to a
//!   fresh device from the office relay alone, then 1 and 100 new entries after a
//!   reconnect; next to automerge's sync protocol carrying the same records and a raw
//!   loopback TCP transfer of the same ciphertext bytes; plus the write path and the
//!   cold start ([`sync`], [`automerge_sync`]);
//! - **processes**: real `caucus` processes (the binary next to this one): the fan-out
//!   with every node its own process (`caucus run`, next to bare gossipsub processes:
//!   this harness re-run as `--bare-node`), an idle node holding the dataset (RSS, cold
//!   start) and an office relay holding 200 and 500 circuit reservations (RSS, CPU)
//!   ([`procs`], [`fanout`]).
//!
//! ```text
//! cargo build --release -p caucus-bench -p caucus
//! target/release/caucus-bench --json bench.json                     # everything
//! target/release/caucus-bench --scenarios sync,processes            # one or two
//! cargo run -p caucus-bench -- --tiny    # CI: proves the harness runs, asserts no timing
//! ```
//!
//! Homes use the cheapest Argon2id parameters (`KdfParams::insecure_for_tests`): the bench
//! measures the network and the store, not the passphrase.

mod automerge_sync;
mod campaign;
mod fanout;
mod procs;
mod sync;

use anyhow::{Context, Result, bail};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

/// The longest any wait in a scenario may take.
pub(crate) const WAIT: Duration = Duration::from_secs(300);

struct Args {
    scenarios: Vec<String>,
    sizes: Vec<usize>,
    process_sizes: Vec<usize>,
    rounds: usize,
    relay_peers: Vec<usize>,
    campaign: Option<PathBuf>,
    notices: usize,
    tiny: bool,
    json: Option<PathBuf>,
}

const SCENARIOS: [&str; 3] = ["fanout", "sync", "processes"];

fn args() -> Result<Args> {
    let mut a = Args {
        scenarios: SCENARIOS.iter().map(ToString::to_string).collect(),
        sizes: vec![10, 50, 200],
        process_sizes: vec![10],
        rounds: 5,
        relay_peers: vec![200, 500],
        campaign: None,
        notices: 200,
        tiny: false,
        json: None,
    };
    let list = |v: Option<String>, what: &str| -> Result<Vec<usize>> {
        v.with_context(|| format!("{what} needs a list like 10,50"))?
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .with_context(|| format!("{what} takes numbers"))
            })
            .collect()
    };
    let mut it = std::env::args().skip(1);
    const USAGE: &str = "caucus-bench: multi-node scenarios on loopback (figures in BENCHMARKS.md)

  --scenarios LIST   fanout,sync,processes (default: all)
  --sizes LIST       fan-out node counts, in process (default 10,50,200)
  --process-sizes LIST  fan-out node counts, one process per node (default 10)
  --rounds N         fan-out notices per size (default 5)
  --relay-peers LIST reservation-holding peers for the relay process (default 200,500)
  --campaign DIR     the reference spreadsheet (default shared/data/campaign-10k beside the checkout)
  --notices N        meeting notices added to the campaign (default 200)
  --tiny             everything at a tiny size (CI)
  --json PATH        also write the figures as JSON
RUST_LOG=caucus_net=debug shows the nodes' logs.";
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--scenarios" => {
                a.scenarios = it
                    .next()
                    .context("--scenarios needs a list like fanout,sync")?
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect();
                if let Some(bad) = a
                    .scenarios
                    .iter()
                    .find(|s| !SCENARIOS.contains(&s.as_str()))
                {
                    bail!(
                        "unknown scenario {bad} (scenarios: {})",
                        SCENARIOS.join(", ")
                    );
                }
            }
            "--sizes" => a.sizes = list(it.next(), "--sizes")?,
            "--process-sizes" => a.process_sizes = list(it.next(), "--process-sizes")?,
            "--relay-peers" => a.relay_peers = list(it.next(), "--relay-peers")?,
            "--rounds" => a.rounds = it.next().context("--rounds needs a number")?.parse()?,
            "--campaign" => {
                a.campaign = Some(it.next().context("--campaign needs a directory")?.into())
            }
            "--notices" => a.notices = it.next().context("--notices needs a number")?.parse()?,
            "--json" => a.json = Some(it.next().context("--json needs a path")?.into()),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--tiny" => {
                a.tiny = true;
                a.sizes = vec![4];
                a.process_sizes = vec![3];
                a.rounds = 1;
                a.relay_peers = vec![5];
                a.notices = 5;
            }
            other => {
                bail!("unknown argument {other} (see --help)")
            }
        }
    }
    if a.sizes.iter().chain(&a.process_sizes).any(|n| *n < 2) || a.rounds == 0 {
        bail!("sizes must be at least 2 and rounds at least 1");
    }
    Ok(a)
}

/// p50, p99 and max of latencies, in milliseconds.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), at(1.0))
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

async fn run_fanout(a: &Args, rows: &mut Vec<serde_json::Value>) -> Result<()> {
    println!(
        "fan-out: an urgent notice until all N nodes hold it (ms), caucus next to bare gossipsub, same topology"
    );
    println!(
        "(caucus stored: sealed, opened, verified and stored on every node; verified: arrived by gossip with its proof"
    );
    println!(
        " checked and passed on, as bare gossipsub hands it up; \"acks\": every node acknowledges, as in use)"
    );
    println!(
        "{:>5}  {:>24}  {:>22}  {:>22}  {:>22}  {:>9}  {:>9}",
        "N",
        "caucus, acks p50/p99/max",
        "caucus stored, no acks",
        "caucus verified",
        "bare gossipsub",
        "p99 ratio",
        "verified"
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    for &n in &a.sizes {
        let acks = fanout::caucus_fanout(n, a.rounds, true).await?;
        let quiet = fanout::caucus_fanout(n, a.rounds, false).await?;
        let (bare, bare_busy) = fanout::bare_fanout(n, a.rounds, &quiet.sample).await?;
        let (a50, a99, amax) = stats(acks.stored);
        let (o50, o99, omax) = stats(quiet.stored);
        let (v50, v99, vmax) = stats(quiet.verified);
        let (b50, b99, bmax) = stats(bare);
        let r = ratio(o99, b99);
        let rv = ratio(v99, b99);
        println!(
            "{n:>5}  {:>24}  {:>22}  {:>22}  {:>22}  {r:>8.2}x  {rv:>8.2}x",
            format!("{a50:.1}/{a99:.1}/{amax:.1}"),
            format!("{o50:.1}/{o99:.1}/{omax:.1}"),
            format!("{v50:.1}/{v99:.1}/{vmax:.1}"),
            format!("{b50:.1}/{b99:.1}/{bmax:.1}")
        );
        // What bounds the in-process figures: the CPU all N nodes spend on a round,
        // shared by this machine's cores.
        let caucus_cpu = ms(quiet.busy.cpu) / a.rounds.max(1) as f64;
        let bare_cpu = ms(bare_busy.cpu) / a.rounds.max(1) as f64;
        println!(
            "{:>5}  CPU from the write until the last node held it, per round: caucus {caucus_cpu:.1} ms \
             ({:.2} ms per receiving node; {:.2} of {cores} cores busy), bare {bare_cpu:.1} ms ({:.2} cores busy)",
            "",
            caucus_cpu / (n.max(2) - 1) as f64,
            quiet.busy.cores(),
            bare_busy.cores(),
        );
        rows.push(json!({
            "scenario": "fanout", "nodes": n, "rounds": a.rounds, "message_bytes": quiet.sample.len(),
            "caucus_with_acks_ms": {"p50": a50, "p99": a99, "max": amax},
            "caucus_ms": {"p50": o50, "p99": o99, "max": omax},
            "caucus_verified_ms": {"p50": v50, "p99": v99, "max": vmax},
            "bare_gossipsub_ms": {"p50": b50, "p99": b99, "max": bmax},
            "p99_ratio": r,
            "p99_ratio_verified": rv,
            "cores": cores,
            "caucus_cpu_ms_per_round": caucus_cpu,
            "caucus_cores_busy": quiet.busy.cores(),
            "bare_cpu_ms_per_round": bare_cpu,
            "bare_cores_busy": bare_busy.cores(),
        }));
    }
    Ok(())
}

fn campaign(a: &Args) -> Result<campaign::Campaign> {
    if a.tiny {
        return Ok(campaign::Campaign::synthetic(40, 200, a.notices));
    }
    let dir = match &a.campaign {
        Some(d) => d.clone(),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/campaign-10k"),
    };
    campaign::Campaign::load(&dir, a.notices)
}

async fn run_sync(
    a: &Args,
    home: &std::path::Path,
    rows: &mut Vec<serde_json::Value>,
) -> Result<()> {
    let c = campaign(a)?;
    let ops = c.operations()?;
    println!();
    println!(
        "sync: {} records ({} bytes as CSV) from the office relay to a fresh device, next to automerge and raw TCP",
        ops.len(),
        c.csv_bytes()
    );
    let am = automerge_sync::run(&ops, |i| campaign::extra_note(&ops, 20_000 + i))?;
    let f = sync::run(&c, home).await?;
    let raw = ms(f.raw_tcp);
    println!(
        "{:<34} {:>12} {:>14} {:>14} {:>12}",
        "", "caucus", "automerge", "ratio", "raw TCP"
    );
    let line =
        |what: &str, ours: &sync::Synced, theirs: &automerge_sync::Exchange, raw: Option<f64>| {
            println!(
                "{what:<34} {:>9.1} ms {:>11.1} ms {:>13.2}x {:>12}",
                ms(ours.time),
                ms(theirs.time),
                ratio(ms(ours.time), ms(theirs.time)),
                raw.map_or(String::new(), |r| format!("{r:.1} ms"))
            );
            println!(
                "{:<34} {:>12} {:>14} {:>13.2}x",
                "  bytes",
                ours.wire_bytes,
                theirs.bytes,
                ratio(ours.wire_bytes as f64, theirs.bytes as f64)
            );
        };
    line("initial sync", &f.initial, &am.initial, Some(raw));
    line("incremental, 1 new entry", &f.one_new, &am.one_new, None);
    line(
        "incremental, 100 new entries",
        &f.hundred_new,
        &am.hundred_new,
        None,
    );
    println!(
        "initial sync: {} entries, {} bytes of ciphertext held by the relay; wire bytes / CSV bytes = {:.2}; time / raw TCP = {:.1}x",
        f.initial.entries,
        f.ciphertext_bytes,
        f.initial.wire_bytes as f64 / c.csv_bytes() as f64,
        ratio(ms(f.initial.time), raw)
    );
    println!(
        "write path: import {:.0} entries/s (one transaction); single writes {:.0} entries/s (seal, store, publish each)",
        f.import_per_sec, f.single_writes_per_sec
    );
    println!(
        "cold start (in process): open {:.0} ms, open to listening {:.0} ms; automerge built its document in {:.0} ms",
        ms(f.open),
        ms(f.cold_start),
        ms(am.build)
    );
    let ex = |s: &sync::Synced| json!({"ms": ms(s.time), "wire_bytes": s.wire_bytes, "entries": s.entries});
    let amx = |e: &automerge_sync::Exchange| json!({"ms": ms(e.time), "bytes": e.bytes, "messages": e.messages});
    rows.push(json!({
        "scenario": "sync",
        "records": ops.len(), "csv_bytes": c.csv_bytes(),
        "entries": f.entries, "ciphertext_bytes": f.ciphertext_bytes,
        "caucus": {"initial": ex(&f.initial), "one_new": ex(&f.one_new), "hundred_new": ex(&f.hundred_new)},
        "automerge": {"build_ms": ms(am.build), "initial": amx(&am.initial), "one_new": amx(&am.one_new), "hundred_new": amx(&am.hundred_new)},
        "raw_tcp_ms": raw,
        "initial_time_ratio_automerge": ratio(ms(f.initial.time), ms(am.initial.time)),
        "initial_time_ratio_raw_tcp": ratio(ms(f.initial.time), raw),
        "initial_wire_over_csv": f.initial.wire_bytes as f64 / c.csv_bytes() as f64,
        "import_entries_per_sec": f.import_per_sec,
        "single_writes_per_sec": f.single_writes_per_sec,
        "open_ms": ms(f.open),
        "cold_start_in_process_ms": ms(f.cold_start),
    }));
    Ok(())
}

async fn run_processes(
    a: &Args,
    home: Option<&std::path::Path>,
    rows: &mut Vec<serde_json::Value>,
) -> Result<()> {
    let Some(bin) = procs::caucus_binary() else {
        if a.tiny {
            println!("processes: skipped, no caucus binary next to the harness");
            return Ok(());
        }
        bail!("no caucus binary next to the harness: cargo build --release --bin caucus");
    };
    println!();
    if let Some(home) = home {
        let idle = procs::idle_node(&bin, home).await?;
        println!(
            "idle node holding the dataset (`caucus run`, own process): RSS {:.1} MiB, spawn to listening {:.0} ms",
            idle.rss_kib as f64 / 1024.0,
            ms(idle.cold_start)
        );
        rows.push(json!({
            "scenario": "idle_node", "rss_kib": idle.rss_kib, "cold_start_ms": ms(idle.cold_start),
        }));
    }
    println!(
        "fan-out, one process per node: an urgent notice until every node printed it received it (ms; acks on, as in use)"
    );
    println!(
        "{:>5}  {:>24}  {:>22}  {:>9}  {:>22}",
        "N", "caucus run p50/p99/max", "bare gossipsub", "p99 ratio", "CPU ms/round (all N)"
    );
    for &n in &a.process_sizes {
        let f = fanout::process_fanout(&bin, n, a.rounds).await?;
        let (c50, c99, cmax) = stats(f.caucus);
        let (b50, b99, bmax) = stats(f.bare);
        let r = ratio(c99, b99);
        let (cc, bc) = (ms(f.caucus_cpu), ms(f.bare_cpu));
        println!(
            "{n:>5}  {:>24}  {:>22}  {r:>8.2}x  {:>22}",
            format!("{c50:.1}/{c99:.1}/{cmax:.1}"),
            format!("{b50:.1}/{b99:.1}/{bmax:.1}"),
            format!("caucus {cc:.0}, bare {bc:.0}")
        );
        rows.push(json!({
            "scenario": "fanout_processes", "nodes": n, "rounds": a.rounds,
            "message_bytes": f.message_bytes,
            "caucus_ms": {"p50": c50, "p99": c99, "max": cmax},
            "bare_gossipsub_ms": {"p50": b50, "p99": b99, "max": bmax},
            "p99_ratio": r,
            "cpu_ms_per_round": {"caucus": cc, "bare_gossipsub": bc},
        }));
    }
    println!("office relay (`caucus relay`, own process) holding circuit reservations:");
    println!(
        "{:>6}  {:>10}  {:>10}  {:>14}  {:>16}",
        "peers", "RSS MiB", "idle MiB", "connect s", "CPU (connect/idle)"
    );
    for l in procs::relay_load(&bin, &a.relay_peers).await? {
        println!(
            "{:>6}  {:>10.1}  {:>10.1}  {:>14.2}  {:>8.2} s / {:.1}%",
            l.peers,
            l.rss_kib as f64 / 1024.0,
            l.rss_idle_kib as f64 / 1024.0,
            l.connect.as_secs_f64(),
            l.cpu_connect.as_secs_f64(),
            l.cpu_idle_share * 100.0
        );
        rows.push(json!({
            "scenario": "relay_load", "peers": l.peers, "rss_kib": l.rss_kib,
            "rss_no_peers_kib": l.rss_idle_kib, "connect_ms": ms(l.connect),
            "cpu_connect_ms": ms(l.cpu_connect), "cpu_idle_share": l.cpu_idle_share,
        }));
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // Logs only on request (`RUST_LOG=caucus_net=debug`): they cost time in the figures.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    if std::env::args().nth(1).as_deref() == Some("--bare-node") {
        // Not for users: one bare gossipsub node of the process fan-out (`fanout`).
        return fanout::bare_node_process().await;
    }
    let a = args()?;
    let mut rows = Vec::new();
    let has = |s: &str| a.scenarios.iter().any(|x| x == s);
    if has("fanout") {
        run_fanout(&a, &mut rows).await?;
    }
    let dir = tempfile::tempdir()?;
    let mut synced = None;
    if has("sync") {
        run_sync(&a, dir.path(), &mut rows).await?;
        synced = Some(dir.path().join("b"));
    }
    if has("processes") {
        run_processes(&a, synced.as_deref(), &mut rows).await?;
    }
    if let Some(path) = a.json {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&json!({"results": rows}))?,
        )
        .with_context(|| path.display().to_string())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
