//! Where a runtime's workers live: W threads in this process, or W threads in each of N
//! processes joined by timely's own cluster mode (`CommunicationConfig::Cluster`), and the
//! identity every process of a cluster must share before any dataflow is built.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The worker layout of a [`super::Runtime`].
#[derive(Debug, Clone)]
pub struct Topology {
    /// Worker threads in each process (timely needs the same number in every process).
    pub workers: usize,
    /// The other processes, when this one is part of a cluster.
    pub cluster: Option<Cluster>,
    /// One process whose workers still serialize every exchanged record (timely's
    /// `ProcessBinary`): what a cluster does, without the network. For tests.
    pub serialize: bool,
}

/// This process's place in a cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// `host:port` of every process, in process order (this one's is where it listens).
    pub addresses: Vec<String>,
    /// This process's index in `addresses`; process 0 leads.
    pub process: usize,
    /// How long to wait for every process to connect and agree before giving up.
    pub connect_timeout: Duration,
    /// What must be equal in every process (checked at start-up).
    pub identity: Identity,
}

impl Topology {
    /// `workers` threads in this process only.
    pub fn local(workers: usize) -> Topology {
        Topology {
            workers: workers.max(1),
            cluster: None,
            serialize: false,
        }
    }

    /// The number of processes.
    pub fn processes(&self) -> usize {
        self.cluster.as_ref().map_or(1, |c| c.addresses.len())
    }

    /// This process's index (0 outside a cluster).
    pub fn process(&self) -> usize {
        self.cluster.as_ref().map_or(0, |c| c.process)
    }

    /// Whether this process leads: it plans, writes and serves; every process reads its share
    /// and computes.
    pub fn leads(&self) -> bool {
        self.process() == 0
    }

    /// Workers across every process.
    pub fn peers(&self) -> usize {
        self.workers * self.processes()
    }

    /// timely's configuration for this layout.
    pub(super) fn timely_config(&self) -> timely::Config {
        use timely::CommunicationConfig as C;
        let communication = match &self.cluster {
            Some(c) if c.addresses.len() > 1 => C::Cluster {
                threads: self.workers,
                process: c.process,
                addresses: c.addresses.clone(),
                report: false,
                zerocopy: false,
            },
            _ if self.serialize => C::ProcessBinary(self.workers),
            _ => C::Process(self.workers),
        };
        timely::Config {
            communication,
            worker: timely::WorkerConfig::default(),
        }
    }

    /// A one-line description for logs and errors.
    pub fn describe(&self) -> String {
        match &self.cluster {
            Some(c) => format!(
                "process {} of {} ({} worker(s) each; {})",
                c.process,
                c.addresses.len(),
                self.workers,
                c.addresses.join(", ")
            ),
            None => format!("{} worker(s) in one process", self.workers),
        }
    }
}

/// Named values every process of a cluster must agree on: weft's version, the command, the
/// worker count and a digest of every config file the command reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    items: Vec<(String, String)>,
}

impl Identity {
    /// An identity holding weft's version.
    pub fn new() -> Identity {
        Identity::default().with("weft version", env!("CARGO_PKG_VERSION"))
    }

    /// Adds one named value.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Identity {
        self.items.push((name.into(), value.into()));
        self
    }

    /// The first value that differs from `other`'s (`None` when they agree), for an error
    /// such as "config `joins/risk/checkout.v1`: 5f2e… here, 91ab… in process 0".
    pub fn difference(&self, other: &Identity) -> Option<String> {
        let theirs = |name: &str| {
            other
                .items
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        for (name, mine) in &self.items {
            match theirs(name) {
                Some(v) if v == mine => {}
                Some(v) => return Some(format!("{name}: `{mine}` here, `{v}` in process 0")),
                None => return Some(format!("{name}: `{mine}` here, absent in process 0")),
            }
        }
        other
            .items
            .iter()
            .find(|(n, _)| !self.items.iter().any(|(m, _)| m == n))
            .map(|(n, v)| format!("{n}: absent here, `{v}` in process 0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_names_the_first_difference() {
        let a = Identity::new().with("config a", "1").with("config b", "2");
        let b = Identity::new().with("config a", "1").with("config b", "3");
        assert_eq!(a.difference(&a.clone()), None);
        assert_eq!(
            b.difference(&a).unwrap(),
            "config b: `3` here, `2` in process 0"
        );
        let c = Identity::new().with("config a", "1");
        assert!(c.difference(&a).unwrap().contains("config b: absent here"));
        assert!(a.difference(&c).unwrap().contains("absent in process 0"));
    }
}
