//! Three `warren` processes on loopback forming a cluster: ports picked at run time, a data
//! directory each, every node seeded with the other two. Nodes can be killed (-9) and
//! started again on the same ports and data.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::http::Http;

/// One node's ports.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// AMQP.
    pub amqp: u16,
    /// Management API.
    pub mgmt: u16,
    /// Node-to-node.
    pub cluster: u16,
}

/// A three-node cluster of processes.
pub struct Nodes {
    pub ports: Vec<Ports>,
    children: Vec<Option<Child>>,
    /// Flags added to each node's command line (the cluster secret and TLS files).
    extra: Vec<Vec<String>>,
    dir: tempfile::TempDir,
}

/// A free port below the kernel's ephemeral range (32768 and up), so that nothing binding
/// port 0 meanwhile (the other tests' brokers and clients) can take it between this check
/// and the node's start; distinct within this process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const BASE: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let seed = std::process::id().wrapping_mul(7919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    let _ = NEXT.compare_exchange(0, seed % SPAN + 1, Ordering::Relaxed, Ordering::Relaxed);
    loop {
        let port = (BASE + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Nodes {
    /// Starts three nodes and waits until every one sees three running nodes and a leader.
    pub async fn start() -> Self {
        Self::start_with(vec![Vec::new(); 3]).await
    }

    /// [`Nodes::start`] with `extra[i]` added to node `i`'s flags.
    pub async fn start_with(extra: Vec<Vec<String>>) -> Self {
        let nodes = Self::launch_all(extra);
        nodes.wait_formed().await;
        nodes
    }

    /// Starts three nodes with `extra[i]` added to node `i`'s flags, without waiting.
    pub fn launch_all(extra: Vec<Vec<String>>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = (0..3)
            .map(|_| Ports {
                amqp: free_port(),
                mgmt: free_port(),
                cluster: free_port(),
            })
            .collect();
        let mut nodes = Nodes {
            ports,
            children: vec![None, None, None],
            extra,
            dir,
        };
        for i in 0..3 {
            nodes.launch(i);
        }
        nodes
    }

    /// Starts one more node (with node 0's extra flags), seeded with the others, without
    /// waiting; answers its index.
    pub fn launch_another(&mut self) -> usize {
        self.ports.push(Ports {
            amqp: free_port(),
            mgmt: free_port(),
            cluster: free_port(),
        });
        self.children.push(None);
        let i = self.children.len() - 1;
        // The same extra flags as the first node.
        if let Some(first) = self.extra.first().cloned() {
            self.extra.resize(i, Vec::new());
            self.extra.push(first);
        }
        self.launch(i);
        i
    }

    /// Node `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("n{}.log", i + 1))).unwrap_or_default()
    }

    fn launch(&mut self, i: usize) {
        let p = self.ports[i];
        let data = self.dir.path().join(format!("n{}", i + 1));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("n{}.log", i + 1)))
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_warren"));
        cmd.args(["--bind", "127.0.0.1", "--port", &p.amqp.to_string()])
            .args(["--management-port", &p.mgmt.to_string()])
            .arg("--data-dir")
            .arg(&data)
            .args(["--node-name", &format!("warren@n{}", i + 1)])
            .args(["--cluster-port", &p.cluster.to_string()]);
        for (j, other) in self.ports.iter().enumerate() {
            if j != i {
                cmd.args(["--cluster-seed", &format!("127.0.0.1:{}", other.cluster)]);
            }
        }
        cmd.args(self.extra.get(i).into_iter().flatten());
        let child = cmd
            .env("RUST_LOG", "info,openraft=warn")
            // The transport's test hook: `cut` and `heal` write this file.
            .env("WARREN_TEST_LINK_FAULTS", self.dir.path().join("faults"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start warren");
        self.children[i] = Some(child);
    }

    /// An AMQP URI of node `i` (0-based).
    pub fn uri(&self, i: usize) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.ports[i].amqp)
    }

    /// The management API of node `i`.
    pub fn api(&self, i: usize) -> Http {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ports[i].mgmt));
        Http::new(addr, "guest", "guest")
    }

    /// Kills node `i` with SIGKILL and waits for it to be gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends node `i` a signal (`STOP` pauses it, `CONT` resumes it).
    pub fn signal(&self, i: usize, signal: &str) {
        if let Some(child) = &self.children[i] {
            let sent = Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status()
                .expect("kill");
            assert!(sent.success(), "kill -{signal}");
        }
    }

    /// Node `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("n{}", i + 1))
    }

    /// Starts node `i` again on its ports and data, then waits for the cluster.
    pub async fn restart(&mut self, i: usize) {
        self.launch(i);
        self.wait_formed().await;
    }

    /// Cuts node `i` off from the other two (every cluster link, both directions) until
    /// [`Nodes::heal`]; the nodes read the fault file again within 150 ms.
    pub fn cut(&self, i: usize) {
        self.set_faults(&format!("isolate {}\n", self.raft_id(i)));
    }

    /// Node `i`'s Raft id, as the fault file names it (from its data directory).
    pub fn raft_id(&self, i: usize) -> String {
        let node_file = self.data_dir(i).join("raft").join("node");
        let text = std::fs::read_to_string(&node_file).expect("the node's raft id file");
        text.lines()
            .find_map(|l| l.strip_prefix("id = "))
            .expect("an id line")
            .trim()
            .to_owned()
    }

    /// Replaces the fault file with `text` (lines of raft/src/transport/policy.rs, e.g.
    /// `loss A B` or `delay A B 50-500`) until [`Nodes::heal`].
    pub fn set_faults(&self, text: &str) {
        self.write_faults(text);
    }

    /// Undoes every cut, then waits until the cluster is whole again.
    pub async fn heal(&self) {
        self.write_faults("");
        self.wait_formed().await;
    }

    fn write_faults(&self, text: &str) {
        let tmp = self.dir.path().join("faults.tmp");
        std::fs::write(&tmp, text).expect("fault file");
        std::fs::rename(&tmp, self.dir.path().join("faults")).expect("fault file");
    }

    /// Node `i`'s `/api/nodes`: `(name, running, metadata leader)` of each node it lists.
    pub async fn listed_on(&self, i: usize) -> Option<Vec<(String, bool, bool)>> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ports[i].mgmt));
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            return None;
        }
        let resp = self.api(i).get("/api/nodes").await;
        if resp.status != 200 {
            return None;
        }
        let nodes = serde_json::from_str::<serde_json::Value>(&resp.body).ok()?;
        let listed = nodes
            .as_array()?
            .iter()
            .map(|n| {
                (
                    n["name"].as_str().unwrap_or_default().to_owned(),
                    n["running"] == true,
                    n["cluster"]["metadata_leader"] == true,
                )
            })
            .collect();
        Some(listed)
    }

    async fn formed_on(&self, i: usize) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ports[i].mgmt));
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            return false;
        }
        let resp = self.api(i).get("/api/nodes").await;
        if resp.status != 200 {
            return false;
        }
        let Ok(nodes) = serde_json::from_str::<serde_json::Value>(&resp.body) else {
            return false;
        };
        let Some(nodes) = nodes.as_array() else {
            return false;
        };
        let running = nodes.iter().filter(|n| n["running"] == true).count();
        let leaders = nodes
            .iter()
            .filter(|n| n["cluster"]["metadata_leader"] == true)
            .count();
        nodes.len() == 3 && running == 3 && leaders == 1
    }

    async fn wait_formed(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            let mut all = true;
            for i in 0..3 {
                if !self.formed_on(i).await {
                    all = false;
                    break;
                }
            }
            if all {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let logs: Vec<String> = (1..=3)
                    .map(|i| {
                        std::fs::read_to_string(self.dir.path().join(format!("n{i}.log")))
                            .unwrap_or_default()
                    })
                    .collect();
                panic!(
                    "the cluster did not form within 40 s; logs:\n{}",
                    logs.join("\n----\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}
