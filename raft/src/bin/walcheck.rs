//! `warren-walcheck`: checks Raft's Log Matching and State Machine Safety across the WALs of
//! stopped nodes (the cluster fault test runs it after every run; interop/cluster/chaos.sh).
//!
//!   warren-walcheck [--show N] [NAME=]DIR...
//!
//! DIR is a node's data dir (its WAL is `raft/wal/`), its Raft dir (`wal/`) or a WAL dir;
//! NAME defaults to the dir's last component. Read-only: a torn tail is read past as replay
//! would cut it, never cut. Prints a line per group and `walcheck: PASS ...` or
//! `walcheck: FAIL ...`; exits 0 on pass, 1 on a mismatch or gap, 2 if a WAL is unreadable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use warren_raft::wal::check::{NodeScan, check};
use warren_raft::wal::scan;

/// How many mismatches and gaps are printed per group unless `--show` says otherwise.
const SHOW: usize = 20;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            // The root cause alone: a WalError repeats its io::Error source in its message.
            println!("walcheck: ERROR {error}: {}", error.root_cause());
            ExitCode::from(2)
        }
    }
}

/// The WAL dir under `dir`, whichever of the three kinds of dir it is.
fn wal_dir(dir: &Path) -> PathBuf {
    for sub in ["raft/wal", "wal"] {
        if dir.join(sub).is_dir() {
            return dir.join(sub);
        }
    }
    dir.to_path_buf()
}

fn run() -> anyhow::Result<bool> {
    let mut show = SHOW;
    let mut nodes = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--show" {
            let n = args.next().context("--show needs a number")?;
            show = n.parse().with_context(|| format!("--show {n}"))?;
            continue;
        }
        if arg.starts_with('-') {
            bail!("usage: warren-walcheck [--show N] [NAME=]DIR...");
        }
        let (name, dir) = match arg.split_once('=') {
            Some((name, dir)) => (name.to_string(), PathBuf::from(dir)),
            None => {
                let dir = PathBuf::from(&arg);
                let name = dir
                    .file_name()
                    .map_or(arg.clone(), |n| n.to_string_lossy().into_owned());
                (name, dir)
            }
        };
        let wal = wal_dir(&dir);
        let scan =
            scan(&wal).with_context(|| format!("{name}: read the WAL in {}", wal.display()))?;
        if let Some(tear) = &scan.tear {
            println!(
                "walcheck: {name}: torn tail of {} read past ({} bytes kept, {} not)",
                tear.path.display(),
                tear.kept,
                tear.dropped
            );
        }
        nodes.push(NodeScan { name, scan });
    }
    if nodes.is_empty() {
        bail!("usage: warren-walcheck [--show N] [NAME=]DIR...");
    }
    let report = check(&nodes);
    for group in &report.groups {
        println!(
            "walcheck: group {}: on {}, {} entries compared, {} mismatches, {} gaps",
            group.group,
            group.nodes.join(" "),
            group.compared,
            group.mismatches.len(),
            group.gaps.len()
        );
        for m in group.mismatches.iter().take(show) {
            println!("  mismatch: {m}");
        }
        for gap in group.gaps.iter().take(show) {
            println!("  gap: {gap}");
        }
        let hidden =
            group.mismatches.len().saturating_sub(show) + group.gaps.len().saturating_sub(show);
        if hidden > 0 {
            println!("  ... {hidden} more (--show)");
        }
    }
    let verdict = if report.ok() { "PASS" } else { "FAIL" };
    println!(
        "walcheck: {verdict}: {} groups on 2+ nodes ({} in all), {} entries compared, {} mismatches, {} gaps",
        report.groups_compared(),
        report.groups.len(),
        report.compared(),
        report.mismatches(),
        report.gaps()
    );
    Ok(report.ok())
}
