//! One receiver's writer task: takes jobs off that receiver's queues and runs a bounded number of
//! deliveries to it at once (one writer per receiver: docs/notifications.md#delivery-per-receiver).
//!
//! Input: the reliable and best-effort queues, and a stop signal carrying the flush deadline. Output: each
//! job delivered by [`Sender::deliver`], its outcome sent back to the caller when it asked for one.
//!
//! Why a pool: every request has a timeout, but a receiver that hangs still holds one delivery for up to
//! `timeout × (retries + 1)` plus backoff. Running up to `max_in_flight` deliveries at once keeps one slow
//! notification from delaying the others to the same receiver, while the bound keeps a dead receiver from
//! growing the number of open connections (other receivers have pools of their own); when all slots are busy, jobs wait in the bounded queues (and best-effort ones
//! are dropped when those fill up). Reliable jobs are taken first.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, warn};

use super::delivery::{DeliveryOutcome, Prepared, Sender};

/// One queued notification; `reply` is set for reliable deliveries.
pub(crate) struct Job {
    pub(crate) prepared: Prepared,
    pub(crate) reply: Option<oneshot::Sender<DeliveryOutcome>>,
}

pub(crate) struct Writer {
    sender: Arc<Sender>,
    permits: Arc<Semaphore>,
    tasks: JoinSet<()>,
    /// Flush time granted when every handle is dropped without [`Notifier::shutdown`](super::Notifier::shutdown).
    drop_grace: Duration,
}

impl Writer {
    pub(crate) fn new(sender: Arc<Sender>, max_in_flight: usize, drop_grace: Duration) -> Self {
        Writer {
            sender,
            permits: Arc::new(Semaphore::new(max_in_flight)),
            tasks: JoinSet::new(),
            drop_grace,
        }
    }

    /// Accepts jobs until stopped, then flushes what is queued until the deadline.
    pub(crate) async fn serve(
        mut self,
        mut reliable: mpsc::Receiver<Job>,
        mut best_effort: mpsc::Receiver<Job>,
        mut stop: oneshot::Receiver<Instant>,
    ) {
        let deadline = self
            .accept(&mut reliable, &mut best_effort, &mut stop)
            .await;
        reliable.close();
        best_effort.close();
        let flush = self.flush(&mut reliable, &mut best_effort);
        if tokio::time::timeout_at(deadline, flush).await.is_err() {
            let abandoned = self.tasks.len() + reliable.len() + best_effort.len();
            warn!(
                abandoned,
                "webhook flush deadline reached; abandoning undelivered notifications"
            );
        }
        self.tasks.shutdown().await;
    }

    async fn accept(
        &mut self,
        reliable: &mut mpsc::Receiver<Job>,
        best_effort: &mut mpsc::Receiver<Job>,
        stop: &mut oneshot::Receiver<Instant>,
    ) -> Instant {
        let grace = self.drop_grace;
        let deadline =
            |signal: Result<Instant, _>| signal.unwrap_or_else(|_| Instant::now() + grace);
        loop {
            let permit = tokio::select! {
                biased;
                signal = &mut *stop => return deadline(signal),
                permit = self.permits.clone().acquire_owned() => permit,
            };
            // The semaphore is never closed; treat the impossible as a stop.
            let Ok(permit) = permit else {
                return Instant::now() + grace;
            };
            let job = tokio::select! {
                biased;
                signal = &mut *stop => return deadline(signal),
                Some(job) = reliable.recv() => job,
                Some(job) = best_effort.recv() => job,
                else => return Instant::now() + grace,
            };
            self.spawn(job, permit);
        }
    }

    async fn flush(
        &mut self,
        reliable: &mut mpsc::Receiver<Job>,
        best_effort: &mut mpsc::Receiver<Job>,
    ) {
        // Closed receivers still yield what was queued, then `None` without waiting.
        loop {
            let job = match reliable.recv().await {
                Some(job) => job,
                None => match best_effort.recv().await {
                    Some(job) => job,
                    None => break,
                },
            };
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                break;
            };
            self.spawn(job, permit);
        }
        while let Some(done) = self.tasks.join_next().await {
            log_panic(done);
        }
    }

    fn spawn(&mut self, job: Job, permit: OwnedSemaphorePermit) {
        let sender = self.sender.clone();
        self.tasks.spawn(async move {
            let outcome = sender.deliver(&job.prepared).await;
            drop(permit);
            if let Some(reply) = job.reply {
                // The caller may have stopped waiting; the delivery happened either way.
                let _ = reply.send(outcome);
            }
        });
        while let Some(done) = self.tasks.try_join_next() {
            log_panic(done);
        }
    }
}

fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(join_error) = done
        && join_error.is_panic()
    {
        error!(error = %join_error, "webhook delivery task panicked");
    }
}
