//! The fused kernels' thread pool: a calling thread shares the chunks of one op with workers
//! that join while the op is open, and waits only for workers that joined.
//!
//! candle's barrier pool (which the kernels used before) hands each worker a slot and waits
//! for every worker to check in, with a pure spin. On a machine shared with other work a
//! worker may not run for a whole scheduler slice; the caller then spins on its own core for
//! that slice, although the work may long be done — a profile of training beside two busy
//! processes spent 42% of its time there. Here the caller closes the op once every chunk is
//! taken and waits only for chunks in progress; a worker that wakes late finds the op closed
//! and goes back to waiting. Every wait spins briefly, then yields the core, then parks, so
//! that a descheduled thread gets the core back.
use std::any::Any;
use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;

/// Set in `gate` while an op is open; the low bits count the workers inside it.
const OPEN: usize = 1 << (usize::BITS - 1);
/// A worker polls this many times, then yields, and parks after `IDLE_YIELDS` yields.
const SPINS: u32 = 64;
const IDLE_YIELDS: u32 = 200;

/// One op: a chunked range and the closure that processes a range, type-erased.
struct Job {
    run: unsafe fn(*const (), std::ops::Range<usize>),
    data: *const (),
    n_items: usize,
    chunk: usize,
    cursor: AtomicUsize,
}

impl Job {
    /// Takes and runs chunks until none is left.
    ///
    /// # Safety
    /// `data` must point to the closure `run` was made for, alive for the whole call.
    unsafe fn drain(&self) {
        loop {
            let start = self.cursor.fetch_add(self.chunk, Ordering::Relaxed);
            if start >= self.n_items {
                return;
            }
            let end = self.n_items.min(start + self.chunk);
            // SAFETY: forwarded from the caller.
            unsafe { (self.run)(self.data, start..end) };
        }
    }
}

unsafe fn run_closure<F: Fn(std::ops::Range<usize>) + Sync>(
    data: *const (),
    range: std::ops::Range<usize>,
) {
    // SAFETY: `data` is `&F`, made by `Pool::execute_chunked` from a live closure.
    unsafe { (*(data as *const F))(range) }
}

struct Shared {
    /// The open op's job; valid while `gate` has `OPEN` set or counts a worker inside.
    job: AtomicPtr<Job>,
    /// `OPEN` plus the number of workers inside the current op.
    gate: AtomicUsize,
    /// Bumped for every op: sleeping or polling workers look for a change.
    epoch: AtomicUsize,
    /// The first panic of a worker in the current op, re-raised on the calling thread.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

pub(crate) struct Pool {
    shared: &'static Shared,
    workers: Vec<Thread>,
    /// One op at a time; a second caller runs its op alone rather than wait.
    busy: Mutex<()>,
}

thread_local! {
    /// Set on the pool's workers: an op started from inside one runs inline.
    static IN_POOL: Cell<bool> = const { Cell::new(false) };
}

/// The process's pool: `threads::num_threads() - 1` workers beside the calling thread.
pub(crate) fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool::new(crate::threads::num_threads().saturating_sub(1)))
}

impl Pool {
    fn new(n_workers: usize) -> Pool {
        // Leaked on purpose: the workers live as long as the process.
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            job: AtomicPtr::new(std::ptr::null_mut()),
            gate: AtomicUsize::new(0),
            epoch: AtomicUsize::new(0),
            panic: Mutex::new(None),
        }));
        let workers = (0..n_workers)
            .filter_map(|i| {
                std::thread::Builder::new()
                    .name(format!("massivetext-kernel-{i}"))
                    .spawn(move || worker(shared))
                    .ok()
                    .map(|h| h.thread().clone())
            })
            .collect();
        Pool {
            shared,
            workers,
            busy: Mutex::new(()),
        }
    }

    /// Runs `f` over `0..n_items` in chunks (about 8 per thread) on the calling thread and
    /// the workers, and returns when every chunk has run. A panic in `f` is re-raised here.
    pub(crate) fn execute_chunked<F: Fn(std::ops::Range<usize>) + Sync>(
        &self,
        n_items: usize,
        f: F,
    ) {
        if n_items == 0 {
            return;
        }
        let guard = match self.busy.try_lock() {
            Ok(g) if !self.workers.is_empty() && !IN_POOL.with(Cell::get) => g,
            _ => return f(0..n_items),
        };
        let threads = self.workers.len() + 1;
        let job = Job {
            run: run_closure::<F>,
            data: &f as *const F as *const (),
            n_items,
            chunk: n_items.div_ceil(threads * 8).max(1),
            cursor: AtomicUsize::new(0),
        };
        let s = self.shared;
        s.job
            .store(&job as *const Job as *mut Job, Ordering::Relaxed);
        // Release: a worker that joins (Acquire on `gate`) sees `job` and what it points to.
        s.gate.store(OPEN, Ordering::Release);
        s.epoch.fetch_add(1, Ordering::Release);
        for w in &self.workers {
            w.unpark();
        }
        // SAFETY: `f` lives until this function returns, after every joined worker left.
        let caught =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { job.drain() }));
        // Close: no worker joins from now on; wait for those inside (their chunks in progress).
        s.gate.fetch_and(!OPEN, Ordering::AcqRel);
        let mut polls = 0u32;
        // Acquire: the workers' writes (Release on leaving) are visible after this.
        while s.gate.load(Ordering::Acquire) != 0 {
            polls += 1;
            if polls < SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        s.job.store(std::ptr::null_mut(), Ordering::Relaxed);
        let worker_panic = s.panic.lock().map(|mut p| p.take()).unwrap_or(None);
        drop(guard);
        if let Err(p) = caught {
            std::panic::resume_unwind(p);
        }
        if let Some(p) = worker_panic {
            std::panic::resume_unwind(p);
        }
    }
}

fn worker(s: &'static Shared) {
    IN_POOL.with(|f| f.set(true));
    let mut seen = s.epoch.load(Ordering::Acquire);
    loop {
        // Wait for a new op: poll, then yield, then park.
        let mut polls = 0u32;
        loop {
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                break;
            }
            polls += 1;
            if polls < SPINS {
                std::hint::spin_loop();
            } else if polls < SPINS + IDLE_YIELDS {
                std::thread::yield_now();
            } else {
                // An unpark before this park makes it return at once: no wake-up is lost.
                std::thread::park();
            }
        }
        // Join the op if it is still open.
        let mut g = s.gate.load(Ordering::Relaxed);
        let joined = loop {
            if g & OPEN == 0 {
                break false;
            }
            match s
                .gate
                .compare_exchange_weak(g, g + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => break true,
                Err(now) => g = now,
            }
        };
        if !joined {
            continue;
        }
        let job = s.job.load(Ordering::Relaxed);
        // SAFETY: joined while open, so the caller waits for this worker before its job and
        // closure go; `job` was stored before the gate opened (Release/Acquire on `gate`).
        let caught = std::panic::catch_unwind(|| unsafe { (*job).drain() });
        if let Err(p) = caught
            && let Ok(mut slot) = s.panic.lock()
            && slot.is_none()
        {
            *slot = Some(p);
        }
        s.gate.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_item_runs_once() {
        let pool = Pool::new(3);
        for n in [0, 1, 7, 64, 1000, 12_345] {
            let hits: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
            pool.execute_chunked(n, |r| {
                for i in r {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                }
            });
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "n = {n}"
            );
        }
    }

    #[test]
    fn many_short_ops_in_a_row_lose_no_chunk() {
        // Workers that wake late must find the op closed (or the next one) and never run a
        // finished op's closure.
        let pool = Pool::new(2);
        let total = AtomicU64::new(0);
        for op in 0..5_000u64 {
            pool.execute_chunked(3, |r| {
                total.fetch_add(r.len() as u64 * op, Ordering::Relaxed);
            });
        }
        assert_eq!(
            total.load(Ordering::Relaxed),
            3 * (0..5_000u64).sum::<u64>()
        );
    }

    #[test]
    fn a_panic_in_a_chunk_reaches_the_caller_and_the_pool_still_works() {
        let pool = Pool::new(2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.execute_chunked(100, |r| assert!(!r.contains(&57), "chunk with 57"));
        }));
        assert!(r.is_err());
        let count = AtomicU64::new(0);
        pool.execute_chunked(100, |r| {
            count.fetch_add(r.len() as u64, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn an_op_started_inside_an_op_runs_inline() {
        let pool = Pool::new(2);
        let count = AtomicU64::new(0);
        pool.execute_chunked(4, |_| {
            pool.execute_chunked(10, |r| {
                count.fetch_add(r.len() as u64, Ordering::Relaxed);
            });
        });
        assert_eq!(count.load(Ordering::Relaxed), 40);
    }
}
