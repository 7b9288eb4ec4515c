//! The spend-ledger writer: the data plane hands every settled request to [`Ledger::submit`],
//! and one background task writes them to the database in batches.
//!
//! Spend is never silently dropped. A batch is written in one transaction (see
//! [`crate::SpendStore::record`]), idempotent by request id, so a failed or uncertain write is
//! simply retried with backoff. While the database is unavailable events stay in memory; past
//! `buffer_events` they are appended to a spool file (JSON lines), which is replayed once the
//! database answers again, and at the next start. On shutdown the writer drains the channel,
//! keeps trying until its drain timeout, and spools whatever is still unwritten.
//!
//! One bad event must not hold up the others. When a write fails because of the rows rather
//! than the database ([`StoreError::is_data_error`]), the batch is split in halves until the
//! event at fault is found; it goes to the dead-letter file (`<spool>.dead`, JSON lines with
//! the error) with an error log and the `dead_lettered` count, and every other event is
//! written. The spool replay isolates bad events the same way.

use crate::{RecordOptions, SpendEvent, Store, StoreError};
use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

/// How the writer batches, buffers and spools.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    pub batch_size: usize,
    pub flush_interval: Duration,
    /// Events kept in memory while writes fail; the rest go to the spool file.
    pub buffer_events: usize,
    pub spool_path: PathBuf,
    pub record: RecordOptions,
    /// How long shutdown keeps retrying before spooling what is left.
    pub drain_timeout: Duration,
    /// One write attempt longer than this counts as failed (and is retried).
    pub write_timeout: Duration,
}

impl LedgerOptions {
    pub fn new(spool_path: PathBuf) -> LedgerOptions {
        LedgerOptions {
            batch_size: 500,
            flush_interval: Duration::from_millis(500),
            buffer_events: 100_000,
            spool_path,
            record: RecordOptions::default(),
            drain_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Counters of the writer's work, for health output and tests.
#[derive(Debug, Default)]
struct Counters {
    submitted: AtomicU64,
    written: AtomicU64,
    duplicates: AtomicU64,
    failed_writes: AtomicU64,
    spooled: AtomicU64,
    replayed: AtomicU64,
    dead_lettered: AtomicU64,
    pending: AtomicU64,
}

/// A snapshot of the writer's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LedgerStats {
    /// Events handed to the ledger.
    pub submitted: u64,
    /// Events the database counted.
    pub written: u64,
    /// Events skipped because their request id was already recorded.
    pub duplicates: u64,
    /// Write attempts that failed (each is retried).
    pub failed_writes: u64,
    /// Events written to the spool file.
    pub spooled: u64,
    /// Events read back from the spool file and written.
    pub replayed: u64,
    /// Events the database refused for their content, moved to the dead-letter file.
    pub dead_lettered: u64,
    /// Events submitted and not yet written (in memory or spooled).
    pub pending: u64,
}

/// The handle the data plane submits to. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::Sender<SpendEvent>,
    counters: Arc<Counters>,
    spool: Arc<Spool>,
    ready: Arc<Ready>,
}

/// Wakes the writer once a batch is waiting in the channel, rather than for every event:
/// at thousands of requests a second, a wake-up per event (a task poll and a timer
/// re-armed each time) cost more than writing the event.
#[derive(Debug)]
struct Ready {
    /// Events in the channel that the writer has not taken yet. It can dip below zero for a
    /// moment: the writer may take an event before its sender counts it.
    queued: AtomicI64,
    batch_size: i64,
    notify: Notify,
}

impl Ready {
    fn sent(&self) {
        if self.queued.fetch_add(1, Ordering::AcqRel) + 1 == self.batch_size {
            self.notify.notify_one();
        }
    }

    fn taken(&self, n: usize) {
        self.queued
            .fetch_sub(i64::try_from(n).unwrap_or(i64::MAX), Ordering::AcqRel);
    }
}

/// Stops the writer: see [`LedgerWriter::shutdown`].
pub struct LedgerWriter {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Ledger {
    /// Starts the writer. Events spooled by an earlier run are written first (before this
    /// returns, when the database answers), so spend counters seeded from the database
    /// include them.
    pub async fn start(store: Store, options: LedgerOptions) -> (Ledger, LedgerWriter) {
        let counters = Arc::new(Counters::default());
        let spool = Arc::new(Spool {
            path: options.spool_path.clone(),
            lock: Mutex::new(()),
        });
        let (tx, rx) = mpsc::channel(options.buffer_events.max(1024));
        let (stop_tx, stop_rx) = oneshot::channel();
        let ready = Arc::new(Ready {
            queued: AtomicI64::new(0),
            batch_size: i64::try_from(options.batch_size.max(1)).unwrap_or(i64::MAX),
            notify: Notify::new(),
        });
        let mut writer = Writer {
            store,
            options,
            counters: counters.clone(),
            spool: spool.clone(),
            ready: ready.clone(),
            buffer: VecDeque::new(),
            backoff: None,
            spool_pending: false,
        };
        writer.spool_pending = spool.has_events();
        if writer.spool_pending {
            writer.replay_spool().await;
        }
        let task = tokio::spawn(writer.run(rx, stop_rx));
        (
            Ledger {
                tx,
                counters,
                spool,
                ready,
            },
            LedgerWriter {
                stop: Some(stop_tx),
                task,
            },
        )
    }

    /// Hands one event to the writer without waiting. If the channel is full the event is
    /// sent from a spawned task; after shutdown it is appended to the spool file.
    pub fn submit(&self, event: SpendEvent) {
        self.counters.submitted.fetch_add(1, Ordering::Relaxed);
        self.counters.pending.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(event) {
            Ok(()) => self.ready.sent(),
            Err(mpsc::error::TrySendError::Full(event)) => {
                let ledger = self.clone();
                tokio::spawn(async move {
                    match ledger.tx.send(event).await {
                        Ok(()) => ledger.ready.sent(),
                        Err(mpsc::error::SendError(event)) => ledger.spool_late(event),
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(event)) => self.spool_late(event),
        }
    }

    fn spool_late(&self, event: SpendEvent) {
        match self.spool.append(std::slice::from_ref(&event)) {
            Ok(()) => {
                self.counters.spooled.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::error!(
                error = %e,
                request_id = %event.request_id,
                spend_nano = event.spend_nano,
                "spend event arrived after the ledger stopped and could not be spooled"
            ),
        }
    }

    pub fn stats(&self) -> LedgerStats {
        let c = &self.counters;
        LedgerStats {
            submitted: c.submitted.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            failed_writes: c.failed_writes.load(Ordering::Relaxed),
            spooled: c.spooled.load(Ordering::Relaxed),
            replayed: c.replayed.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            pending: c.pending.load(Ordering::Relaxed),
        }
    }
}

impl LedgerWriter {
    /// Stops taking new events, writes everything received (retrying until the drain
    /// timeout), spools the rest, and waits for the writer to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(e) = (&mut self.task).await {
            tracing::error!(error = %e, "spend ledger writer failed");
        }
    }
}

/// The spool file: JSON lines of unwritten events. `<path>.replaying` holds a spool being
/// written back; it is removed only when every line is in the database.
struct Spool {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Spool {
    fn replaying_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".replaying");
        PathBuf::from(name)
    }

    /// Where events the database refused are kept for an operator.
    fn dead_letter_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".dead");
        PathBuf::from(name)
    }

    /// Appends one refused event with the reason, as a JSON line.
    fn dead_letter(&self, event: &SpendEvent, error: &StoreError) -> std::io::Result<PathBuf> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let path = self.dead_letter_path();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut line = serde_json::to_vec(&serde_json::json!({
            "error": error.to_string(),
            "event": event,
        }))?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        file.write_all(&line)?;
        file.sync_data()?;
        Ok(path)
    }

    fn has_events(&self) -> bool {
        [self.path.clone(), self.replaying_path()]
            .iter()
            .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
    }

    fn append(&self, events: &[SpendEvent]) -> std::io::Result<()> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut text = Vec::with_capacity(events.len() * 512);
        for e in events {
            serde_json::to_writer(&mut text, e)?;
            text.push(b'\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(&text)?;
        file.sync_data()
    }

    /// Moves the spool aside for replay (unless a replay is already pending) and returns the
    /// file to replay.
    fn take(&self) -> std::io::Result<Option<PathBuf>> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let replaying = self.replaying_path();
        if replaying.exists() {
            return Ok(Some(replaying));
        }
        if !self.path.exists() {
            return Ok(None);
        }
        std::fs::rename(&self.path, &replaying)?;
        Ok(Some(replaying))
    }
}

fn read_spool(path: &Path, batch: usize, mut each: impl FnMut(Vec<SpendEvent>) -> bool) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return true;
    };
    let mut chunk = Vec::with_capacity(batch);
    for line in std::io::BufReader::new(file).lines() {
        let Ok(line) = line else { return false };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<SpendEvent>(&line) {
            Ok(e) => chunk.push(e),
            // A torn last line (a crash mid-append) is the only way to get here.
            Err(e) => tracing::error!(error = %e, "skipping an unreadable spool line"),
        }
        if chunk.len() >= batch && !each(std::mem::take(&mut chunk)) {
            return false;
        }
    }
    chunk.is_empty() || each(chunk)
}

struct Writer {
    store: Store,
    options: LedgerOptions,
    counters: Arc<Counters>,
    spool: Arc<Spool>,
    ready: Arc<Ready>,
    buffer: VecDeque<SpendEvent>,
    /// Set while writes fail: when to try again and the current delay.
    backoff: Option<(Instant, Duration)>,
    spool_pending: bool,
}

/// Why a write failed.
enum Failure {
    /// The database did not answer or failed: retry later, unchanged.
    Database,
    /// The database refused the rows: retrying the same batch cannot succeed.
    Rows(StoreError),
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Writer {
    /// Wakes when a batch is waiting, at the flush interval, or when a retry is due; writes
    /// full batches at once and anything at all once the interval (or the retry delay) is up.
    async fn run(mut self, mut rx: mpsc::Receiver<SpendEvent>, mut stop: oneshot::Receiver<()>) {
        let mut deadline = Instant::now() + self.options.flush_interval;
        loop {
            let wake = match self.backoff {
                Some((at, _)) => at,
                None => deadline,
            };
            tokio::select! {
                _ = &mut stop => break,
                () = self.ready.notify.notified() => {}
                () = tokio::time::sleep_until(wake) => {}
            }
            let open = self.receive(&mut rx);
            self.overflow_to_spool();
            let full = self.buffer.len() >= self.options.batch_size && self.backoff.is_none();
            if full || Instant::now() >= wake {
                if !self.buffer.is_empty() || self.spool_pending {
                    self.flush().await;
                } else {
                    self.backoff = None;
                }
                deadline = Instant::now() + self.options.flush_interval;
            }
            if !open {
                break;
            }
        }
        self.drain(rx).await;
    }

    /// Moves every event waiting in the channel to the buffer; false once the channel is
    /// closed (every [`Ledger`] handle dropped).
    fn receive(&mut self, rx: &mut mpsc::Receiver<SpendEvent>) -> bool {
        let mut taken = 0;
        let open = loop {
            match rx.try_recv() {
                Ok(event) => {
                    self.buffer.push_back(event);
                    taken += 1;
                }
                Err(mpsc::error::TryRecvError::Empty) => break true,
                Err(mpsc::error::TryRecvError::Disconnected) => break false,
            }
        };
        self.ready.taken(taken);
        open
    }

    /// Writes the buffer in batches until it is empty or the database fails.
    async fn flush(&mut self) {
        while !self.buffer.is_empty() {
            let n = self.buffer.len().min(self.options.batch_size);
            let batch: Arc<[SpendEvent]> = self.buffer.drain(..n).collect();
            if let Err(unwritten) = self.write_isolating(batch).await {
                // Kept, in order, for the next attempt.
                for event in unwritten.into_iter().rev() {
                    self.buffer.push_front(event);
                }
                return;
            }
        }
        if self.spool_pending {
            self.replay_spool().await;
        }
    }

    /// Writes a batch; if its rows are at fault, splits it until every event is either
    /// written or dead-lettered. `Err` holds the events left unwritten, in order, when the
    /// database itself failed (the caller retries them).
    async fn write_isolating(&mut self, batch: Arc<[SpendEvent]>) -> Result<(), Vec<SpendEvent>> {
        let mut work: VecDeque<Arc<[SpendEvent]>> = VecDeque::from([batch]);
        while let Some(part) = work.pop_front() {
            match self.write(part.clone()).await {
                Ok(()) => {}
                Err(Failure::Rows(error)) if part.len() == 1 => self.dead_letter(&part[0], &error),
                Err(Failure::Rows(_)) => {
                    let (left, right) = part.split_at(part.len() / 2);
                    work.push_front(right.into());
                    work.push_front(left.into());
                }
                Err(Failure::Database) => {
                    let mut unwritten = part.to_vec();
                    unwritten.extend(work.iter().flat_map(|p| p.iter().cloned()));
                    return Err(unwritten);
                }
            }
        }
        Ok(())
    }

    /// Moves an event the database refused out of the way, loudly.
    fn dead_letter(&mut self, event: &SpendEvent, error: &StoreError) {
        let c = &self.counters;
        c.dead_lettered.fetch_add(1, Ordering::Relaxed);
        c.pending
            .fetch_sub(1.min(c.pending.load(Ordering::Relaxed)), Ordering::Relaxed);
        match self.spool.dead_letter(event, error) {
            Ok(path) => tracing::error!(
                error = %error,
                request_id = %event.request_id,
                spend_nano = event.spend_nano,
                path = %path.display(),
                "spend ledger: the database refused this event; moved to the dead-letter file"
            ),
            Err(e) => tracing::error!(
                error = %error,
                dead_letter_error = %e,
                event = %serde_json::to_string(event).unwrap_or_default(),
                "spend ledger: the database refused this event and it could not be dead-lettered"
            ),
        }
    }

    /// One batch, one transaction. On failure the caller keeps the events and retries, or
    /// (for [`Failure::Rows`]) isolates the event at fault.
    async fn write(&mut self, batch: Arc<[SpendEvent]>) -> Result<(), Failure> {
        let len = batch.len() as u64;
        let attempt = tokio::time::timeout(
            self.options.write_timeout,
            self.store.spend().record_shared(batch, self.options.record),
        )
        .await;
        let error = match attempt {
            Ok(Ok(report)) => {
                let c = &self.counters;
                c.written
                    .fetch_add(report.applied as u64, Ordering::Relaxed);
                c.duplicates
                    .fetch_add(report.duplicates as u64, Ordering::Relaxed);
                c.pending.fetch_sub(
                    len.min(c.pending.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
                if self.backoff.take().is_some() {
                    tracing::info!("spend ledger: database writes succeed again");
                }
                return Ok(());
            }
            Ok(Err(e)) if e.is_data_error() => {
                tracing::warn!(error = %e, events = len, "spend ledger: the database refused a batch for its content; isolating the event at fault");
                return Err(Failure::Rows(e));
            }
            Ok(Err(e)) => e,
            Err(_) => StoreError::Misconfigured(format!(
                "write took longer than {:?}",
                self.options.write_timeout
            )),
        };
        self.counters.failed_writes.fetch_add(1, Ordering::Relaxed);
        let delay = self
            .backoff
            .map_or(FIRST_BACKOFF, |(_, d)| (d * 2).min(MAX_BACKOFF));
        if self.backoff.is_none() {
            tracing::warn!(error = %error, events = self.buffer.len(), "spend ledger: database write failed; keeping events and retrying");
        } else {
            tracing::debug!(error = %error, "spend ledger: write retry failed");
        }
        self.backoff = Some((Instant::now() + delay, delay));
        Err(Failure::Database)
    }

    /// Moves events beyond the memory bound to the spool file.
    fn overflow_to_spool(&mut self) {
        if self.buffer.len() <= self.options.buffer_events {
            return;
        }
        let excess: Vec<SpendEvent> = self.buffer.drain(self.options.buffer_events..).collect();
        match self.spool.append(&excess) {
            Ok(()) => {
                self.counters
                    .spooled
                    .fetch_add(excess.len() as u64, Ordering::Relaxed);
                self.spool_pending = true;
            }
            Err(e) => {
                tracing::error!(error = %e, events = excess.len(), "spend ledger: cannot spool; keeping events in memory");
                self.buffer.extend(excess);
            }
        }
    }

    /// Writes spooled events back, batch by batch. The replay file is removed only once all
    /// of it is written; a failure leaves it for the next attempt (already written lines
    /// are duplicates then, and count once).
    async fn replay_spool(&mut self) {
        loop {
            let path = match self.spool.take() {
                Ok(Some(path)) => path,
                Ok(None) => {
                    self.spool_pending = false;
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "spend ledger: cannot open the spool");
                    return;
                }
            };
            let mut batches = Vec::new();
            let complete = read_spool(&path, self.options.batch_size, |b| {
                batches.push(b);
                true
            });
            let mut ok = complete;
            let events = batches.iter().map(Vec::len).sum::<usize>();
            for batch in batches {
                let len = batch.len() as u64;
                // An interrupted replay keeps its file; what was written counts once then.
                if self.write_isolating(batch.into()).await.is_err() {
                    ok = false;
                    break;
                }
                self.counters.replayed.fetch_add(len, Ordering::Relaxed);
            }
            if !ok {
                return;
            }
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::error!(error = %e, "spend ledger: cannot remove the replayed spool");
                return;
            }
            tracing::info!(events, "spend ledger: spooled events written");
        }
    }

    async fn drain(mut self, mut rx: mpsc::Receiver<SpendEvent>) {
        rx.close();
        while let Some(event) = rx.recv().await {
            self.buffer.push_back(event);
        }
        let give_up = Instant::now() + self.options.drain_timeout;
        self.backoff = None;
        while !self.buffer.is_empty() && Instant::now() < give_up {
            self.flush().await;
            if let Some((at, _)) = self.backoff {
                tokio::time::sleep_until(at.min(give_up)).await;
            }
        }
        if self.buffer.is_empty() {
            return;
        }
        let left: Vec<SpendEvent> = self.buffer.drain(..).collect();
        match self.spool.append(&left) {
            Ok(()) => {
                self.counters
                    .spooled
                    .fetch_add(left.len() as u64, Ordering::Relaxed);
                tracing::warn!(
                    events = left.len(),
                    path = %self.spool.path.display(),
                    "spend ledger: database unavailable at shutdown; events spooled for the next start"
                );
            }
            Err(e) => tracing::error!(
                error = %e,
                events = left.len(),
                spend_nano = left.iter().map(|e| e.spend_nano).sum::<i64>(),
                "spend ledger: events could not be written or spooled at shutdown"
            ),
        }
    }
}
