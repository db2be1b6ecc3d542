//! What one timely worker does for the whole life of a runtime: build the command stream,
//! say hello, then loop — take data from this process's driver, execute released commands
//! (build, seal, remove dataflows), step, and acknowledge sealed epochs whose outputs are all
//! in. Outputs of every worker in every process are exchanged to worker 0 (on the leader),
//! which alone hands them to the driver.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use differential_dataflow::input::{Input as _, InputSession};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::Input as _;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

use super::control::{self, Ctl, DataflowId};
use super::records::{BootInput, BootValues, GroupKey, Item, PartValues, RowId};
use super::shard::{Kept, ReadReport, ShardReader};
use super::spec::{BootstrapSpec, PartSpec};
use super::topology::Identity;
use super::{bootstrap, operator, BootUpdate, Update};

/// What a process's driver sends to one of its workers.
pub enum Local {
    /// A command for every worker (sent to the leader worker only, which broadcasts it).
    Ctl(Ctl),
    /// Input updates for a dataflow's current epoch.
    Data(DataflowId, Vec<Update>),
    /// Bootstrap-stage updates for a dataflow's current epoch.
    Boot(DataflowId, Vec<BootUpdate>),
}

/// What the leader worker sends out for a dataflow.
pub enum Out {
    Part(PartValues),
    Boot(RowId, BootValues, isize),
    Read(ReadReport),
}

/// Where the leader worker delivers a dataflow's outputs and epoch acknowledgements.
#[derive(Clone)]
pub struct Sinks {
    pub outputs: Sender<Out>,
    pub acks: Sender<u64>,
}

/// Sinks by dataflow id, registered by the driver before it sends the install.
pub type SinkRegistry = Arc<Mutex<BTreeMap<DataflowId, Sinks>>>;

/// What a worker reports to its process's runtime handle.
pub enum Event {
    /// The worker's thread, for waking it when the driver sends it something.
    Started(usize, std::thread::Thread),
    /// Every process said hello: `Err` names the first difference (from the process's first
    /// worker only).
    Agreed(Result<(), String>),
    /// The worker left its loop normally and its dataflows completed.
    Finished,
}

/// Everything one worker needs from the runtime that starts it.
#[derive(Clone)]
pub struct Env {
    pub receivers: Arc<Vec<Receiver<Local>>>,
    pub sinks: SinkRegistry,
    pub events: Sender<Event>,
    pub identity: Identity,
    pub process: usize,
    pub processes: usize,
    pub workers: usize,
    /// Decodes the read tasks addressed to this process's workers.
    pub reader: Option<Arc<dyn ShardReader>>,
}

type ItemInput = InputSession<u64, (GroupKey, Item), isize>;
type BootInputSession = InputSession<u64, BootInput, isize>;
type ReportInput = timely::dataflow::operators::vec::input::Handle<u64, ReadReport>;

/// One worker's handles on an installed dataflow.
struct Installed {
    index: usize,
    input: ItemInput,
    boot_input: BootInputSession,
    reports: ReportInput,
    probe: ProbeHandle<u64>,
    /// Rows this worker read, to retract them exactly.
    kept: Kept,
    /// The windows operator's groups on this worker, and the parts they compute.
    groups: operator::Groups,
    parts: Arc<Vec<PartSpec>>,
}

/// One worker's state for the life of the runtime.
struct Runner {
    local: usize,
    leader: bool,
    rx: Receiver<Local>,
    /// The leader's end of the command stream (`None` elsewhere, and once closed).
    ctl_in: Option<control::CtlInput>,
    released: control::Released,
    /// The leader's view of the driver's sinks (`None` on other workers).
    sinks: Option<SinkRegistry>,
    installed: BTreeMap<DataflowId, Installed>,
    /// Data that arrived before this worker built its dataflow.
    early: BTreeMap<DataflowId, Vec<Local>>,
    /// Sealed epochs to acknowledge (leader worker): `(id, epoch)`.
    sealing: Vec<(DataflowId, u64)>,
    /// Removed dataflows draining: `(timely index, probe)`.
    draining: Vec<(usize, ProbeHandle<u64>)>,
    agreed: bool,
    driver_gone: bool,
    /// This worker's index among every worker of every process.
    global: usize,
    reader: Option<Arc<dyn ShardReader>>,
}

/// The worker's whole life: hello, then the loop, then a clean finish.
pub fn run(worker: &mut timely::worker::Worker, env: &Env) {
    let local = worker.index() - env.process * env.workers;
    let leader = worker.index() == 0;
    let _ = env
        .events
        .send(Event::Started(local, std::thread::current()));
    let (mut ctl_in, released) = control::build(worker);
    if local == 0 {
        ctl_in.send(Ctl::Hello {
            process: env.process,
            identity: env.identity.clone(),
        });
    }
    // only the leader sends commands; the others close their handles so time can pass
    let ctl_in = if leader {
        ctl_in.advance_to(1);
        Some(ctl_in)
    } else {
        drop(ctl_in);
        None
    };
    let mut r = Runner {
        local,
        leader,
        rx: env.receivers[local].clone(),
        ctl_in,
        released,
        sinks: leader.then(|| env.sinks.clone()),
        installed: BTreeMap::new(),
        early: BTreeMap::new(),
        sealing: Vec::new(),
        draining: Vec::new(),
        agreed: false,
        driver_gone: false,
        global: worker.index(),
        reader: env.reader.clone(),
    };
    r.serve(worker, env);
    // close everything and let the dataflows complete (in every process) before saying so
    drop(r);
    while worker.has_dataflows() {
        worker.step_or_park(Some(Duration::from_millis(100)));
    }
    let _ = env.events.send(Event::Finished);
}

impl Runner {
    /// Until a shutdown (or a failed agreement): driver messages, released commands, a step,
    /// then acknowledgements and drained dataflows.
    fn serve(&mut self, worker: &mut timely::worker::Worker, env: &Env) {
        loop {
            self.take_driver_messages();
            let cmds: Vec<Ctl> = std::mem::take(&mut *self.released.borrow_mut());
            if !self.agreed && !cmds.is_empty() {
                self.agreed = true;
                let verdict = agreement(&cmds, env.processes);
                if self.local == 0 {
                    let _ = env.events.send(Event::Agreed(verdict.clone()));
                }
                if verdict.is_err() {
                    return;
                }
            }
            for c in cmds {
                if !self.execute(worker, c) {
                    return;
                }
            }
            // a driver message or a remote record wakes the thread
            worker.step_or_park(Some(Duration::from_millis(100)));
            self.acknowledge();
            self.drop_drained(worker);
        }
    }

    /// What this process's driver sent: commands (leader: into the command stream, each at
    /// its own time) and data (applied, or kept until its dataflow is built). A driver gone
    /// becomes a shutdown command.
    fn take_driver_messages(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(Local::Ctl(c)) => self.broadcast(c),
                Ok(m) => self.data(m),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    if self.leader && !self.driver_gone {
                        self.driver_gone = true;
                        self.broadcast(Ctl::Shutdown);
                    }
                    return;
                }
            }
        }
    }

    fn broadcast(&mut self, c: Ctl) {
        if let Some(h) = self.ctl_in.as_mut() {
            let next = *h.time() + 1;
            h.send(c);
            h.advance_to(next);
        }
    }

    fn data(&mut self, m: Local) {
        let id = match &m {
            Local::Data(id, _) | Local::Boot(id, _) => *id,
            Local::Ctl(_) => return,
        };
        match self.installed.get_mut(&id) {
            Some(d) => apply(d, m),
            None => self.early.entry(id).or_default().push(m),
        }
    }

    /// The leader's sinks of a dataflow.
    fn sinks_of(&self, id: DataflowId) -> Option<Sinks> {
        self.sinks
            .as_ref()
            .and_then(|s| s.lock().ok().and_then(|s| s.get(&id).cloned()))
    }

    /// Executes one released command; false on shutdown.
    fn execute(&mut self, worker: &mut timely::worker::Worker, c: Ctl) -> bool {
        match c {
            Ctl::Hello { .. } => {}
            Ctl::Install {
                id,
                parts,
                bootstrap,
            } => {
                let out = self.sinks_of(id).map(|s| s.outputs);
                let index = worker.next_dataflow_index();
                let parts = Arc::new(parts);
                let groups = operator::Groups::default();
                let (input, boot_input, reports, probe) = worker.dataflow::<u64, _, _>(|scope| {
                    build(scope, parts.clone(), bootstrap, out, groups.clone())
                });
                let mut d = Installed {
                    index,
                    input,
                    boot_input,
                    reports,
                    probe,
                    kept: Kept::default(),
                    groups,
                    parts,
                };
                for m in self.early.remove(&id).unwrap_or_default() {
                    apply(&mut d, m);
                }
                self.installed.insert(id, d);
            }
            Ctl::Seal { id, epoch } => {
                if let Some(d) = self.installed.get_mut(&id) {
                    d.input.advance_to(epoch + 1);
                    d.input.flush();
                    d.boot_input.advance_to(epoch + 1);
                    d.boot_input.flush();
                    d.reports.advance_to(epoch + 1);
                    if self.leader {
                        self.sealing.push((id, epoch));
                    }
                }
            }
            Ctl::Read { id, tasks } => {
                let Some(d) = self.installed.get_mut(&id) else {
                    return true;
                };
                for task in tasks.into_iter().filter(|t| t.worker() == self.global) {
                    let _span = tracing::debug_span!("read_task", dataflow = id).entered();
                    let (updates, report) = d.kept.run(self.reader.as_deref(), task);
                    for (u, r) in updates.into_iter().flatten() {
                        d.input.update(u, r);
                    }
                    if let Some(report) = report {
                        d.reports.send(report);
                    }
                }
            }
            Ctl::Store { id, dir, parts } => {
                let Some(d) = self.installed.get_mut(&id) else {
                    return true;
                };
                let _span = tracing::debug_span!("store_aggregates", dataflow = id).entered();
                let layouts: Vec<_> = d.parts.iter().map(super::tiles::Layout::new).collect();
                let written = super::store::write(
                    &d.groups,
                    &d.parts,
                    &layouts,
                    &parts,
                    std::path::Path::new(&dir),
                    self.global,
                );
                let (counts, error) = match written {
                    Ok(n) => (n, None),
                    Err(message) => (
                        Vec::new(),
                        Some(super::shard::ReadError {
                            kind: "io".into(),
                            message,
                        }),
                    ),
                };
                d.reports.send(ReadReport {
                    tag: super::shard::STORE_TAG,
                    counts,
                    error,
                });
            }
            Ctl::Remove { id } => {
                self.early.remove(&id);
                if let Some(d) = self.installed.remove(&id) {
                    // closing the inputs (every worker does, in this same order) lets the
                    // dataflow drain; it is dropped once done
                    let Installed {
                        index,
                        input,
                        boot_input,
                        reports,
                        probe,
                        kept,
                        groups,
                        parts: _,
                    } = d;
                    drop(groups);
                    drop(input);
                    drop(boot_input);
                    drop(reports);
                    drop(kept);
                    self.draining.push((index, probe));
                }
            }
            Ctl::Shutdown => return false,
        }
        true
    }

    /// Acknowledges the sealed epochs whose outputs (from every worker) are all in.
    fn acknowledge(&mut self) {
        let sealing = std::mem::take(&mut self.sealing);
        for (id, epoch) in sealing {
            let Some(d) = self.installed.get(&id) else {
                continue;
            };
            if d.probe.less_than(&(epoch + 1)) {
                self.sealing.push((id, epoch));
            } else if let Some(s) = self.sinks_of(id) {
                let _ = s.acks.send(epoch);
            }
        }
    }

    fn drop_drained(&mut self, worker: &mut timely::worker::Worker) {
        let mut i = 0;
        while i < self.draining.len() {
            if self.draining[i].1.done() {
                let (index, _) = self.draining.swap_remove(i);
                worker.drop_dataflow(index);
            } else {
                i += 1;
            }
        }
    }
}

fn apply(d: &mut Installed, m: Local) {
    match m {
        Local::Data(_, batch) => {
            for (u, r) in batch {
                d.input.update(u, r);
            }
        }
        Local::Boot(_, batch) => {
            for (u, r) in batch {
                d.boot_input.update(u, r);
            }
        }
        Local::Ctl(_) => {}
    }
}

/// Whether every process announced the leader's identity.
fn agreement(cmds: &[Ctl], processes: usize) -> Result<(), String> {
    let hellos: BTreeMap<usize, &Identity> = cmds
        .iter()
        .filter_map(|c| match c {
            Ctl::Hello { process, identity } => Some((*process, identity)),
            _ => None,
        })
        .collect();
    let Some(lead) = hellos.get(&0) else {
        return Err("process 0 did not announce itself".into());
    };
    if hellos.len() != processes {
        return Err(format!(
            "{} of {processes} processes announced themselves",
            hellos.len()
        ));
    }
    for (p, id) in &hellos {
        if let Some(d) = id.difference(lead) {
            return Err(format!(
                "process {p} does not run what process 0 runs — {d}; run the same weft build, command and configs on every process"
            ));
        }
    }
    Ok(())
}

/// Builds one pipeline's dataflow in a worker: the windows operator over the items (after
/// the bootstrap stage when there is one); outputs go to worker 0, which sends them out.
fn build(
    scope: timely::dataflow::Scope<'_, u64>,
    parts: Arc<Vec<PartSpec>>,
    bootstrap: Option<BootstrapSpec>,
    outputs: Option<Sender<Out>>,
    groups: operator::Groups,
) -> (ItemInput, BootInputSession, ReportInput, ProbeHandle<u64>) {
    let (input, items) = scope.new_collection::<(GroupKey, Item), isize>();
    let (boot_input, boot) = scope.new_collection::<BootInput, isize>();
    let (reports, report_stream) = scope.new_input::<ReadReport>();
    let probe = ProbeHandle::new();
    let report_tx = outputs.clone();
    report_stream
        .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
            Exchange::new(|_: &ReadReport| 0u64),
            "ReadReports",
            move |_, _| {
                move |input, _output| {
                    input.for_each(|_cap, data| {
                        for r in data.drain(..) {
                            if let Some(tx) = &report_tx {
                                let _ = tx.send(Out::Read(r));
                            }
                        }
                    });
                }
            },
        )
        .probe_with(&probe);
    let items = match bootstrap {
        Some(spec) => {
            let (queries, values) = bootstrap::stage(boot, std::sync::Arc::new(spec));
            let boot_tx = outputs.clone();
            values
                .inner
                .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
                    Exchange::new(|_: &((RowId, BootValues), u64, isize)| 0u64),
                    "BootstrapOutput",
                    move |_, _| {
                        move |input, _output| {
                            input.for_each(|_cap, data| {
                                for ((row, v), _t, r) in data.drain(..) {
                                    if let Some(tx) = &boot_tx {
                                        let _ = tx.send(Out::Boot(row, v, r));
                                    }
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
    operator::windows(items, parts, groups)
        .inner
        .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
            Exchange::new(|_: &(PartValues, u64, isize)| 0u64),
            "Output",
            move |_, _| {
                move |input, _output| {
                    input.for_each(|_cap, data| {
                        for (d, _t, _r) in data.drain(..) {
                            if let Some(tx) = &outputs {
                                let _ = tx.send(Out::Part(d));
                            }
                        }
                    });
                }
            },
        )
        .probe_with(&probe);
    (input, boot_input, reports, probe)
}
