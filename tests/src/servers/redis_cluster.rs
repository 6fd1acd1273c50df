//! A real three-master Redis Cluster, for tests of goalstore's cluster mode.
//!
//! A standalone `redis-server` cannot stand in for a cluster: cluster clients discover
//! the slot map with CLUSTER SLOTS, get MOVED redirections and must cope with a whole
//! cluster going away and coming back. So this starts three `redis-server` processes
//! in cluster mode and joins them with `redis-cli --cluster create`, the way an operator
//! would. Tests can kill every node and restart it; the nodes then re-form the same
//! cluster (same node ids, same slot map) from their `nodes.conf`, with their data gone.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tempfile::TempDir;
use tokio::net::TcpStream;

use super::binary;
use super::process::GuardedProcess;

const SERVER: &str = "redis-server";
const SERVER_INSTALL: &str = "apt-get install -y redis-server";
/// Debian ships redis-cli in redis-tools (a dependency of redis-server).
const CLI: &str = "redis-cli";
const CLI_INSTALL: &str = "apt-get install -y redis-tools";

/// Three is the smallest cluster `redis-cli --cluster create` accepts.
const NODES: usize = 3;
const SLOTS: &str = "16384";
/// Redis listens for the cluster bus on the client port + 10000. (`--cluster-port`
/// could move it, but only from Redis 7 on; the fixed offset works with every version.)
const BUS_PORT_OFFSET: u16 = 10_000;
/// Short, so a node that went away is noticed quickly, yet long enough that a busy
/// test machine does not make nodes suspect each other.
const NODE_TIMEOUT_MS: &str = "2000";

/// Covers a master's 2 s "writable delay" after a restart, with room for a busy machine.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// `redis-cli --cluster create` polls for the join once a second; it normally takes 1-2 s.
const CREATE_DEADLINE: Duration = Duration::from_secs(60);
const STOP_DEADLINE: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Cluster state changes on the cluster cron (every 100 ms); polling faster is waste.
const CLUSTER_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Fresh ports to try when a node exits during start-up (typically: port taken).
const ATTEMPTS: usize = 3;
/// Draws from the kernel for free ports; about 80% of ephemeral ports have room for a
/// bus port below 65536, so this is never reached unless ports run out.
const PORT_DRAWS: usize = 200;

/// Three `redis-server` masters forming one cluster on loopback ports, without
/// persistence (but with their cluster configuration on disk). Dropping it kills every
/// node.
#[derive(Debug)]
pub struct RedisCluster {
    program: PathBuf,
    nodes: Vec<Node>,
}

/// One cluster node.
#[derive(Debug)]
struct Node {
    port: u16,
    /// `None` while killed. Declared before `dir` so the node dies before its directory
    /// is removed.
    process: Option<GuardedProcess>,
    /// Working directory, log and `nodes.conf`. It outlives kills, which is what lets a
    /// restarted node rejoin the same cluster; removed on drop.
    dir: TempDir,
}

/// Why a node did not start.
enum StartFailure {
    /// The node exited during start-up; other ports may work.
    Exited(String),
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for StartFailure {
    fn from(error: anyhow::Error) -> StartFailure {
        StartFailure::Fatal(error)
    }
}

impl RedisCluster {
    /// Starts three cluster-enabled redis-server processes on free loopback ports (each
    /// in its own temp dir holding its `nodes.conf`, `--cluster-node-timeout 2000`, no
    /// persistence), joins them with `redis-cli --cluster create ... --cluster-replicas
    /// 0`, and waits until every node reports `cluster_state:ok` with all 16384 slots
    /// assigned.
    pub async fn start() -> anyhow::Result<RedisCluster> {
        let program = binary::locate(SERVER, SERVER_INSTALL)?;
        // Looked up first so a missing redis-cli fails fast, before any node starts.
        let cli = binary::locate(CLI, CLI_INSTALL)?;
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            let mut cluster = RedisCluster {
                program: program.clone(),
                nodes: Vec::with_capacity(NODES),
            };
            for port in cluster_ports(NODES)? {
                cluster.nodes.push(Node::new(port)?);
            }
            match cluster.launch_nodes().await {
                Ok(()) => {}
                // Dropping `cluster` kills the nodes that did start.
                Err(StartFailure::Exited(failure)) => {
                    failures.push(failure);
                    continue;
                }
                Err(StartFailure::Fatal(error)) => return Err(error),
            }
            cluster.create(&cli).await?;
            cluster.wait_until_ready().await?;
            return Ok(cluster);
        }
        anyhow::bail!(
            "the Redis Cluster nodes failed to start {ATTEMPTS} times:\n{}",
            failures.join("\n")
        )
    }

    /// The node URLs, e.g. `["redis://127.0.0.1:P1/", "redis://127.0.0.1:P2/", ...]`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}/", node.port))
            .collect()
    }

    /// The node URLs joined with commas: the form `GOALSTORE_REDIS_URL` takes for a
    /// cluster.
    pub fn url_list(&self) -> String {
        self.urls().join(",")
    }

    /// The nodes' client ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|node| node.port).collect()
    }

    /// kill -9 every node and wait until their ports are closed. Nodes that are not
    /// running are left alone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        // Every process first, then the waiting: the nodes should go down together, as
        // in an outage, rather than one by one while the others notice.
        for node in &mut self.nodes {
            if let Some(mut process) = node.process.take() {
                process.kill();
            }
        }
        for node in &self.nodes {
            node.wait_until_closed().await?;
        }
        Ok(())
    }

    /// Restarts every node on the same ports with the same `nodes.conf`, so the cluster
    /// re-forms with the same node ids and slot map (and no data), and waits for
    /// `cluster_state:ok` again. Running nodes are killed first.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await?;
        match self.launch_nodes().await {
            Ok(()) => {}
            Err(StartFailure::Exited(failure)) => {
                anyhow::bail!("restarting the Redis Cluster failed: {failure}")
            }
            Err(StartFailure::Fatal(error)) => {
                return Err(error.context("restarting the Redis Cluster"))
            }
        }
        self.wait_until_ready()
            .await
            .context("restarting the Redis Cluster")
    }

    /// Starts every node that is not running and waits until each answers PING.
    async fn launch_nodes(&mut self) -> Result<(), StartFailure> {
        for node in &mut self.nodes {
            if node.process.is_none() {
                node.launch(&self.program).await?;
            }
        }
        Ok(())
    }

    /// Joins the fresh nodes into one cluster, the slots split evenly between them.
    async fn create(&self, cli: &Path) -> anyhow::Result<()> {
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(self.ports().iter().map(|port| format!("127.0.0.1:{port}")));
        args.extend(
            ["--cluster-replicas", "0", "--cluster-yes"]
                .iter()
                .map(|arg| (*arg).to_owned()),
        );
        let run = tokio::process::Command::new(cli)
            .args(&args)
            .stdin(Stdio::null())
            // Dropped on timeout: do not leave it polling the nodes.
            .kill_on_drop(true)
            .output();
        let described = || format!("{} {}", cli.display(), args.join(" "));
        let output = tokio::time::timeout(CREATE_DEADLINE, run)
            .await
            .with_context(|| {
                format!(
                    "`{}` did not finish within {CREATE_DEADLINE:?}\n{}",
                    described(),
                    self.log_tails()
                )
            })?
            .with_context(|| format!("running `{}`", described()))?;
        anyhow::ensure!(
            output.status.success(),
            "`{}` failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}\n{}",
            described(),
            output.status,
            String::from_utf8_lossy(&output.stdout).trim_end(),
            String::from_utf8_lossy(&output.stderr).trim_end(),
            self.log_tails()
        );
        Ok(())
    }

    /// Waits until every node is up and reports a healthy cluster (see [`Node::check`]).
    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let mut not_ready = Vec::new();
            for node in &mut self.nodes {
                node.ensure_running()?;
                if let Err(error) = node.check().await {
                    not_ready.push(format!("{error:#}"));
                }
            }
            if not_ready.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "the Redis Cluster was not ready within {READY_DEADLINE:?}:\n{}\n{}",
                    not_ready.join("\n"),
                    self.log_tails()
                );
            }
            tokio::time::sleep(CLUSTER_POLL_INTERVAL).await;
        }
    }

    fn log_tails(&self) -> String {
        self.nodes
            .iter()
            .map(|node| super::process::log_tail(&node.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Node {
    fn new(port: u16) -> anyhow::Result<Node> {
        let dir = tempfile::Builder::new()
            .prefix("goalstore-redis-cluster-")
            .tempdir()
            .context("creating a scratch directory for a Redis Cluster node")?;
        Ok(Node {
            port,
            process: None,
            dir,
        })
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("redis-server.log")
    }

    /// Starts the node on `self.port` and waits until it answers PING.
    async fn launch(&mut self, program: &Path) -> Result<(), StartFailure> {
        let port = self.port;
        let dir = self.dir.path().display().to_string();
        let args = [
            "--port".to_owned(),
            port.to_string(),
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "--cluster-enabled".to_owned(),
            "yes".to_owned(),
            // An absolute path, so it does not depend on where redis resolves relative
            // ones; it lives in `dir`, which survives kills.
            "--cluster-config-file".to_owned(),
            self.dir.path().join("nodes.conf").display().to_string(),
            "--cluster-node-timeout".to_owned(),
            NODE_TIMEOUT_MS.to_owned(),
            "--save".to_owned(),
            String::new(),
            "--appendonly".to_owned(),
            "no".to_owned(),
            "--dir".to_owned(),
            dir,
            "--daemonize".to_owned(),
            "no".to_owned(),
        ];
        // Appended across restarts, so a failure can be read in the context of its past.
        let log = self.log();
        // The guard removes the directory if the test process dies without dropping the
        // cluster (e.g. one kept in a `static`); otherwise `TempDir` does.
        let mut process = GuardedProcess::spawn(program, &args, &log, Some(self.dir.path()))?;
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(status) = process.try_wait()? {
                return Err(StartFailure::Exited(format!(
                    "redis-server (cluster node) on port {port} exited during start-up ({status})\n{}",
                    process.log_tail()
                )));
            }
            // Answering and still alive: the PONG came from our node, not from some other
            // process that owns the port our node then failed to bind.
            if ping(port).await.is_ok() && process.try_wait()?.is_none() {
                self.process = Some(process);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartFailure::Fatal(anyhow::anyhow!(
                    "redis-server (cluster node) on port {port} did not answer PING within {READY_DEADLINE:?}\n{}",
                    process.log_tail()
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Fails, quoting the log, if the node is not running or has exited.
    fn ensure_running(&mut self) -> anyhow::Result<()> {
        let port = self.port;
        let Some(process) = self.process.as_mut() else {
            anyhow::bail!("the Redis Cluster node on port {port} is not running");
        };
        if let Some(status) = process.try_wait()? {
            let tail = process.log_tail();
            self.process = None;
            anyhow::bail!("the Redis Cluster node on port {port} exited ({status})\n{tail}");
        }
        Ok(())
    }

    /// Whether this node sees a healthy cluster: `cluster_state:ok`, all slots assigned
    /// and served, and every node known, connected and not suspected of failing.
    ///
    /// `cluster_state:ok` alone is not enough after a restart: a node that loaded its
    /// `nodes.conf` may report it before it has reconnected to its peers.
    async fn check(&self) -> anyhow::Result<()> {
        let port = self.port;
        let info = command(port, &["CLUSTER", "INFO"]).await?;
        check_info(&info).with_context(|| format!("node 127.0.0.1:{port}"))?;
        let nodes = command(port, &["CLUSTER", "NODES"]).await?;
        check_nodes(&nodes).with_context(|| format!("node 127.0.0.1:{port}"))
    }

    /// Waits until neither the client port nor the cluster bus port accepts
    /// connections, so that a restart can bind them again.
    async fn wait_until_closed(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + STOP_DEADLINE;
        for port in [self.port, self.port + BUS_PORT_OFFSET] {
            while port_is_open(port).await {
                if Instant::now() >= deadline {
                    anyhow::bail!(
                        "port {port} still accepts connections {STOP_DEADLINE:?} after killing \
                         the Redis Cluster node on port {}",
                        self.port
                    );
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        Ok(())
    }
}

/// `count` distinct loopback ports that were free a moment ago, each with its cluster
/// bus port (port + 10000) free as well.
///
/// Unlike `port::free_port`, the listeners are held until all ports are picked, so the
/// kernel cannot hand out the same port twice, nor one node's bus port as another's
/// client port.
fn cluster_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let mut held = Vec::new();
    let mut ports = Vec::with_capacity(count);
    for _ in 0..PORT_DRAWS {
        if ports.len() == count {
            break;
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        // Held even when rejected, so the kernel does not offer it again.
        held.push(listener);
        let Some(bus_port) = port.checked_add(BUS_PORT_OFFSET) else {
            continue;
        };
        if let Ok(bus) = TcpListener::bind((Ipv4Addr::LOCALHOST, bus_port)) {
            held.push(bus);
            ports.push(port);
        }
    }
    anyhow::ensure!(
        ports.len() == count,
        "found only {} of {count} free loopback ports with a free bus port (port + \
         {BUS_PORT_OFFSET}) in {PORT_DRAWS} tries",
        ports.len()
    );
    Ok(ports)
}

/// The value of `field` in CLUSTER INFO's `field:value` lines.
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// CLUSTER INFO says: state ok, all slots assigned and served, all nodes known.
fn check_info(info: &str) -> anyhow::Result<()> {
    let nodes = NODES.to_string();
    let expected = [
        ("cluster_state", "ok"),
        ("cluster_slots_assigned", SLOTS),
        ("cluster_slots_ok", SLOTS),
        ("cluster_known_nodes", nodes.as_str()),
    ];
    let wrong: Vec<String> = expected
        .iter()
        .filter_map(|&(field, want)| {
            let got = info_field(info, field);
            (got != Some(want)).then(|| format!("{field} is {got:?}, not {want:?}"))
        })
        .collect();
    anyhow::ensure!(wrong.is_empty(), "CLUSTER INFO: {}", wrong.join(", "));
    Ok(())
}

/// CLUSTER NODES says: every node connected and none failing or half-joined.
///
/// Each line reads `<id> <ip:port@bus-port> <flags> <master> <ping-sent> <pong-recv>
/// <config-epoch> <link-state> <slots>...`.
fn check_nodes(nodes: &str) -> anyhow::Result<()> {
    let lines: Vec<&str> = nodes
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    anyhow::ensure!(
        lines.len() == NODES,
        "CLUSTER NODES lists {} nodes, not {NODES}",
        lines.len()
    );
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(flags), Some(link)) = (fields.get(2), fields.get(7)) else {
            anyhow::bail!("CLUSTER NODES line too short: {line:?}");
        };
        let unhealthy = flags
            .split(',')
            .any(|flag| matches!(flag, "fail" | "fail?" | "handshake" | "noaddr"));
        anyhow::ensure!(
            !unhealthy && *link == "connected",
            "CLUSTER NODES: {line:?}"
        );
    }
    Ok(())
}

async fn ping(port: u16) -> anyhow::Result<()> {
    let reply = command(port, &["PING"]).await?;
    anyhow::ensure!(reply == "PONG", "PING to 127.0.0.1:{port} answered {reply}");
    Ok(())
}

/// One exchange must not hang a readiness loop on a server that accepts but never answers.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends one command to the node on `port` alone (not through the cluster) and returns its
/// reply as text: `PONG`, CLUSTER INFO's lines, a node id.
async fn command(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let exchange = async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command
            .query_async::<String>(&mut connection)
            .await
            .with_context(|| format!("{args:?} to 127.0.0.1:{port}"))
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .with_context(|| {
            format!("{args:?} to 127.0.0.1:{port}: no answer in {EXCHANGE_TIMEOUT:?}")
        })?
}

async fn port_is_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn cluster_info(port: u16) -> anyhow::Result<String> {
        command(port, &["CLUSTER", "INFO"]).await
    }

    async fn node_ids(cluster: &RedisCluster) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::new();
        for port in cluster.ports() {
            ids.push(command(port, &["CLUSTER", "MYID"]).await?);
        }
        Ok(ids)
    }

    #[tokio::test]
    async fn starts_with_every_slot_covered() -> anyhow::Result<()> {
        let cluster = RedisCluster::start().await?;
        let ports = cluster.ports();
        assert_eq!(ports.len(), 3);
        assert!(
            ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2],
            "{ports:?}"
        );
        let urls: Vec<String> = ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}/"))
            .collect();
        assert_eq!(cluster.urls(), urls);
        assert_eq!(cluster.url_list(), urls.join(","));

        for port in ports {
            let info = cluster_info(port).await?;
            assert_eq!(info_field(&info, "cluster_state"), Some("ok"), "{info}");
            assert_eq!(
                info_field(&info, "cluster_slots_assigned"),
                Some("16384"),
                "{info}"
            );
            assert_eq!(info_field(&info, "cluster_size"), Some("3"), "{info}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn kill_stops_every_node_and_restart_reforms_the_same_cluster() -> anyhow::Result<()> {
        let mut cluster = RedisCluster::start().await?;
        let ports = cluster.ports();
        let ids = node_ids(&cluster).await?;

        cluster.kill().await?;
        for &port in &ports {
            assert!(ping(port).await.is_err(), "node {port} answers after kill");
        }
        cluster.kill().await?;

        cluster.restart().await?;
        assert_eq!(cluster.ports(), ports, "restarted on the same ports");
        for &port in &ports {
            let info = cluster_info(port).await?;
            assert_eq!(info_field(&info, "cluster_state"), Some("ok"), "{info}");
            assert_eq!(
                info_field(&info, "cluster_slots_assigned"),
                Some("16384"),
                "{info}"
            );
        }
        assert_eq!(
            node_ids(&cluster).await?,
            ids,
            "the same nodes, from nodes.conf"
        );

        drop(cluster);
        for port in ports {
            assert!(!port_is_open(port).await, "drop killed node {port}");
        }
        Ok(())
    }

    #[test]
    fn check_info_wants_a_complete_healthy_cluster() {
        let healthy = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\n\
                       cluster_slots_ok:16384\r\ncluster_known_nodes:3\r\n";
        assert!(check_info(healthy).is_ok());
        let failing = healthy.replace("cluster_state:ok", "cluster_state:fail");
        let error = check_info(&failing).expect_err("state fail");
        assert!(error.to_string().contains("cluster_state"), "{error}");
        let unserved = healthy.replace("cluster_slots_ok:16384", "cluster_slots_ok:16000");
        assert!(check_info(&unserved).is_err());
        assert!(check_info("").is_err());
    }

    #[test]
    fn check_nodes_wants_every_node_connected() {
        let line = |id: &str, flags: &str, link: &str| {
            format!("{id} 127.0.0.1:7000@17000 {flags} - 0 0 1 {link} 0-5460\n")
        };
        let healthy = [
            line("a", "myself,master", "connected"),
            line("b", "master", "connected"),
            line("c", "master", "connected"),
        ]
        .concat();
        assert!(check_nodes(&healthy).is_ok());
        let suspected = [
            line("a", "myself,master", "connected"),
            line("b", "master,fail?", "connected"),
            line("c", "master", "connected"),
        ]
        .concat();
        assert!(check_nodes(&suspected).is_err());
        let disconnected = [
            line("a", "myself,master", "connected"),
            line("b", "master", "disconnected"),
            line("c", "master", "connected"),
        ]
        .concat();
        assert!(check_nodes(&disconnected).is_err());
        assert!(check_nodes(&line("a", "myself,master", "connected")).is_err());
    }

    #[test]
    fn ports_leave_room_for_the_bus() -> anyhow::Result<()> {
        let ports = cluster_ports(3)?;
        assert_eq!(ports.len(), 3);
        for port in &ports {
            assert!(*port <= u16::MAX - BUS_PORT_OFFSET, "{port}");
            assert!(!ports.contains(&(port + BUS_PORT_OFFSET)), "{ports:?}");
        }
        Ok(())
    }
}
