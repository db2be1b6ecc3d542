//! The one timely runtime of a process, and the dataflows installed into it.
//!
//! [`Runtime::start`] calls `timely::execute` once — for W threads in this process, or as one
//! process of a timely cluster ([`Topology`]); every pipeline's dataflow is then *installed*
//! into the running workers ([`Runtime::install`]) and removed when its [`Dataflow`] handle
//! is dropped, so N joins share the same workers instead of starting N×W threads.
//!
//! The driver (the thread that plans and writes: on process 0 only) hands commands to the
//! leader worker, which broadcasts them through the command stream ([`super::control`]), so
//! every worker of every process builds the same dataflows in the same order. Input data
//! either goes straight from the driver to this process's workers (round robin) or is read
//! by the workers themselves, each its share ([`super::shard`], [`Dataflow::read`]); the
//! dataflow exchanges it by key across every process, and outputs come back to worker 0.
//! The other processes of a cluster have no driver: their runtime only reads and computes,
//! until the leader's runtime shuts down ([`Runtime::wait`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};

use super::control::Ctl;
pub use super::control::DataflowId;
use super::records::{BootValues, PartValues, RowId};
use super::shard::{ReadError, ReadTask, ShardReader};
use super::spec::{BootstrapSpec, PartSpec};
use super::topology::Topology;
use super::worker::{self, Env, Event, Local, Out, SinkRegistry, Sinks};
use super::{BootUpdate, EpochOutput, Update};
use crate::error::{Error, Result};

struct Shared {
    /// One channel per local worker; the lock orders what the driver sends.
    senders: Mutex<Vec<Sender<Local>>>,
    /// The local workers' threads, woken after each send.
    threads: Vec<std::thread::Thread>,
    guards: Mutex<Option<Guards>>,
    sinks: SinkRegistry,
    events: Receiver<Event>,
    next_id: AtomicU64,
    /// Dataflows installed and not yet removed.
    live: AtomicU64,
    /// Set once a worker is known to have stopped abnormally.
    failed: AtomicBool,
    /// Workers that finished normally (after a shutdown).
    finished: AtomicUsize,
    topology: Topology,
}

impl Shared {
    /// Whether a worker thread has ended abnormally (it panicked, or a peer process was
    /// lost).
    fn dead(&self) -> bool {
        if self.failed.load(Ordering::SeqCst) {
            return true;
        }
        let dead = self
            .guards
            .lock()
            .map(|g| g.as_ref().is_some_and(|g| self.ended_abnormally(g)))
            .unwrap_or(true);
        if dead {
            self.failed.store(true, Ordering::SeqCst);
        }
        dead
    }

    /// Whether more worker threads ended than said they finished (after a shutdown): the
    /// others panicked.
    fn ended_abnormally(&self, g: &Guards) -> bool {
        let ended = g.guards().iter().filter(|h| h.is_finished()).count();
        ended > self.finished.load(Ordering::SeqCst)
    }

    /// Waits (at most a minute) until every local worker has said it finished; false when
    /// one stopped without finishing, or when a failure was seen earlier.
    fn clean_shutdown(&self, g: &Guards) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.failed.load(Ordering::SeqCst) && Instant::now() < deadline {
            while let Ok(e) = self.events.try_recv() {
                if matches!(e, Event::Finished) {
                    self.finished.fetch_add(1, Ordering::SeqCst);
                }
            }
            if self.finished.load(Ordering::SeqCst) >= self.topology.workers {
                return true;
            }
            if self.ended_abnormally(g) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Sends to one local worker and wakes it.
    fn send_to(&self, worker: usize, m: Local) -> bool {
        let senders = self.senders.lock().expect("runtime lock");
        let ok = senders[worker].send(m).is_ok();
        self.threads[worker].unpark();
        ok
    }

    /// Sends a command to every worker of every process (through the leader worker).
    fn command(&self, c: Ctl) -> bool {
        self.send_to(0, Local::Ctl(c))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Ok(s) = self.senders.get_mut() {
            s.clear();
        }
        for t in &self.threads {
            t.unpark();
        }
        let guards = self.guards.get_mut().ok().and_then(|g| g.take());
        if let Some(g) = guards {
            if self.clean_shutdown(&g) {
                // joins the workers, then timely's network threads (in a cluster they end
                // when every peer has shut down too); a peer lost meanwhile makes them panic
                let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.join()));
                if joined.is_err() {
                    tracing::warn!("a cluster peer was lost while the runtime shut down");
                }
            } else {
                // a worker died: the others may wait for it forever, so do not join them
                std::mem::forget(g);
            }
        }
    }
}

/// The process's timely runtime: the workers that host every installed dataflow.
/// Cheap to clone (a handle); the workers stop when the last handle and dataflow are gone.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Runtime({})", self.shared.topology.describe())
    }
}

const CHUNK: usize = 16_384;

impl Runtime {
    /// Starts `workers` worker threads in this process.
    pub fn start(workers: usize) -> Result<Runtime> {
        Self::start_with(Topology::local(workers))
    }

    /// Starts this process's workers of `topology`. In a cluster this waits (at most the
    /// connect timeout) until every process has connected and announced the same identity.
    pub fn start_with(topology: Topology) -> Result<Runtime> {
        Self::start_reading(topology, None)
    }

    /// Like [`Runtime::start_with`], with the reader that decodes the [`ReadTask`]s
    /// addressed to this process's workers (every process of a cluster needs one).
    pub fn start_reading(
        topology: Topology,
        reader: Option<Arc<dyn ShardReader>>,
    ) -> Result<Runtime> {
        let workers = topology.workers.max(1);
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| unbounded::<Local>()).unzip();
        let (events_tx, events) = unbounded::<Event>();
        let sinks: SinkRegistry = Arc::new(Mutex::new(BTreeMap::new()));
        let identity = topology
            .cluster
            .as_ref()
            .map(|c| c.identity.clone())
            .unwrap_or_default();
        let env = Env {
            receivers: Arc::new(receivers),
            sinks: sinks.clone(),
            events: events_tx,
            identity,
            process: topology.process(),
            processes: topology.processes(),
            workers,
            reader,
        };
        let config = topology.timely_config();
        let timeout = topology
            .cluster
            .as_ref()
            .map_or(Duration::from_secs(60), |c| c.connect_timeout);
        // a cluster's execute blocks until every peer connects (timely retries forever),
        // so it runs on its own thread and is given up on after the timeout
        let (guards_tx, guards_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("weft-timely-start".into())
            .spawn(move || {
                let env = env;
                let r = timely::execute(config, move |w| worker::run(w, &env));
                let _ = guards_tx.send(r);
            })
            .map_err(|e| Error::io("starting the dataflow runtime", e))?;
        let (threads, guards) = await_workers(&events, &guards_rx, &topology, timeout)?;
        if topology.cluster.is_some() {
            tracing::info!(topology = %topology.describe(), "joined the cluster");
        }
        Ok(Runtime {
            shared: Arc::new(Shared {
                senders: Mutex::new(senders),
                threads,
                guards: Mutex::new(Some(guards)),
                sinks,
                events,
                next_id: AtomicU64::new(0),
                live: AtomicU64::new(0),
                failed: AtomicBool::new(false),
                finished: AtomicUsize::new(0),
                topology,
            }),
        })
    }

    /// The number of worker threads in this process.
    pub fn workers(&self) -> usize {
        self.shared.topology.workers
    }

    /// The runtime's layout.
    pub fn topology(&self) -> &Topology {
        &self.shared.topology
    }

    /// Whether a worker has stopped abnormally (a panic, or a lost peer process). Once true,
    /// nothing more can be computed: the process must exit and be restarted.
    pub fn failed(&self) -> bool {
        self.shared.dead()
    }

    /// Calls `f` once, from a watchdog thread, if a worker stops abnormally while a handle on
    /// this runtime is alive — in a cluster, the way every process learns at once that one
    /// was lost, even while its driver is busy reading or writing.
    pub fn on_failure(&self, f: impl FnOnce(Error) + Send + 'static) {
        let weak = Arc::downgrade(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("weft-runtime-watch".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(250));
                let Some(shared) = weak.upgrade() else {
                    return;
                };
                if shared.dead() {
                    let e = dead_runtime(&shared.topology);
                    drop(shared);
                    f(e);
                    return;
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the runtime watchdog");
        }
    }

    /// For a process that does not lead a cluster: computes until the leader shuts the
    /// cluster down (`Ok`), or until a worker stops because a peer was lost (`Err`).
    pub fn wait(self) -> Result<()> {
        let workers = self.shared.topology.workers;
        while self.shared.finished.load(Ordering::SeqCst) < workers {
            match self.shared.events.recv_timeout(Duration::from_millis(200)) {
                Ok(Event::Finished) => {
                    self.shared.finished.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if self.shared.dead() {
                        return Err(lost_peer(&self.shared.topology));
                    }
                }
                Err(_) => {
                    // every worker is gone without finishing: never join them
                    self.shared.failed.store(true, Ordering::SeqCst);
                    return Err(lost_peer(&self.shared.topology));
                }
            }
        }
        Ok(())
    }

    /// Installs a dataflow computing `parts` (with the bootstrap stage when `bootstrap` is
    /// given) into every worker.
    pub fn install(
        &self,
        parts: Vec<PartSpec>,
        bootstrap: Option<BootstrapSpec>,
    ) -> Result<Dataflow> {
        if !self.shared.topology.leads() {
            return Err(Error::internal(
                "only process 0 of a cluster installs dataflows",
            ));
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::SeqCst);
        let (out_tx, outputs) = unbounded::<Out>();
        let (ack_tx, acks) = unbounded::<u64>();
        self.shared.sinks.lock().expect("sinks lock").insert(
            id,
            Sinks {
                outputs: out_tx,
                acks: ack_tx,
            },
        );
        let n = parts.len();
        let sent = self.shared.command(Ctl::Install {
            id,
            parts,
            bootstrap,
        });
        if !sent || self.shared.dead() {
            self.shared.sinks.lock().expect("sinks lock").remove(&id);
            return Err(dead_runtime(&self.shared.topology));
        }
        self.shared.live.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(dataflow = id, parts = n, "dataflow installed");
        Ok(Dataflow {
            id,
            shared: self.shared.clone(),
            acks,
            outputs,
            epoch: 0,
            next_worker: (id as usize) % self.shared.topology.workers,
        })
    }

    /// How many dataflows are installed now.
    pub fn dataflows(&self) -> u64 {
        self.shared.live.load(Ordering::SeqCst)
    }

    /// Whether two handles are the same runtime.
    pub fn same(&self, other: &Runtime) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

type Guards = timely::communication::WorkerGuards<()>;

/// Waits (at most `timeout`) until every local worker has started and the processes agreed;
/// returns the workers' threads and their guards.
fn await_workers(
    events: &Receiver<Event>,
    guards_rx: &std::sync::mpsc::Receiver<std::result::Result<Guards, String>>,
    topology: &Topology,
    timeout: Duration,
) -> Result<(Vec<std::thread::Thread>, Guards)> {
    let deadline = Instant::now() + timeout;
    let mut threads: Vec<Option<std::thread::Thread>> = vec![None; topology.workers.max(1)];
    let mut agreed = None;
    let mut guards = None;
    while agreed.is_none() || threads.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(Event::Started(i, t)) => threads[i] = Some(t),
            Ok(Event::Agreed(v)) => agreed = Some(v),
            Ok(Event::Finished) => {}
            Err(e) => {
                match guards_rx.try_recv() {
                    // timely could not listen or connect (a port in use, say)
                    Ok(Err(e)) => {
                        return Err(Error::Usage(format!(
                            "the dataflow runtime could not start ({}): {e}; check that this process's address is free and the others reachable",
                            topology.describe()
                        )))
                    }
                    Ok(Ok(g)) => guards = Some(g),
                    Err(_) => {}
                }
                if e.is_disconnected() {
                    // the workers stopped before agreeing (a peer was lost): joining them
                    // would only repeat their panics
                    std::mem::forget(guards);
                    return Err(lost_peer(topology));
                }
                if Instant::now() >= deadline {
                    std::mem::forget(guards);
                    return Err(Error::Usage(not_connected(topology, timeout)));
                }
            }
        }
    }
    if let Some(Err(e)) = agreed {
        // the process exits with this error; its workers stop by themselves
        std::mem::forget(guards);
        return Err(Error::Usage(e));
    }
    let guards = match guards {
        Some(g) => g,
        None => guards_rx
            .recv()
            .map_err(|_| Error::internal("the dataflow runtime did not start"))?
            .map_err(|e| Error::internal(format!("starting the dataflow runtime: {e}")))?,
    };
    Ok((threads.into_iter().flatten().collect(), guards))
}

fn not_connected(t: &Topology, timeout: Duration) -> String {
    format!(
        "the cluster did not form within {} s ({}): start the same command on every process with its own --process, check that each address is reachable and its port free, or raise --connect-timeout",
        timeout.as_secs(),
        t.describe()
    )
}

fn lost_peer(t: &Topology) -> Error {
    Error::External {
        service: "cluster".into(),
        message: format!(
            "a dataflow worker stopped ({}): a process of the cluster was lost or failed (see the message above); restart every process — a materializer resumes from its last committed epoch",
            t.describe()
        ),
    }
}

fn dead_runtime(t: &Topology) -> Error {
    if t.cluster.is_some() {
        return lost_peer(t);
    }
    Error::internal(
        "a dataflow worker failed earlier (see the panic message above); restart the process",
    )
}

/// A worker's read error as the driver reports it, with its kind kept (whether retrying can
/// help depends on it).
fn read_error(e: ReadError) -> Error {
    Error::Worker {
        kind: crate::error::ErrorKind::parse(&e.kind),
        message: e.message,
    }
}

/// A dataflow installed in a [`Runtime`]: feed updates, seal epochs, read what changed.
/// Dropping it removes the dataflow from every worker.
pub struct Dataflow {
    id: DataflowId,
    shared: Arc<Shared>,
    acks: Receiver<u64>,
    outputs: Receiver<Out>,
    epoch: u64,
    next_worker: usize,
}

impl Dataflow {
    /// The dataflow's id in its runtime.
    pub fn id(&self) -> DataflowId {
        self.id
    }

    /// Sends updates for the current epoch (spread over the workers).
    pub fn update(&mut self, updates: Vec<Update>) {
        self.send_chunks(updates, Local::Data);
    }

    /// Sends bootstrap-stage updates for the current epoch (the dataflow must have been
    /// installed with a bootstrap stage).
    pub fn update_boot(&mut self, updates: Vec<BootUpdate>) {
        self.send_chunks(updates, Local::Boot);
    }

    /// Sends `updates` in chunks, each to the next worker in turn.
    fn send_chunks<T>(&mut self, mut updates: Vec<T>, cmd: fn(DataflowId, Vec<T>) -> Local) {
        while !updates.is_empty() {
            let rest = updates.split_off(updates.len().min(CHUNK));
            let chunk = std::mem::replace(&mut updates, rest);
            self.shared.send_to(self.next_worker, cmd(self.id, chunk));
            self.next_worker = (self.next_worker + 1) % self.shared.topology.workers;
        }
    }

    /// Completes the current epoch and returns the computed values it changed (for
    /// dataflows without a bootstrap stage; see [`Dataflow::seal_all`]).
    pub fn seal(&mut self) -> Result<Vec<PartValues>> {
        Ok(self.seal_all()?.parts)
    }

    /// Completes the current epoch and returns every output change it caused.
    /// A worker that failed (its panic message is logged by the panic hook) makes this an
    /// error rather than a partial result.
    pub fn seal_all(&mut self) -> Result<EpochOutput> {
        let e = self.epoch;
        let topology = &self.shared.topology;
        let failed = || {
            if topology.cluster.is_some() {
                return lost_peer(topology);
            }
            Error::internal(format!(
                "a dataflow worker failed while computing epoch {e} (see the panic message above); no output was written for it"
            ))
        };
        if !self.shared.command(Ctl::Seal {
            id: self.id,
            epoch: e,
        }) {
            return Err(failed());
        }
        // the leader worker acknowledges once the epoch's outputs of every worker are in
        loop {
            match self.acks.recv_timeout(Duration::from_millis(200)) {
                Ok(_) => break,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if self.shared.dead() {
                        return Err(failed());
                    }
                }
                Err(_) => return Err(failed()),
            }
        }
        self.epoch += 1;
        let mut out = EpochOutput::default();
        let mut boot: Vec<((RowId, BootValues), isize)> = Vec::new();
        let mut errors = Vec::new();
        for o in self.outputs.try_iter() {
            match o {
                Out::Part(p) => out.parts.push(p),
                Out::Boot(row, v, r) => boot.push(((row, v), r)),
                Out::Read(r) => match r.error {
                    Some(e) => errors.push(read_error(e)),
                    None => out.reads.push(r),
                },
            }
        }
        if !errors.is_empty() {
            return Err(if errors.len() == 1 {
                errors.remove(0)
            } else {
                Error::Many(errors)
            });
        }
        // retractions and insertions of a row's outcome become one upsert
        differential_dataflow::consolidation::consolidate(&mut boot);
        let mut rows: BTreeMap<RowId, Option<BootValues>> = BTreeMap::new();
        for ((row, v), r) in boot {
            let e = rows.entry(row).or_insert(None);
            if r > 0 {
                *e = Some(v);
            }
        }
        out.boot = rows.into_iter().collect();
        Ok(out)
    }

    /// Every worker of every process: [`ReadTask`]s address workers `0..peers`.
    pub fn peers(&self) -> usize {
        self.shared.topology.workers * self.shared.topology.processes()
    }

    /// Has workers read into the current epoch (each task by the worker it names). What
    /// they read comes back with the epoch's output ([`EpochOutput::reads`]); a failed read
    /// makes the seal an error.
    pub fn read(&mut self, tasks: Vec<ReadTask>) -> Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        if !self.shared.command(Ctl::Read { id: self.id, tasks }) || self.shared.dead() {
            return Err(dead_runtime(&self.shared.topology));
        }
        Ok(())
    }

    /// Has every worker write the stored aggregates of `parts` at their boundaries
    /// `(part, at)` (day starts) to its own files in folder `dir` ([`super::store`]), from
    /// the state of the epochs sealed so far. The next seal returns once all of them are
    /// written, with one report per worker (tag [`super::shard::STORE_TAG`], the keys
    /// written per part in the order given), or fails.
    pub fn store(&mut self, dir: &std::path::Path, parts: Vec<(u16, i64)>) -> Result<()> {
        let cmd = Ctl::Store {
            id: self.id,
            dir: dir.to_string_lossy().into_owned(),
            parts,
        };
        if !self.shared.command(cmd) || self.shared.dead() {
            return Err(dead_runtime(&self.shared.topology));
        }
        Ok(())
    }

    /// The next epoch to be sealed.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl Drop for Dataflow {
    fn drop(&mut self) {
        self.shared.live.fetch_sub(1, Ordering::SeqCst);
        if !self.shared.dead() {
            self.shared.command(Ctl::Remove { id: self.id });
        }
        if let Ok(mut s) = self.shared.sinks.lock() {
            s.remove(&self.id);
        }
    }
}
