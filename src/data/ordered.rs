//! Jobs numbered `first..end` run on worker threads and delivered in their order, with
//! at most `capacity` of them claimed ahead of the consumer: the loader's bounded,
//! ordered prefetch queue. The results do not depend on the number of workers, since
//! each job sees only its own index.

use std::collections::BTreeMap;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

/// One job: the result for `index`, or None when `stop` was set while it ran (the
/// consumer is gone; nothing is delivered). Jobs check `stop` between pieces of work so
/// that dropping the consumer ends the workers promptly.
pub trait Job<T>: Fn(usize, &AtomicBool) -> Option<Result<T>> + Send + Sync + 'static {}
impl<T, F: Fn(usize, &AtomicBool) -> Option<Result<T>> + Send + Sync + 'static> Job<T> for F {}

struct Queue<T> {
    /// The next index a worker takes.
    next_claim: usize,
    /// The next index the consumer receives.
    next_out: usize,
    end: usize,
    capacity: usize,
    /// Finished jobs not yet received.
    ready: BTreeMap<usize, Result<T>>,
    /// Workers still running.
    running: usize,
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
    /// Signalled on every change: a job finished, one was received, or `stop` was set.
    changed: Condvar,
    stop: AtomicBool,
}

impl<T> Shared<T> {
    /// The queue, also after a panic elsewhere (its state is updated in single steps).
    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The results of jobs `first..end`, in order. An error ends the sequence after it is
/// delivered. Dropping it stops the workers and waits for them.
pub struct Ordered<T> {
    shared: Arc<Shared<T>>,
    workers: Vec<JoinHandle<()>>,
    finished: bool,
}

impl<T: Send + 'static> Ordered<T> {
    /// Run `job` for every index of `range` on `workers` threads, at most `capacity`
    /// (at least one per worker) claimed and not yet received.
    pub fn spawn(range: Range<usize>, workers: usize, capacity: usize, job: impl Job<T>) -> Self {
        let workers = workers.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                next_claim: range.start,
                next_out: range.start,
                end: range.end,
                capacity: capacity.max(workers),
                ready: BTreeMap::new(),
                running: workers,
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let job = Arc::new(job);
        let workers = (0..workers)
            .map(|_| {
                let (shared, job) = (shared.clone(), job.clone());
                std::thread::spawn(move || work(&shared, job.as_ref()))
            })
            .collect();
        Self {
            shared,
            workers,
            finished: false,
        }
    }
}

fn work<T>(shared: &Shared<T>, job: &dyn Fn(usize, &AtomicBool) -> Option<Result<T>>) {
    loop {
        let index = {
            let mut q = shared.lock();
            loop {
                if shared.stop.load(Ordering::SeqCst) || q.next_claim >= q.end {
                    q.running -= 1;
                    shared.changed.notify_all();
                    return;
                }
                if q.next_claim < q.next_out + q.capacity {
                    q.next_claim += 1;
                    break q.next_claim - 1;
                }
                q = shared.changed.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let result =
            catch_unwind(AssertUnwindSafe(|| job(index, &shared.stop))).unwrap_or_else(|_| {
                Some(Err(Error::InvalidArgument(format!(
                    "preparing batch {index} panicked"
                ))))
            });
        let mut q = shared.lock();
        match result {
            Some(r) => {
                q.ready.insert(index, r);
            }
            None => {
                q.running -= 1;
                shared.changed.notify_all();
                return;
            }
        }
        shared.changed.notify_all();
    }
}

impl<T> Iterator for Ordered<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.finished {
            return None;
        }
        let mut q = self.shared.lock();
        loop {
            let at = q.next_out;
            if let Some(r) = q.ready.remove(&at) {
                q.next_out += 1;
                self.shared.changed.notify_all();
                if r.is_err() {
                    self.finished = true;
                    self.shared.stop.store(true, Ordering::SeqCst);
                }
                return Some(r);
            }
            if at >= q.end {
                self.finished = true;
                return None;
            }
            if q.running == 0 {
                // Cannot happen (a worker leaves only past the end or when stopped), but
                // waiting for it would hang.
                self.finished = true;
                return Some(Err(Error::InvalidArgument(format!(
                    "the batch workers stopped before batch {at}"
                ))));
            }
            q = self
                .shared
                .changed
                .wait(q)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl<T> Drop for Ordered<T> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Under the lock, so that no worker misses the signal between its check and its wait.
        drop(self.shared.lock());
        self.shared.changed.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn results_come_in_order_whatever_the_workers() {
        for workers in 1..=4 {
            let got: Vec<usize> = Ordered::spawn(3..40, workers, 2, |i, _: &AtomicBool| {
                // Later jobs finish first.
                std::thread::sleep(Duration::from_micros(((40 - i) * 50) as u64));
                Some(Ok(i * 10))
            })
            .map(|r| r.unwrap())
            .collect();
            assert_eq!(got, (3..40).map(|i| i * 10).collect::<Vec<_>>());
        }
    }

    #[test]
    fn an_error_is_delivered_in_its_place_and_ends_the_sequence() {
        let got: Vec<Result<usize>> = Ordered::spawn(0..10, 3, 4, |i, _: &AtomicBool| {
            if i == 4 {
                Some(Err(Error::data("/x/4.jpg", "corrupt")))
            } else {
                Some(Ok(i))
            }
        })
        .collect();
        assert_eq!(got.len(), 5);
        assert!(got[..4].iter().all(|r| r.is_ok()));
        assert!(got[4].as_ref().unwrap_err().to_string().contains("4.jpg"));
    }

    #[test]
    fn a_panicking_job_is_an_error_not_a_hang() {
        let mut it = Ordered::spawn(0..3, 2, 2, |i, _: &AtomicBool| {
            assert!(i != 1, "boom");
            Some(Ok(i))
        });
        assert_eq!(it.next().unwrap().unwrap(), 0);
        assert!(it
            .next()
            .unwrap()
            .unwrap_err()
            .to_string()
            .contains("panicked"));
        assert!(it.next().is_none());
    }

    #[test]
    fn dropping_stops_the_workers_and_bounds_the_work() {
        let started = Arc::new(AtomicUsize::new(0));
        let count = started.clone();
        let mut it = Ordered::spawn(0..1_000_000, 2, 3, move |i, stop: &AtomicBool| {
            count.fetch_add(1, Ordering::SeqCst);
            while !stop.load(Ordering::SeqCst) && i > 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            Some(Ok(i))
        });
        assert_eq!(it.next().unwrap().unwrap(), 0);
        std::thread::sleep(Duration::from_millis(20));
        // Drop joins the workers: this returns only once they have stopped.
        drop(it);
        assert!(started.load(Ordering::SeqCst) <= 4);
    }
}
