//! The runtime's command stream: one timely dataflow, built first in every worker of every
//! process, through which the leader worker (worker 0 of process 0) broadcasts what to build,
//! seal and remove. Every worker executes the commands in the leader's order, so all of them
//! create the same dataflows in the same order — what timely requires, in one process and
//! across a cluster alike. Before any command, each process announces its [`Identity`] at
//! time 0, so a cluster whose processes disagree stops before building anything.

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::{Broadcast, Input};

use super::shard::ReadTask;
use super::spec::{BootstrapSpec, PartSpec};
use super::topology::Identity;

/// A dataflow's id within its runtime: ids increase in install order.
pub type DataflowId = u64;

/// One command, as every worker receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ctl {
    /// A process's identity (time 0 only, one per process).
    Hello { process: usize, identity: Identity },
    /// Build a dataflow computing `parts`, after the bootstrap stage when there is one.
    Install {
        id: DataflowId,
        parts: Vec<PartSpec>,
        bootstrap: Option<BootstrapSpec>,
    },
    /// Read into a dataflow's current epoch: each worker does the tasks addressed to it.
    Read {
        id: DataflowId,
        tasks: Vec<ReadTask>,
    },
    /// Write the stored aggregates of `parts` at their boundaries `(part, at)`
    /// (`super::store`): each worker its own files in folder `dir`, reported like a read.
    Store {
        id: DataflowId,
        dir: String,
        parts: Vec<(u16, i64)>,
    },
    /// Close epoch `epoch` of a dataflow's inputs.
    Seal { id: DataflowId, epoch: u64 },
    /// Close a dataflow's inputs and drop it once drained.
    Remove { id: DataflowId },
    /// Stop: the leader's runtime handle is gone.
    Shutdown,
}

/// The leader's end of the command stream (other workers close theirs after saying hello).
pub type CtlInput = timely::dataflow::operators::vec::input::Handle<u64, Ctl>;

/// Commands released to a worker, in the leader's order.
pub type Released = Rc<RefCell<Vec<Ctl>>>;

/// Builds the command stream in a worker: commands pushed into the returned handle reach every
/// worker's [`Released`] queue once no earlier command can still arrive.
pub fn build(worker: &mut timely::worker::Worker) -> (CtlInput, Released) {
    let released: Released = Rc::new(RefCell::new(Vec::new()));
    let out = released.clone();
    let input = worker.dataflow::<u64, _, _>(move |scope| {
        let (input, stream) = scope.new_input::<Ctl>();
        // held until the frontier passes their time: the leader is the only sender after
        // time 0, and a time's commands are released together, in arrival order per time
        let mut held: Vec<(u64, Vec<Ctl>)> = Vec::new();
        stream
            .broadcast()
            .sink(Pipeline, "Commands", move |(input, frontier)| {
                input.for_each(|cap, data| {
                    let Some(&t) = cap.least() else { return };
                    match held.iter_mut().find(|(h, _)| *h == t) {
                        Some((_, v)) => v.append(data),
                        None => held.push((t, std::mem::take(data))),
                    }
                });
                held.sort_by_key(|(t, _)| *t);
                let ready = held
                    .iter()
                    .take_while(|(t, _)| !frontier.less_equal(t))
                    .count();
                if ready > 0 {
                    let mut q = out.borrow_mut();
                    for (_, cmds) in held.drain(..ready) {
                        q.extend(cmds);
                    }
                }
            });
        input
    });
    (input, released)
}
