//! The differential dataflow that computes joins; the only module that touches timely and
//! differential-dataflow (pinned exactly in Cargo.toml; their APIs change often).
//!
//! Inputs are one collection of `((part, key), Item)` updates: GroupBy source events and left
//! rows asking for values. Time is a `u64` ingestion epoch, not event time: `ds` and `ts` are
//! data. A backfill feeds everything at epoch 0 and seals; the continuous materializer feeds
//! each new or re-landed partition as a later epoch of the same dataflow, and gets back only
//! the outputs that changed.

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
use records::{GroupKey, Item, PartValues};
use spec::PartSpec;

/// One input update: a record and its multiplicity change (+1 insert, −1 retract).
pub type Update = ((GroupKey, Item), isize);

enum Msg {
    Data(Vec<Update>),
    Seal(u64),
}

/// A running join dataflow on `workers` timely worker threads.
pub struct JoinDataflow {
    inputs: Vec<Sender<Msg>>,
    acks: Receiver<u64>,
    outputs: Receiver<PartValues>,
    guards: Option<timely::communication::WorkerGuards<()>>,
    epoch: u64,
    next_worker: usize,
    workers: usize,
}

const CHUNK: usize = 16_384;

impl JoinDataflow {
    /// Builds the dataflow for the given join parts and starts its workers.
    pub fn start(parts: Vec<PartSpec>, workers: usize) -> Result<JoinDataflow> {
        let workers = workers.max(1);
        let parts = Arc::new(parts);
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| unbounded::<Msg>()).unzip();
        let receivers = Arc::new(receivers);
        let (ack_tx, acks) = unbounded::<u64>();
        let (out_tx, outputs) = unbounded::<PartValues>();
        let guards = timely::execute(timely::Config::process(workers), move |worker| {
            let rx = receivers[worker.index()].clone();
            let ack_tx = ack_tx.clone();
            let out_tx = out_tx.clone();
            let specs = parts.clone();
            let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
                let (input, items) = scope.new_collection::<(GroupKey, Item), isize>();
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
                                        let _ = out_tx.send(d);
                                    }
                                });
                            }
                        },
                    );
                let (probe, _) = sink.probe();
                (input, probe)
            });
            while let Ok(msg) = rx.recv() {
                match msg {
                    Msg::Data(batch) => {
                        for (d, r) in batch {
                            input.update(d, r);
                        }
                    }
                    Msg::Seal(e) => {
                        input.advance_to(e + 1);
                        input.flush();
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

    /// Completes the current epoch and returns the output changes it caused.
    /// A worker that failed (its panic message is logged by the panic hook) makes this an
    /// error rather than a partial result.
    pub fn seal(&mut self) -> Result<Vec<PartValues>> {
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
        Ok(self.outputs.try_iter().collect())
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
