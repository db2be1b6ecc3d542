//! [`Logger`]: what a server logs through. `log` puts a record on a bounded queue and returns at
//! once; a background thread batches records to a [`LogSink`], flushing every
//! `batch_size` records or `flush_interval`. Logging never blocks or fails a request
//! (chronon-semantics §5.1): a full queue drops the record (counted in
//! [`LoggerStats::dropped`]), and sink errors and panics are counted and reported with
//! `tracing`. [`Logger::shutdown`] writes everything still queued (graceful server shutdown).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender, TryRecvError};

use super::{LogSink, LoggableResponse};

/// Queue and batching settings.
#[derive(Debug, Clone)]
pub struct LoggerConfig {
    /// Records the queue holds; `log` drops records beyond it.
    pub capacity: usize,
    /// Records per batch: a full batch is sent and flushed at once.
    pub batch_size: usize,
    /// The longest a record waits before its batch is flushed.
    pub flush_interval: Duration,
}

impl Default for LoggerConfig {
    fn default() -> Self {
        LoggerConfig {
            capacity: 100_000,
            batch_size: 10_000,
            flush_interval: Duration::from_secs(1),
        }
    }
}

/// Counters of a [`Logger`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoggerStats {
    /// Records accepted by `log`.
    pub queued: u64,
    /// Records the sink accepted and flushed.
    pub written: u64,
    /// Records dropped because the queue was full (or the logger was shut down).
    pub dropped: u64,
    /// Records lost to sink errors.
    pub failed: u64,
    /// Sink calls (`send` or `flush`) that failed or panicked.
    pub sink_errors: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    sink_errors: AtomicU64,
}

enum Control {
    /// Write everything queued so far, then answer.
    Flush(Sender<()>),
    /// Write everything queued, then stop.
    Shutdown,
}

/// The asynchronous front of a [`LogSink`].
pub struct Logger {
    records: Sender<LoggableResponse>,
    control: Sender<Control>,
    counters: Arc<Counters>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Logger {
    /// Starts the background thread draining into `sink`.
    pub fn new(sink: Box<dyn LogSink>, config: LoggerConfig) -> Logger {
        let (records, rx) = bounded(config.capacity.max(1));
        let (control, control_rx) = unbounded();
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            sink,
            records: rx,
            control: control_rx,
            counters: counters.clone(),
            batch_size: config.batch_size.max(1),
            flush_interval: config.flush_interval,
            batch: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name("weft-logger".into())
            .spawn(move || worker.run())
            .expect("spawning the logger thread");
        Logger {
            records,
            control,
            counters,
            worker: Mutex::new(Some(handle)),
        }
    }

    /// Queues a record; never blocks. A full queue (or a stopped logger) drops it.
    pub fn log(&self, record: LoggableResponse) {
        match self.records.try_send(record) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "log queue full: dropping log records");
                }
            }
        }
    }

    /// Records dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// All counters.
    pub fn stats(&self) -> LoggerStats {
        let c = &self.counters;
        LoggerStats {
            queued: c.queued.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            sink_errors: c.sink_errors.load(Ordering::Relaxed),
        }
    }

    /// Writes everything logged before this call to the sink and flushes it; returns when
    /// done (at once if the logger was shut down).
    pub fn flush(&self) {
        let (done, wait) = bounded(1);
        if self.control.send(Control::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Writes everything queued, flushes the sink and stops the background thread. Records
    /// logged afterwards are dropped. Calling it again does nothing.
    pub fn shutdown(&self) -> LoggerStats {
        let handle = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = self.control.send(Control::Shutdown);
            if h.join().is_err() {
                tracing::error!("the logger thread panicked; queued log records are lost");
            }
        }
        self.stats()
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker {
    sink: Box<dyn LogSink>,
    records: Receiver<LoggableResponse>,
    control: Receiver<Control>,
    counters: Arc<Counters>,
    batch_size: usize,
    flush_interval: Duration,
    batch: Vec<LoggableResponse>,
}

impl Worker {
    fn run(mut self) {
        let (records, control) = (self.records.clone(), self.control.clone());
        let mut deadline = Instant::now() + self.flush_interval;
        loop {
            let timeout = crossbeam_channel::at(deadline);
            select! {
                recv(records) -> r => match r {
                    Ok(r) => {
                        self.batch.push(r);
                        if self.batch.len() >= self.batch_size {
                            self.write();
                            deadline = Instant::now() + self.flush_interval;
                        }
                    }
                    Err(_) => { self.write(); return; }
                },
                recv(control) -> c => match c {
                    Ok(Control::Flush(done)) => {
                        self.drain();
                        self.write();
                        deadline = Instant::now() + self.flush_interval;
                        let _ = done.send(());
                    }
                    Ok(Control::Shutdown) | Err(_) => {
                        self.drain();
                        self.write();
                        return;
                    }
                },
                recv(timeout) -> _ => {
                    self.write();
                    deadline = Instant::now() + self.flush_interval;
                }
            }
        }
    }

    /// Moves every queued record into batches (writing full ones).
    fn drain(&mut self) {
        loop {
            match self.records.try_recv() {
                Ok(r) => {
                    self.batch.push(r);
                    if self.batch.len() >= self.batch_size {
                        self.write();
                    }
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    /// Sends the batch and flushes the sink; failures are counted, never propagated.
    fn write(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let n = batch.len() as u64;
        let sink = &self.sink;
        let result = catch_unwind(AssertUnwindSafe(|| {
            sink.send(batch)?;
            sink.flush()
        }));
        let error = match result {
            Ok(Ok(())) => {
                self.counters.written.fetch_add(n, Ordering::Relaxed);
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the log sink panicked".to_string(),
        };
        self.counters.failed.fetch_add(n, Ordering::Relaxed);
        let errors = self.counters.sink_errors.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(records = n, sink_errors = errors, %error, "writing log records failed");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::error::{Error, Result};

    /// Records what it receives; can be made to fail or to block.
    #[derive(Clone, Default)]
    struct Memory {
        sent: Arc<Mutex<Vec<Vec<LoggableResponse>>>>,
        flushes: Arc<AtomicU64>,
        fail: Arc<AtomicBool>,
        gate: Arc<Mutex<()>>,
    }

    impl LogSink for Memory {
        fn send(&self, records: Vec<LoggableResponse>) -> Result<()> {
            let _g = self.gate.lock().unwrap();
            if self.fail.load(Ordering::SeqCst) {
                return Err(Error::external("test sink", "sink down"));
            }
            self.sent.lock().unwrap().push(records);
            Ok(())
        }
        fn flush(&self) -> Result<()> {
            self.flushes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn rec(i: i64) -> LoggableResponse {
        LoggableResponse {
            key_bytes: vec![],
            value_bytes: vec![],
            name: "t/j".into(),
            ts_millis: i,
            schema_hash: Some("h".into()),
        }
    }

    fn sent_ts(m: &Memory) -> Vec<i64> {
        m.sent
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|r| r.ts_millis)
            .collect()
    }

    #[test]
    fn batches_by_size_and_shutdown_writes_the_rest() {
        let m = Memory::default();
        let cfg = LoggerConfig {
            capacity: 1000,
            batch_size: 4,
            flush_interval: Duration::from_secs(3600),
        };
        let logger = Logger::new(Box::new(m.clone()), cfg);
        for i in 0..10 {
            logger.log(rec(i));
        }
        let stats = logger.shutdown();
        assert_eq!(sent_ts(&m), (0..10).collect::<Vec<_>>());
        let sizes: Vec<usize> = m.sent.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![4, 4, 2]);
        assert_eq!(
            stats,
            LoggerStats {
                queued: 10,
                written: 10,
                ..Default::default()
            }
        );
        logger.log(rec(99));
        assert_eq!(logger.dropped(), 1, "after shutdown records are dropped");
        assert_eq!(
            logger.shutdown().written,
            10,
            "a second shutdown is a no-op"
        );
    }

    #[test]
    fn flushes_on_the_interval() {
        let m = Memory::default();
        let cfg = LoggerConfig {
            capacity: 100,
            batch_size: 1000,
            flush_interval: Duration::from_millis(20),
        };
        let logger = Logger::new(Box::new(m.clone()), cfg);
        logger.log(rec(1));
        let start = Instant::now();
        while sent_ts(&m).is_empty() {
            assert!(start.elapsed() < Duration::from_secs(10), "no timed flush");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(sent_ts(&m), vec![1]);
        assert!(m.flushes.load(Ordering::SeqCst) >= 1);
        logger.log(rec(2));
        logger.flush();
        assert_eq!(
            sent_ts(&m),
            vec![1, 2],
            "flush writes what was logged before it"
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let m = Memory::default();
        let gate = m.gate.lock().unwrap(); // the sink blocks: the queue fills up
        let cfg = LoggerConfig {
            capacity: 5,
            batch_size: 1,
            flush_interval: Duration::from_secs(3600),
        };
        let logger = Logger::new(Box::new(m.clone()), cfg);
        let start = Instant::now();
        for i in 0..100 {
            logger.log(rec(i));
        }
        assert!(start.elapsed() < Duration::from_secs(5), "log never blocks");
        let dropped = logger.dropped();
        // at most the queue plus the one record the worker holds get through
        assert!((100 - 6..=100 - 5).contains(&dropped), "dropped {dropped}");
        drop(gate);
        let stats = logger.shutdown();
        assert_eq!(stats.queued + stats.dropped, 100);
        assert_eq!(stats.written, stats.queued);
        assert_eq!(sent_ts(&m).len() as u64, stats.queued);
    }

    #[test]
    fn sink_errors_are_counted_not_raised() {
        let m = Memory::default();
        m.fail.store(true, Ordering::SeqCst);
        let cfg = LoggerConfig {
            capacity: 100,
            batch_size: 2,
            flush_interval: Duration::from_secs(3600),
        };
        let logger = Logger::new(Box::new(m.clone()), cfg);
        for i in 0..4 {
            logger.log(rec(i));
        }
        logger.flush();
        m.fail.store(false, Ordering::SeqCst);
        logger.log(rec(10));
        let stats = logger.shutdown();
        assert_eq!(stats.failed, 4);
        assert_eq!(stats.sink_errors, 2);
        assert_eq!(stats.written, 1);
        assert_eq!(sent_ts(&m), vec![10]);
    }
}
