//! What every pipeline runs on: the SQL session over the warehouse and the process's one
//! timely [`Runtime`], started on first use with the context's worker count.

use std::sync::OnceLock;

use crate::dataflow::Runtime;
use crate::error::Result;
use crate::sql::Session;
use crate::warehouse::Warehouse;

/// The SQL session and the dataflow runtime shared by every pipeline of an engine.
pub struct Context {
    session: Session,
    workers: usize,
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
        Ok(Self::from_session(Session::new(wh)?, workers))
    }

    /// A context over an existing session.
    pub fn from_session(session: Session, workers: usize) -> Context {
        Context {
            session,
            workers: workers.max(1),
            runtime: OnceLock::new(),
        }
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

    /// The number of dataflow worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The dataflow runtime, started on first use: one per context, hosting every pipeline's
    /// dataflow.
    pub fn runtime(&self) -> Result<&Runtime> {
        if let Some(rt) = self.runtime.get() {
            return Ok(rt);
        }
        let rt = Runtime::start(self.workers)?;
        Ok(self.runtime.get_or_init(|| rt))
    }
}
