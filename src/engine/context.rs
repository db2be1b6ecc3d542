//! What every pipeline runs on: the SQL session over the warehouse and the process's one
//! timely [`Runtime`], started on first use with the context's [`Topology`] (at once when it
//! is a cluster, so the other processes never wait for a leader with nothing to do).

use std::sync::{Arc, OnceLock};

use crate::dataflow::{Runtime, Topology};
use crate::error::Result;
use crate::join::shard::SourceReader;
use crate::sql::Session;
use crate::warehouse::Warehouse;

/// The SQL session and the dataflow runtime shared by every pipeline of an engine.
pub struct Context {
    session: Session,
    topology: Topology,
    runtime: OnceLock<Runtime>,
}

impl Context {
    /// A context over `wh` whose dataflows run on one worker thread.
    pub fn new(wh: &Warehouse) -> Result<Context> {
        Self::with_workers(wh, 1)
    }

    /// A context whose dataflows run on `workers` timely worker threads (the output is the
    /// same for any number).
    pub fn with_workers(wh: &Warehouse, workers: usize) -> Result<Context> {
        Self::with_topology(wh, Topology::local(workers))
    }

    /// A context whose dataflows run on `topology`: this process's workers, or, as process 0
    /// of a cluster, every process's (the runtime starts now and waits for the others).
    pub fn with_topology(wh: &Warehouse, topology: Topology) -> Result<Context> {
        let cluster = topology.cluster.is_some();
        let cx = Context {
            session: Session::new(wh)?,
            topology,
            runtime: OnceLock::new(),
        };
        if cluster {
            cx.runtime()?;
        }
        Ok(cx)
    }

    /// The runtime of a cluster process that does not lead (its workers compute and read
    /// their share of the sources from `wh`, the storage process 0 uses); it runs until
    /// process 0 shuts the cluster down ([`Runtime::wait`]).
    pub fn follower(wh: &Warehouse, topology: Topology) -> Result<Runtime> {
        Runtime::start_reading(topology, Some(Arc::new(SourceReader::new(wh))))
    }

    /// The SQL session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The warehouse.
    pub fn warehouse(&self) -> &Warehouse {
        self.session.warehouse()
    }

    /// Re-registers the warehouse's tables in the SQL session (after writes from elsewhere).
    pub fn refresh(&self) -> Result<()> {
        self.session.refresh()
    }

    /// The number of dataflow worker threads (in this process).
    pub fn workers(&self) -> usize {
        self.topology.workers
    }

    /// Where the dataflow workers run.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The dataflow runtime, started on first use: one per context, hosting every pipeline's
    /// dataflow.
    pub fn runtime(&self) -> Result<&Runtime> {
        if let Some(rt) = self.runtime.get() {
            return Ok(rt);
        }
        // the workers read their share of GroupBy sources themselves
        let reader = Arc::new(SourceReader::new(self.warehouse()));
        let rt = Runtime::start_reading(self.topology.clone(), Some(reader))?;
        Ok(self.runtime.get_or_init(|| rt))
    }
}
