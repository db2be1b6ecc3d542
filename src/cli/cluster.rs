//! The cluster flags shared by `backfill`, `label-join` and `materialize`: where the other
//! processes are, this process's index, and what every process must agree on. Process 0 runs
//! the command; every other process only lends its workers ([`follow`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use md5::{Digest, Md5};

use crate::config::conf_files;
use crate::dataflow::{Cluster, Identity, Topology};
use crate::engine::Context;
use crate::error::{Error, Result};
use crate::warehouse::Warehouse;

/// Timely's default port for process 0 (process i listens on 2101 + i).
const FIRST_PORT: usize = 2101;

#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Run as one of N processes of a timely cluster (each with --workers threads). Start the
    /// same command on every process, each with its own --process; process 0 plans, writes
    /// and serves, every process reads its share of the sources and computes. Every process
    /// needs the warehouse at the same path.
    #[arg(long, default_value_t = 1, help_heading = "Cluster")]
    pub processes: usize,
    /// This process's index in the cluster, from 0 (the leader) to --processes − 1.
    #[arg(long, default_value_t = 0, help_heading = "Cluster")]
    pub process: usize,
    /// host:port of every process, in process order, comma-separated (each process listens
    /// on its own). Default: 127.0.0.1:2101, 127.0.0.1:2102, …
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "HOST:PORT,…",
        help_heading = "Cluster"
    )]
    pub addresses: Vec<String>,
    /// A file with one host:port per line, in process order (instead of --addresses).
    #[arg(long, conflicts_with = "addresses", help_heading = "Cluster")]
    pub hostfile: Option<PathBuf>,
    /// Seconds to wait for every process to connect and agree before failing.
    #[arg(
        long = "connect-timeout",
        default_value_t = 60,
        value_name = "SECS",
        help_heading = "Cluster"
    )]
    pub connect_timeout: u64,
}

impl ClusterArgs {
    /// The topology these flags describe for `workers` threads per process. `identity` is
    /// what every process must agree on (asked for only in a cluster).
    pub fn topology(
        &self,
        workers: usize,
        identity: impl FnOnce() -> Result<Identity>,
    ) -> Result<Topology> {
        let mut t = Topology::local(workers);
        if self.processes <= 1 && self.addresses.len() <= 1 && self.hostfile.is_none() {
            if self.process > 0 {
                return Err(Error::Usage(format!(
                    "--process {} needs --processes greater than it (and the others' addresses)",
                    self.process
                )));
            }
            return Ok(t);
        }
        let addresses = self.addresses()?;
        let n = addresses.len();
        if self.processes > 1 && self.processes != n {
            return Err(Error::Usage(format!(
                "--processes {} but {n} address(es) were given: list one host:port per process",
                self.processes
            )));
        }
        if self.process >= n {
            return Err(Error::Usage(format!(
                "--process {} is not below the number of processes ({n}): processes are numbered from 0",
                self.process
            )));
        }
        let identity = identity()?
            .with("processes", n.to_string())
            .with("workers per process", t.workers.to_string());
        t.cluster = Some(Cluster {
            addresses,
            process: self.process,
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            identity,
        });
        Ok(t)
    }

    fn addresses(&self) -> Result<Vec<String>> {
        let list: Vec<String> = match &self.hostfile {
            Some(f) => std::fs::read_to_string(f)
                .map_err(|e| Error::io(format!("reading the hostfile {}", f.display()), e))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from)
                .collect(),
            None if self.addresses.is_empty() => (0..self.processes)
                .map(|i| format!("127.0.0.1:{}", FIRST_PORT + i))
                .collect(),
            None => self.addresses.clone(),
        };
        for a in &list {
            let port = a.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
            if !matches!(port, Some(Ok(_))) {
                return Err(Error::Usage(format!(
                    "cluster address `{a}` is not host:port (e.g. 10.0.0.5:2101)"
                )));
            }
        }
        if list.is_empty() {
            return Err(Error::Usage(
                "the hostfile lists no address: one host:port per line, in process order".into(),
            ));
        }
        Ok(list)
    }
}

/// What every process of a cluster must agree on for `command`: its options that change the
/// result, and an md5 digest of every config file under each of `confs` (named relative to it).
pub fn identity(command: &str, options: &[(&str, String)], confs: &[PathBuf]) -> Result<Identity> {
    let mut id = Identity::new().with("command", command);
    for (name, value) in options {
        id = id.with(*name, value.clone());
    }
    for root in confs {
        let files = if root.is_dir() {
            conf_files(root)?
        } else {
            vec![root.clone()]
        };
        for f in files {
            let bytes =
                std::fs::read(&f).map_err(|e| Error::io(format!("reading {}", f.display()), e))?;
            let digest: String = Md5::digest(&bytes)[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            id = id.with(format!("config `{}`", relative(root, &f)), digest);
        }
    }
    Ok(id)
}

/// An optional flag's value for the identity ("not given" when absent).
pub fn flag(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "not given".into())
}

fn relative(root: &Path, f: &Path) -> String {
    let r = if root.is_dir() {
        f.strip_prefix(root).unwrap_or(f)
    } else {
        Path::new(f.file_name().unwrap_or(f.as_os_str()))
    };
    r.to_string_lossy().into_owned()
}

/// Runs a process other than 0: lends its workers to the cluster until process 0 finishes.
/// Its workers read their share of the sources from `warehouse`, which must be the storage
/// process 0 uses.
pub fn follow(topology: Topology, warehouse: &Path) -> Result<()> {
    let what = topology.describe();
    let wh = Warehouse::open_existing(warehouse).map_err(|e| {
        Error::Usage(format!(
            "{e}; every process of a cluster reads the warehouse: mount the same storage at {} here",
            warehouse.display()
        ))
    })?;
    eprintln!("{what}: waiting for the other processes…");
    let rt = Context::follower(&wh, topology)?;
    eprintln!("joined the cluster; computing for process 0 until it finishes");
    rt.wait()?;
    eprintln!("process 0 finished; exiting");
    Ok(())
}

/// In a cluster, a lost process stops this one at once (exit 1 with the error), even while
/// it is busy reading or writing: every process shares the cluster's fate.
pub fn share_fate(cx: &Context) -> Result<()> {
    if cx.topology().cluster.is_some() {
        cx.runtime()?.on_failure(|e| {
            eprintln!("error: {e}");
            std::process::exit(1);
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(processes: usize, process: usize, addresses: &[&str]) -> ClusterArgs {
        ClusterArgs {
            processes,
            process,
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            hostfile: None,
            connect_timeout: 5,
        }
    }

    #[test]
    fn flags_become_a_topology_or_a_clear_error() {
        let one = args(1, 0, &[]).topology(2, || Ok(Identity::new())).unwrap();
        assert!(one.cluster.is_none());
        assert_eq!(one.workers, 2);
        let two = args(2, 1, &[]).topology(1, || Ok(Identity::new())).unwrap();
        let c = two.cluster.as_ref().unwrap();
        assert_eq!(c.addresses, ["127.0.0.1:2101", "127.0.0.1:2102"]);
        assert_eq!(c.process, 1);
        assert!(!two.leads());
        let err = |a: ClusterArgs| {
            a.topology(1, || Ok(Identity::new()))
                .unwrap_err()
                .to_string()
        };
        assert!(err(args(2, 2, &[])).contains("--process 2"));
        assert!(err(args(3, 0, &["a:1", "b:2"])).contains("2 address(es)"));
        assert!(err(args(2, 0, &["a:1", "b"])).contains("`b` is not host:port"));
        assert!(err(args(1, 1, &[])).contains("--processes"));
    }

    #[test]
    fn the_identity_digests_each_config_by_its_relative_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("joins/t")).unwrap();
        std::fs::write(dir.path().join("joins/t/a.v1"), "{\"x\":1}").unwrap();
        let a = identity("backfill", &[], &[dir.path().to_path_buf()]).unwrap();
        std::fs::write(dir.path().join("joins/t/a.v1"), "{\"x\":2}").unwrap();
        let b = identity("backfill", &[], &[dir.path().to_path_buf()]).unwrap();
        let d = b.difference(&a).unwrap();
        assert!(d.starts_with("config `joins/t/a.v1`"), "{d}");
    }
}
