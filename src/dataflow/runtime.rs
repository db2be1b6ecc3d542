//! The one timely runtime of a process, and the dataflows installed into it.
//!
//! [`Runtime::start`] calls `timely::execute` once; every pipeline's dataflow is then
//! *installed* into the running workers ([`Runtime::install`]) and removed when its
//! [`Dataflow`] handle is dropped, so N joins share the same W worker threads instead of
//! starting N×W. Workers take commands from one ordered stream: install, remove and seal
//! are broadcast to every worker in the order the driver issued them (taken under one lock),
//! so every worker builds the same dataflows in the same order — the property timely's
//! cluster mode needs, where channels are identified by their order of creation. Data
//! commands go to one worker each (round robin); the dataflow exchanges them by key.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};
use differential_dataflow::input::{Input, InputSession};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

use super::records::{BootInput, BootValues, GroupKey, Item, PartValues, RowId};
use super::spec::{BootstrapSpec, PartSpec};
use super::{bootstrap, operator, BootUpdate, EpochOutput, Update};
use crate::error::{Error, Result};

/// A dataflow's id within its runtime: ids increase in install order.
pub type DataflowId = u64;

/// What the driver tells the workers.
enum Cmd {
    Install(Box<Install>),
    Data(DataflowId, Vec<Update>),
    Boot(DataflowId, Vec<BootUpdate>),
    Seal(DataflowId, u64),
    Remove(DataflowId),
}

/// Everything a worker needs to build one dataflow.
struct Install {
    id: DataflowId,
    parts: Arc<Vec<PartSpec>>,
    bootstrap: Option<Arc<BootstrapSpec>>,
    outputs: Sender<Out>,
    acks: Sender<u64>,
}

/// What one worker sends out for a dataflow.
enum Out {
    Part(PartValues),
    Boot(RowId, BootValues, isize),
}

type ItemInput = InputSession<u64, (GroupKey, Item), isize>;
type BootInputSession = InputSession<u64, BootInput, isize>;

/// One worker's handles on an installed dataflow.
struct Installed {
    index: usize,
    input: ItemInput,
    boot_input: BootInputSession,
    probe: ProbeHandle<u64>,
    acks: Sender<u64>,
}

struct Shared {
    /// One command channel per worker; the lock orders commands across handles.
    senders: Mutex<Vec<Sender<Cmd>>>,
    guards: Mutex<Option<timely::communication::WorkerGuards<()>>>,
    next_id: AtomicU64,
    /// Dataflows installed and not yet removed.
    live: AtomicU64,
    workers: usize,
}

impl Shared {
    /// Whether a worker thread has ended (it panicked: workers only end at shutdown).
    fn dead(&self) -> bool {
        self.guards
            .lock()
            .map(|g| {
                g.as_ref()
                    .is_some_and(|g| g.guards().iter().any(|h| h.is_finished()))
            })
            .unwrap_or(true)
    }

    fn broadcast(&self, make: impl Fn() -> Cmd) -> bool {
        let senders = self.senders.lock().expect("runtime lock");
        senders.iter().all(|s| s.send(make()).is_ok())
    }

    fn send_to(&self, worker: usize, cmd: Cmd) -> bool {
        let senders = self.senders.lock().expect("runtime lock");
        senders[worker].send(cmd).is_ok()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Ok(s) = self.senders.get_mut() {
            s.clear();
        }
        let guards = self.guards.get_mut().ok().and_then(|g| g.take());
        if let Some(g) = guards {
            if g.guards().iter().any(|h| h.is_finished()) {
                // a worker died: the others may wait for it forever, so do not join them
                std::mem::forget(g);
            } else {
                drop(g.join());
            }
        }
    }
}

/// The process's timely runtime: `workers` threads that host every installed dataflow.
/// Cheap to clone (a handle); the threads stop when the last handle and dataflow are gone.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Runtime({} workers)", self.shared.workers)
    }
}

const CHUNK: usize = 16_384;

impl Runtime {
    /// Starts the runtime's worker threads (one timely instance for the whole process).
    pub fn start(workers: usize) -> Result<Runtime> {
        let workers = workers.max(1);
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| unbounded::<Cmd>()).unzip();
        let receivers = Arc::new(receivers);
        let guards = timely::execute(timely::Config::process(workers), move |worker| {
            let rx = receivers[worker.index()].clone();
            // BTreeMap: deterministic order whatever the ids
            let mut installed: BTreeMap<DataflowId, Installed> = BTreeMap::new();
            while let Ok(cmd) = rx.recv() {
                match cmd {
                    Cmd::Install(i) => {
                        let index = worker.next_dataflow_index();
                        let (input, boot_input, probe) =
                            worker.dataflow::<u64, _, _>(|scope| build(scope, &i));
                        installed.insert(
                            i.id,
                            Installed {
                                index,
                                input,
                                boot_input,
                                probe,
                                acks: i.acks,
                            },
                        );
                    }
                    Cmd::Data(id, batch) => {
                        if let Some(d) = installed.get_mut(&id) {
                            for (u, r) in batch {
                                d.input.update(u, r);
                            }
                        }
                    }
                    Cmd::Boot(id, batch) => {
                        if let Some(d) = installed.get_mut(&id) {
                            for (u, r) in batch {
                                d.boot_input.update(u, r);
                            }
                        }
                    }
                    Cmd::Seal(id, e) => {
                        if let Some(d) = installed.get_mut(&id) {
                            d.input.advance_to(e + 1);
                            d.input.flush();
                            d.boot_input.advance_to(e + 1);
                            d.boot_input.flush();
                            let (probe, time) = (d.probe.clone(), *d.input.time());
                            worker.step_while(|| probe.less_than(&time));
                            let _ = d.acks.send(e);
                        }
                    }
                    Cmd::Remove(id) => {
                        if let Some(d) = installed.remove(&id) {
                            // close the inputs (every worker does, in this same command
                            // order), let the dataflow drain, then drop it
                            let Installed {
                                index,
                                input,
                                boot_input,
                                probe,
                                ..
                            } = d;
                            drop(input);
                            drop(boot_input);
                            worker.step_while(|| !probe.done());
                            worker.drop_dataflow(index);
                        }
                    }
                }
            }
        })
        .map_err(|e| Error::internal(format!("starting {workers} dataflow workers: {e}")))?;
        Ok(Runtime {
            shared: Arc::new(Shared {
                senders: Mutex::new(senders),
                guards: Mutex::new(Some(guards)),
                next_id: AtomicU64::new(0),
                live: AtomicU64::new(0),
                workers,
            }),
        })
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.shared.workers
    }

    /// Installs a dataflow computing `parts` (with the bootstrap stage when `bootstrap` is
    /// given) into the running workers.
    pub fn install(
        &self,
        parts: Vec<PartSpec>,
        bootstrap: Option<BootstrapSpec>,
    ) -> Result<Dataflow> {
        let id = self.shared.next_id.fetch_add(1, Ordering::SeqCst);
        let parts = Arc::new(parts);
        let bootstrap = bootstrap.map(Arc::new);
        let (out_tx, outputs) = unbounded::<Out>();
        let (ack_tx, acks) = unbounded::<u64>();
        let sent = self.shared.broadcast(|| {
            Cmd::Install(Box::new(Install {
                id,
                parts: parts.clone(),
                bootstrap: bootstrap.clone(),
                outputs: out_tx.clone(),
                acks: ack_tx.clone(),
            }))
        });
        if !sent || self.shared.dead() {
            return Err(dead_runtime());
        }
        self.shared.live.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(dataflow = id, parts = parts.len(), "dataflow installed");
        Ok(Dataflow {
            id,
            shared: self.shared.clone(),
            acks,
            outputs,
            epoch: 0,
            next_worker: (id as usize) % self.shared.workers,
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

fn dead_runtime() -> Error {
    Error::internal(
        "a dataflow worker failed earlier (see the panic message above); restart the process",
    )
}

/// Builds one dataflow in a worker: the windows operator over the items (after the
/// bootstrap stage when there is one), its outputs drained into the handle's channel.
fn build(
    scope: timely::dataflow::Scope<'_, u64>,
    i: &Install,
) -> (ItemInput, BootInputSession, ProbeHandle<u64>) {
    let (input, items) = scope.new_collection::<(GroupKey, Item), isize>();
    let (boot_input, boot) = scope.new_collection::<BootInput, isize>();
    let probe = ProbeHandle::new();
    let out_tx = i.outputs.clone();
    let items = match &i.bootstrap {
        Some(spec) => {
            let (queries, values) = bootstrap::stage(boot, spec.clone());
            let boot_tx = out_tx.clone();
            values
                .inner
                .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
                    Pipeline,
                    "BootstrapOutput",
                    move |_, _| {
                        move |input, _output| {
                            input.for_each(|_cap, data| {
                                for ((row, v), _t, r) in data.drain(..) {
                                    let _ = boot_tx.send(Out::Boot(row, v, r));
                                }
                            });
                        }
                    },
                )
                .probe_with(&probe);
            items.concat(queries)
        }
        None => items,
    };
    // drain the output changes into the channel (moved, not cloned)
    operator::windows(items, i.parts.clone())
        .inner
        .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Pipeline, "Output", move |_, _| {
            move |input, _output| {
                input.for_each(|_cap, data| {
                    for (d, _t, _r) in data.drain(..) {
                        let _ = out_tx.send(Out::Part(d));
                    }
                });
            }
        })
        .probe_with(&probe);
    (input, boot_input, probe)
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
        self.send_chunks(updates, Cmd::Data);
    }

    /// Sends bootstrap-stage updates for the current epoch (the dataflow must have been
    /// installed with a bootstrap stage).
    pub fn update_boot(&mut self, updates: Vec<BootUpdate>) {
        self.send_chunks(updates, Cmd::Boot);
    }

    /// Sends `updates` in chunks, each to the next worker in turn.
    fn send_chunks<T>(&mut self, mut updates: Vec<T>, cmd: fn(DataflowId, Vec<T>) -> Cmd) {
        while !updates.is_empty() {
            let rest = updates.split_off(updates.len().min(CHUNK));
            let chunk = std::mem::replace(&mut updates, rest);
            self.shared.send_to(self.next_worker, cmd(self.id, chunk));
            self.next_worker = (self.next_worker + 1) % self.shared.workers;
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
        let failed = || {
            Error::internal(format!(
                "a dataflow worker failed while computing epoch {e} (see the panic message above); no output was written for it"
            ))
        };
        let id = self.id;
        if !self.shared.broadcast(|| Cmd::Seal(id, e)) {
            return Err(failed());
        }
        let mut acked = 0;
        while acked < self.shared.workers {
            match self.acks.recv_timeout(Duration::from_millis(200)) {
                Ok(_) => acked += 1,
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
        for o in self.outputs.try_iter() {
            match o {
                Out::Part(p) => out.parts.push(p),
                Out::Boot(row, v, r) => boot.push(((row, v), r)),
            }
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

    /// The next epoch to be sealed.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl Drop for Dataflow {
    fn drop(&mut self) {
        self.shared.live.fetch_sub(1, Ordering::SeqCst);
        if !self.shared.dead() {
            let id = self.id;
            self.shared.broadcast(|| Cmd::Remove(id));
        }
    }
}
