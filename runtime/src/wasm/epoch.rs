//! The epoch ticker: advances the engine's epoch every [`TICK`] while at
//! least one guest call is in flight, and sleeps (parked, no wake-ups) while
//! none is, so an idle host costs nothing and a busy one wakes 200 times a
//! second for it, not 1,000.
//!
//! Deadlines are whole ticks, armed relative to the epoch at the start of a
//! call; the ticker runs for the whole call, so a deadline of N ticks stops a
//! call after (N − 1) × [`TICK`] to N × [`TICK`] of its running time.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;
use wasmtime::Engine;

/// The epoch tick; deadlines are whole ticks (rounded up).
pub const TICK: Duration = Duration::from_millis(5);

struct Shared {
    /// Guest calls in flight.
    active: AtomicUsize,
    stop: AtomicBool,
    /// Ticks made so far.
    ticks: AtomicU64,
}

/// The ticker thread of one engine; stopped when dropped.
pub struct Ticker {
    shared: Arc<Shared>,
    thread: Thread,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Ticker {
    /// Starts the ticker thread for `engine`.
    pub fn start(engine: Engine) -> std::io::Result<Ticker> {
        let shared =
            Arc::new(Shared { active: AtomicUsize::new(0), stop: AtomicBool::new(false), ticks: AtomicU64::new(0) });
        let s = shared.clone();
        let handle = std::thread::Builder::new().name("shadowgate-epoch".into()).spawn(move || {
            while !s.stop.load(Ordering::Acquire) {
                if s.active.load(Ordering::Acquire) == 0 {
                    // `Busy::new` unparks after raising `active`; a token left
                    // by an unpark that came before this park ends it at once.
                    std::thread::park();
                    continue;
                }
                std::thread::sleep(TICK);
                engine.increment_epoch();
                s.ticks.fetch_add(1, Ordering::Relaxed);
            }
        })?;
        Ok(Ticker { shared, thread: handle.thread().clone(), handle: Mutex::new(Some(handle)) })
    }

    /// Marks a guest call in flight until the guard drops.
    pub fn busy(&self) -> Busy<'_> {
        if self.shared.active.fetch_add(1, Ordering::AcqRel) == 0 {
            self.thread.unpark();
        }
        Busy(self)
    }

    /// Ticks made so far.
    pub fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::Relaxed)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.thread.unpark();
        if let Some(t) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// A guest call in flight (see [`Ticker::busy`]).
pub struct Busy<'a>(&'a Ticker);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.shared.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_only_while_a_call_is_in_flight() {
        let mut cfg = wasmtime::Config::new();
        cfg.epoch_interruption(true);
        let ticker = Ticker::start(Engine::new(&cfg).unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ticker.ticks(), 0, "an idle ticker does not tick");
        {
            let _busy = ticker.busy();
            let _nested = ticker.busy();
            std::thread::sleep(Duration::from_millis(50));
        }
        let after_busy = ticker.ticks();
        assert!(after_busy > 0, "a call in flight makes the epoch move");
        std::thread::sleep(Duration::from_millis(50));
        assert!(ticker.ticks() <= after_busy + 1, "ticking stops when the last call ends");
    }
}
