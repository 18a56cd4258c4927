//! The rooms of `src/` and who may import whom (ARCHITECTURE.md, "Rooms").
//!
//! A room is a top-level module of the broker crate: `src/<room>.rs` or
//! `src/<room>/`. This test reads every source file, collects the rooms each
//! room names through `crate::<room>`, and fails when an import breaks the
//! layering: a cycle among rooms, or one of the edges the design forbids
//! (the queue engine reaching into channels or vhosts, the store into
//! vhosts, the shared state living in the listener).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Edges that must never exist, whatever else changes: (from, to).
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "queue",
        &[
            "channel",
            "vhost",
            "connection",
            "server",
            "broker",
            "mgmt",
            "recovery",
            "cluster",
        ],
    ),
    (
        "durable",
        &[
            "vhost",
            "queue",
            "channel",
            "connection",
            "server",
            "broker",
            "recovery",
            "mgmt",
            "cluster",
        ],
    ),
    (
        "auth",
        &[
            "vhost",
            "queue",
            "channel",
            "connection",
            "server",
            "broker",
            "mgmt",
            "cluster",
        ],
    ),
    // Shovels reach brokers, this one too, only as an AMQP client.
    (
        "shovel",
        &[
            "vhost",
            "queue",
            "channel",
            "connection",
            "server",
            "broker",
            "mgmt",
            "recovery",
            "cluster",
        ],
    ),
    // The deduplication caches are below the queue and the vhost that hold them.
    (
        "dedup",
        &[
            "vhost",
            "queue",
            "channel",
            "connection",
            "server",
            "broker",
            "mgmt",
            "recovery",
            "cluster",
        ],
    ),
    // The cluster room sits above the broker-level rooms (docs/cluster-design.md
    // section 5); only mgmt and the binary reach it, and it reaches no listener.
    ("cluster", &["channel", "connection", "server", "mgmt"]),
    ("broker", &["cluster", "mgmt", "server"]),
    // The metadata log's vocabulary: below the vhost that applies it and the channel and
    // API that submit through it; it knows no Raft (`cluster` implements its seam).
    (
        "meta",
        &[
            "vhost",
            "channel",
            "connection",
            "server",
            "broker",
            "mgmt",
            "recovery",
            "cluster",
        ],
    ),
    ("vhost", &["cluster", "mgmt", "server"]),
    ("names", &["*"]),
    ("error", &["*"]),
    ("message", &["*"]),
    // Counters and their history: below everything that counts.
    ("stats", &["*"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The rooms: top-level modules of the library (the `bin/` targets are not rooms).
fn rooms() -> BTreeMap<String, Vec<PathBuf>> {
    let mut rooms = BTreeMap::new();
    for entry in fs::read_dir(src()).expect("src/").flatten() {
        let path = entry.path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_owned();
        if name == "lib" || name == "main" || name == "bin" {
            continue;
        }
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        } else {
            continue;
        }
        rooms.entry(name).or_insert_with(Vec::new).extend(files);
    }
    rooms
}

/// The rooms a piece of source names as `crate::<room>`, comments left out.
fn imports(source: &str, rooms: &BTreeMap<String, Vec<PathBuf>>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            if rooms.contains_key(name) {
                found.insert(name.to_owned());
            }
            // `use crate::{a, b::c}` names several rooms at once.
            if let Some(group) = rest.strip_prefix('{') {
                let group = group.split('}').next().unwrap_or_default();
                for part in group.split(',') {
                    let name = part.trim().split("::").next().unwrap_or_default();
                    if rooms.contains_key(name) {
                        found.insert(name.to_owned());
                    }
                }
            }
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let rooms = rooms();
    let mut graph = BTreeMap::new();
    for (room, files) in &rooms {
        let mut deps = BTreeSet::new();
        for file in files {
            let source = fs::read_to_string(file).expect("readable source");
            deps.extend(imports(&source, &rooms));
        }
        deps.remove(room);
        graph.insert(room.clone(), deps);
    }
    graph
}

/// A cycle through `start`, if any (depth-first, shortest found first).
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![start.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().expect("non-empty path");
        for next in graph.get(last).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_owned());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.insert(0, longer);
            }
        }
    }
    None
}

#[test]
fn no_room_imports_what_the_layering_forbids() {
    let graph = graph();
    let mut broken = Vec::new();
    for (from, banned) in FORBIDDEN {
        let Some(deps) = graph.get(*from) else {
            broken.push(format!("room {from} is missing"));
            continue;
        };
        for dep in deps {
            if banned.contains(&"*") || banned.contains(&dep.as_str()) {
                broken.push(format!("{from} imports {dep}"));
            }
        }
    }
    assert!(broken.is_empty(), "forbidden imports: {broken:?}");
}

#[test]
fn rooms_import_each_other_without_cycles() {
    let graph = graph();
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|room| cycle_from(&graph, room))
        .map(|cycle| cycle.join(" -> "))
        .collect();
    assert!(cycles.is_empty(), "import cycles among rooms: {cycles:#?}");
}

#[test]
fn the_shared_state_is_not_defined_by_the_listener() {
    let server = fs::read_to_string(src().join("server.rs")).expect("server.rs");
    assert!(!server.contains("pub struct Broker"));
    let broker = fs::read_to_string(src().join("broker/mod.rs")).expect("broker/mod.rs");
    assert!(broker.contains("pub struct Broker"));
}

#[test]
fn the_import_reader_sees_every_form_of_use() {
    let rooms: BTreeMap<String, Vec<PathBuf>> = ["queue", "vhost", "channel", "error"]
        .into_iter()
        .map(|r| (r.to_owned(), Vec::new()))
        .collect();
    let found = imports(
        "use crate::queue::Queue;\n\
         // use crate::channel::X; (a comment)\n\
         let v = crate::vhost::resource(a, b, c);\n\
         use crate::{error::AmqpError, channel};\n",
        &rooms,
    );
    let found: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(found, ["channel", "error", "queue", "vhost"]);
}
