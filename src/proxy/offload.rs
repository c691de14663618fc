//! Primary guest calls, off the async executor: a fixed pool of blocking
//! threads behind a bounded queue. A guest that spins holds one of these
//! threads until its deadline, never a tokio worker; a full queue is an
//! answer (`Busy`), never a wait.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// The pool could not take the call, or lost it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the primary guest pool is busy")]
pub struct Busy;

/// The pool of primary-call threads.
pub struct Offload {
    tx: SyncSender<Job>,
    _workers: Vec<JoinHandle<()>>,
}

impl Offload {
    /// `workers` threads behind a queue of `queue` calls.
    pub fn start(workers: usize, queue: usize) -> std::io::Result<Offload> {
        let (tx, rx) = sync_channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..workers.max(1))
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new().name(format!("shadowgate-primary-{i}")).spawn(move || work(&rx))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Offload { tx, _workers: workers })
    }

    /// Runs `f` on a pool thread and waits for it without blocking the executor.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .try_send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| Busy)?;
        rx.await.map_err(|_| Busy)
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        // A panic loses this call (its caller sees `Busy` and falls back), not the thread.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!("a primary guest call panicked on its pool thread");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test(flavor = "current_thread")]
    async fn calls_run_off_the_executor_and_a_full_queue_answers_busy() {
        let pool = Arc::new(Offload::start(1, 1).unwrap());
        let slow = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| std::thread::sleep(Duration::from_millis(300))).await })
        };
        tokio::task::yield_now().await;
        // The single executor thread is free while the pool thread sleeps.
        let start = Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(start.elapsed() < Duration::from_millis(200));
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 7).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(pool.run(|| 8).await, Err(Busy), "one running, one queued: the next is refused");
        assert_eq!(slow.await.unwrap(), Ok(()));
        assert_eq!(queued.await.unwrap(), Ok(7));
        assert_eq!(pool.run(|| panic!("bug")).await, Err::<(), _>(Busy));
        assert_eq!(pool.run(|| 9).await, Ok(9), "the thread survived the panic");
    }
}
