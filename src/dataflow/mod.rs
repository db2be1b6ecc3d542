//! The differential dataflow that computes joins; the only module that touches timely and
//! differential-dataflow (pinned exactly in Cargo.toml; their APIs change often).
//!
//! Inputs are one collection of `((part, key), Item)` updates: GroupBy source events and left
//! rows asking for values; joins with bootstrap parts also feed left rows' bootstrap keys and
//! queries and the bootstrap rows into [`bootstrap::stage`], which passes on only the queries
//! that bootstrap does not cover. Time is a `u64` ingestion epoch, not event time: `ds` and `ts` are
//! data. A backfill feeds everything at epoch 0 and seals; the continuous materializer feeds
//! each new or re-landed partition as a later epoch of the same dataflow, and gets back only
//! the outputs that changed.

pub mod bootstrap;
pub mod group;
mod operator;
pub mod records;
pub mod spec;
pub mod tiles;

use std::sync::Arc;

use crossbeam_channel::{unbounded, Receiver, Sender};
use differential_dataflow::input::Input;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::Probe;

use crate::error::{Error, Result};
use records::{BootInput, BootValues, GroupKey, Item, PartValues, RowId};
use spec::{BootstrapSpec, PartSpec};

/// One input update: a record and its multiplicity change (+1 insert, −1 retract).
pub type Update = ((GroupKey, Item), isize);

/// One bootstrap-stage input update.
pub type BootUpdate = (BootInput, isize);

enum Msg {
    Data(Vec<Update>),
    Boot(Vec<BootUpdate>),
    Seal(u64),
}

/// What one worker sends out.
enum Out {
    Part(PartValues),
    Boot(RowId, BootValues, isize),
}

/// The output changes of one epoch.
#[derive(Debug, Default)]
pub struct EpochOutput {
    /// Computed values per `(row, part)` (upserts; no values = removed).
    pub parts: Vec<PartValues>,
    /// Bootstrap outcome per left row that changed: `None` = the row no longer matches any
    /// bootstrap row (or is gone).
    pub boot: Vec<(RowId, Option<BootValues>)>,
}

/// A running join dataflow on `workers` timely worker threads.
pub struct JoinDataflow {
    inputs: Vec<Sender<Msg>>,
    acks: Receiver<u64>,
    outputs: Receiver<Out>,
    guards: Option<timely::communication::WorkerGuards<()>>,
    epoch: u64,
    next_worker: usize,
    workers: usize,
}

const CHUNK: usize = 16_384;

impl JoinDataflow {
    /// Builds the dataflow for the given join parts and starts its workers.
    pub fn start(parts: Vec<PartSpec>, workers: usize) -> Result<JoinDataflow> {
        Self::start_with(parts, None, workers)
    }

    /// As [`JoinDataflow::start`], with the bootstrap stage when `bootstrap` is given.
    pub fn start_with(
        parts: Vec<PartSpec>,
        bootstrap: Option<BootstrapSpec>,
        workers: usize,
    ) -> Result<JoinDataflow> {
        let workers = workers.max(1);
        let parts = Arc::new(parts);
        let bootstrap = bootstrap.map(Arc::new);
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| unbounded::<Msg>()).unzip();
        let receivers = Arc::new(receivers);
        let (ack_tx, acks) = unbounded::<u64>();
        let (out_tx, outputs) = unbounded::<Out>();
        let guards = timely::execute(timely::Config::process(workers), move |worker| {
            let rx = receivers[worker.index()].clone();
            let ack_tx = ack_tx.clone();
            let out_tx = out_tx.clone();
            let specs = parts.clone();
            let boot_spec = bootstrap.clone();
            let (mut input, mut boot_input, probe) = worker.dataflow::<u64, _, _>(|scope| {
                let (input, items) = scope.new_collection::<(GroupKey, Item), isize>();
                let (boot_input, boot) = scope.new_collection::<BootInput, isize>();
                let probe = timely::dataflow::ProbeHandle::new();
                let items = match boot_spec {
                    Some(spec) => {
                        let (queries, values) = bootstrap::stage(boot, spec);
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
                let sink = operator::windows(items, specs.clone())
                    .inner
                    .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
                        Pipeline,
                        "Output",
                        move |_, _| {
                            move |input, _output| {
                                input.for_each(|_cap, data| {
                                    for (d, _t, _r) in data.drain(..) {
                                        let _ = out_tx.send(Out::Part(d));
                                    }
                                });
                            }
                        },
                    );
                sink.probe_with(&probe);
                (input, boot_input, probe)
            });
            while let Ok(msg) = rx.recv() {
                match msg {
                    Msg::Data(batch) => {
                        for (d, r) in batch {
                            input.update(d, r);
                        }
                    }
                    Msg::Boot(batch) => {
                        for (d, r) in batch {
                            boot_input.update(d, r);
                        }
                    }
                    Msg::Seal(e) => {
                        input.advance_to(e + 1);
                        input.flush();
                        boot_input.advance_to(e + 1);
                        boot_input.flush();
                        worker.step_while(|| probe.less_than(input.time()));
                        let _ = ack_tx.send(e);
                    }
                }
            }
        })
        .map_err(|e| Error::Usage(format!("starting {workers} dataflow workers: {e}")))?;
        Ok(JoinDataflow {
            inputs: senders,
            acks,
            outputs,
            guards: Some(guards),
            epoch: 0,
            next_worker: 0,
            workers,
        })
    }

    /// Sends updates for the current epoch (spread over the workers).
    pub fn update(&mut self, mut updates: Vec<Update>) {
        while !updates.is_empty() {
            let rest = updates.split_off(updates.len().min(CHUNK));
            let chunk = std::mem::replace(&mut updates, rest);
            let _ = self.inputs[self.next_worker].send(Msg::Data(chunk));
            self.next_worker = (self.next_worker + 1) % self.workers;
        }
    }

    /// Sends bootstrap-stage updates for the current epoch (the dataflow must have been
    /// started with a bootstrap stage).
    pub fn update_boot(&mut self, mut updates: Vec<BootUpdate>) {
        while !updates.is_empty() {
            let rest = updates.split_off(updates.len().min(CHUNK));
            let chunk = std::mem::replace(&mut updates, rest);
            let _ = self.inputs[self.next_worker].send(Msg::Boot(chunk));
            self.next_worker = (self.next_worker + 1) % self.workers;
        }
    }

    /// Completes the current epoch and returns the computed values it changed (for
    /// dataflows without a bootstrap stage; see [`JoinDataflow::seal_all`]).
    pub fn seal(&mut self) -> Result<Vec<PartValues>> {
        Ok(self.seal_all()?.parts)
    }

    /// Completes the current epoch and returns every output change it caused.
    /// A worker that failed (its panic message is logged by the panic hook) makes this an
    /// error rather than a partial result.
    pub fn seal_all(&mut self) -> Result<EpochOutput> {
        let e = self.epoch;
        let failed = || {
            Error::Usage(format!(
                "a dataflow worker failed while computing epoch {e} (see the panic message above); no output was written for it"
            ))
        };
        for s in &self.inputs {
            s.send(Msg::Seal(e)).map_err(|_| failed())?;
        }
        let mut acked = 0;
        while acked < self.workers {
            match self
                .acks
                .recv_timeout(std::time::Duration::from_millis(200))
            {
                Ok(_) => acked += 1,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    let dead = self
                        .guards
                        .as_ref()
                        .is_some_and(|g| g.guards().iter().any(|h| h.is_finished()));
                    if dead {
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
        let mut rows: std::collections::BTreeMap<RowId, Option<BootValues>> = Default::default();
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

impl Drop for JoinDataflow {
    fn drop(&mut self) {
        self.inputs.clear();
        if let Some(g) = self.guards.take() {
            if g.guards().iter().any(|h| h.is_finished()) {
                // a worker died: the others may wait for it forever, so do not join them
                std::mem::forget(g);
            } else {
                drop(g.join());
            }
        }
    }
}
