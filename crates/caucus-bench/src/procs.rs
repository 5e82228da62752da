//! Scenarios with real `caucus` processes (the binary next to this harness): RSS and
//! CPU of an office relay holding N circuit reservations, and RSS and cold start of an
//! idle organizer node holding the campaign dataset.

use crate::WAIT;
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, relay};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `caucus` binary built next to this harness (`cargo build --release --bin caucus`).
pub(crate) fn caucus_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    // Under `cargo test` the harness runs from target/<profile>/deps or target/<profile>.
    [dir.join("caucus"), dir.parent()?.join("caucus")]
        .into_iter()
        .find(|p| p.is_file())
}

/// A child process, killed when dropped.
pub(crate) struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's stdin, if it was piped and not taken yet.
    pub(crate) fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }
}

/// Resident set size of a process, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// CPU time (user + system) a process has used.
pub(crate) fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').context("bad stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    // Linux reports in USER_HZ, 100 on every platform caucus runs on.
    Ok(Duration::from_millis(ticks * 10))
}

/// CPU time (user + system, all threads) this process has used, to the nanosecond:
/// `/proc`'s tick counts are too coarse for a fan-out round of a few milliseconds.
pub(crate) fn own_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// CPU the process used over some windows, next to their wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Busy {
    /// CPU time used inside the windows (all threads).
    pub(crate) cpu: Duration,
    /// Wall-clock length of the windows.
    pub(crate) wall: Duration,
}

impl Busy {
    /// Adds the window that began at `started` with the process CPU clock at `cpu0`
    /// and ends now.
    pub(crate) fn add(&mut self, started: Instant, cpu0: Duration) {
        self.cpu += own_cpu().saturating_sub(cpu0);
        self.wall += started.elapsed();
    }

    /// Cores kept busy on average over the windows.
    pub(crate) fn cores(&self) -> f64 {
        crate::ratio(self.cpu.as_secs_f64(), self.wall.as_secs_f64())
    }
}

/// Stdout lines of one child process queued to the harness.
const CHILD_LINES: usize = 4096;

/// One stdout line of a child process, stamped when the harness read it.
pub(crate) type Line = (String, Instant);

/// Spawns `cmd` with stdout piped (and stdin piped when `stdin`), and forwards every
/// stdout line, stamped on arrival, to the returned channel. The reading thread drains
/// the pipe until the child exits, so a chatty child never blocks on it.
pub(crate) fn spawn_lines(
    mut cmd: Command,
    stdin: bool,
) -> Result<(Proc, tokio::sync::mpsc::Receiver<Line>)> {
    let mut child = cmd
        .env_remove("RUST_LOG")
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("{:?}", cmd.get_program()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = tokio::sync::mpsc::channel(CHILD_LINES);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Dropped receiver: keep draining the pipe.
            let _ = tx.blocking_send((line, Instant::now()));
        }
    });
    Ok((Proc { child }, rx))
}

/// Waits for a line containing "listening on ADDR" and returns the address.
pub(crate) async fn listening_on(
    lines: &mut tokio::sync::mpsc::Receiver<Line>,
) -> Result<Multiaddr> {
    let wait = async {
        while let Some((line, _)) = lines.recv().await {
            if let Some(addr) = line.split("listening on ").nth(1) {
                return Ok(addr.trim().parse()?);
            }
        }
        bail!("the process exited before listening")
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .context("the process never said it was listening")?
}

/// The `caucus` command on `home`, with the bench passphrase.
pub(crate) fn caucus_command(bin: &Path, home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--home")
        .arg(home)
        .args(args)
        .env("CAUCUS_PASSPHRASE", "bench");
    cmd
}

/// Starts `caucus` with `args`, and waits for a stdout line containing "listening on":
/// returns the process, the address on that line and the time it took.
pub(crate) async fn spawn_until_listening(
    bin: &Path,
    home: &Path,
    args: &[&str],
) -> Result<(Proc, Multiaddr, Duration)> {
    let started = Instant::now();
    let (proc, mut lines) = spawn_lines(caucus_command(bin, home, args), false)?;
    let addr = listening_on(&mut lines).await?;
    Ok((proc, addr, started.elapsed()))
}

/// RSS, CPU of a `caucus relay` process holding circuit reservations of many peers.
pub(crate) struct RelayLoad {
    /// Peers holding a reservation.
    pub(crate) peers: usize,
    /// RSS with no peer, KiB.
    pub(crate) rss_idle_kib: u64,
    /// RSS with all peers connected and reserved, KiB.
    pub(crate) rss_kib: u64,
    /// CPU time the relay used while the peers connected and reserved.
    pub(crate) cpu_connect: Duration,
    /// Wall time for all peers to connect and reserve.
    pub(crate) connect: Duration,
    /// Relay CPU while the peers stay connected, as a share of one core.
    pub(crate) cpu_idle_share: f64,
}

#[derive(libp2p::swarm::NetworkBehaviour)]
struct Reserver {
    relay: relay::client::Behaviour,
}

/// A peer that reserves a circuit slot on `relay` and keeps the connection; resolves
/// when the reservation is accepted.
async fn reserve(relay: Multiaddr, done: tokio::sync::mpsc::Sender<Result<(), String>>) {
    if let Err(e) = reserve_inner(relay, &done).await {
        let _ = done.send(Err(format!("{e:#}"))).await;
    }
}

async fn reserve_inner(
    relay: Multiaddr,
    done: &tokio::sync::mpsc::Sender<Result<(), String>>,
) -> Result<()> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )?
        .with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)?
        .with_behaviour(|_, relay| Reserver { relay })
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build();
    // The relay refuses handshakes beyond its pending-connection limit: like a phone,
    // try again a little later.
    let circuit = relay.with(Protocol::P2pCircuit);
    swarm.listen_on(circuit.clone())?;
    let mut told = false;
    let mut tries = 1;
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::Behaviour(ReserverEvent::Relay(
                relay::client::Event::ReservationReqAccepted { .. },
            )) if !told => {
                told = true;
                let _ = done.send(Ok(())).await;
            }
            SwarmEvent::ListenerClosed { reason, .. } => {
                if tries >= 20 {
                    bail!("reservation refused {tries} times: {reason:?}");
                }
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                swarm.listen_on(circuit.clone())?;
            }
            _ => {}
        }
    }
}

/// Starts `caucus relay` and adds reservation-holding peers up to each of `sizes`.
pub(crate) async fn relay_load(bin: &Path, sizes: &[usize]) -> Result<Vec<RelayLoad>> {
    let dir = tempfile::tempdir()?;
    let (proc, addr, _) = spawn_until_listening(
        bin,
        &dir.path().join("relay"),
        &["relay", "--listen", "/ip4/127.0.0.1/tcp/0"],
    )
    .await?;
    let pid = proc.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle_kib = rss_kib(pid)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let mut tasks = Vec::new();
    let mut out = Vec::new();
    for &n in sizes {
        let cpu0 = cpu_time(pid)?;
        let started = Instant::now();
        let have = tasks.len();
        for _ in have..n {
            let (a, tx) = (addr.clone(), tx.clone());
            tasks.push(tokio::spawn(reserve(a, tx)));
        }
        for i in have..n {
            tokio::time::timeout(WAIT, rx.recv())
                .await
                .with_context(|| format!("only {i} of {n} peers reserved on the relay"))?
                .context("peers stopped")?
                .map_err(|e| anyhow::anyhow!("peer {i} of {n}: {e}"))?;
        }
        let connect = started.elapsed();
        let cpu_connect = cpu_time(pid)? - cpu0;
        // Steady state: the relay holding every peer.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (c0, t0) = (cpu_time(pid)?, Instant::now());
        tokio::time::sleep(Duration::from_secs(5)).await;
        let cpu_idle_share = (cpu_time(pid)? - c0).as_secs_f64() / t0.elapsed().as_secs_f64();
        out.push(RelayLoad {
            peers: n,
            rss_idle_kib,
            rss_kib: rss_kib(pid)?,
            cpu_connect,
            connect,
            cpu_idle_share,
        });
    }
    for t in tasks {
        t.abort();
    }
    drop(proc);
    Ok(out)
}

/// An idle `caucus run` process on the home at `home`: RSS once serving, and the time
/// from spawn to listening (open, fold, swarm up).
pub(crate) struct IdleNode {
    /// From spawn until it says it is listening.
    pub(crate) cold_start: Duration,
    /// RSS after two seconds idle, KiB.
    pub(crate) rss_kib: u64,
}

/// Runs `caucus run` on `home` (no peers, no mDNS) and measures it.
pub(crate) async fn idle_node(bin: &Path, home: &Path) -> Result<IdleNode> {
    let (proc, _, cold_start) = spawn_until_listening(
        bin,
        home,
        &["run", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"],
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_kib = rss_kib(proc.pid())?;
    drop(proc);
    Ok(IdleNode {
        cold_start,
        rss_kib,
    })
}
