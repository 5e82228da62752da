//! The bench harness at its tiniest size, so it never rots: it must run to the end and
//! write its JSON with every scenario's outcome (entries carried, not times). No timing is
//! asserted (figures belong in BENCHMARKS.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn the_harness_runs_at_a_tiny_size_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench.json");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_caucus-bench"))
        .args(["--tiny", "--json"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let r = &v["results"][0];
    assert_eq!(r["scenario"], "fanout");
    assert_eq!(r["nodes"], 4);
    for k in ["caucus_ms", "bare_gossipsub_ms"] {
        assert!(
            r[k]["p99"].as_f64().unwrap() >= r[k]["p50"].as_f64().unwrap(),
            "{r}"
        );
    }
    // The rounds were measured for CPU as well: the process's CPU clock moved while the
    // nodes carried the notice.
    for k in ["caucus_cpu_ms_per_round", "bare_cpu_ms_per_round"] {
        assert!(r[k].as_f64().unwrap() > 0.0, "{r}");
    }
    // The sync scenario carried the whole synthetic campaign to the fresh device, and the
    // incremental rounds exactly their new entries.
    let sync = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["scenario"] == "sync")
        .expect("a sync row");
    // The import travels packed (many records per entry): the device fetched every
    // entry the group holds but the few it got when it joined.
    let entries = sync["entries"].as_u64().unwrap();
    let initial = sync["caucus"]["initial"]["entries"].as_u64().unwrap();
    assert!(
        initial > 0 && initial <= entries && entries - initial <= 8,
        "{sync}"
    );
    assert!(sync["records"].as_u64().unwrap() > initial, "{sync}");
    assert_eq!(sync["caucus"]["one_new"]["entries"], 1, "{sync}");
    assert_eq!(sync["caucus"]["hundred_new"]["entries"], 100, "{sync}");
    assert!(sync["automerge"]["initial"]["bytes"].as_u64().unwrap() > 0);
    // With the `caucus` binary beside the harness (a workspace build), the process
    // scenarios ran: every one of the 3 separate `caucus run` processes printed the
    // notice, and so did the bare gossipsub processes.
    let rows = v["results"].as_array().unwrap();
    if rows.iter().any(|r| r["scenario"] == "relay_load") {
        let f = rows
            .iter()
            .find(|r| r["scenario"] == "fanout_processes")
            .expect("a process fan-out row");
        assert_eq!(f["nodes"], 3, "{f}");
        for k in ["caucus_ms", "bare_gossipsub_ms"] {
            assert!(
                f[k]["p99"].as_f64().unwrap() >= f[k]["p50"].as_f64().unwrap(),
                "{f}"
            );
        }
        assert!(f["message_bytes"].as_u64().unwrap() > 0, "{f}");
    }
}
