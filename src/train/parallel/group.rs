//! The replicas of one process, each on its own thread, and their collective: a sum over
//! every replica of the run (this process's threads, then the other processes).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::nn::ParamStore;

use super::ProcessGroup;

/// The replicas of this process and the processes of the run.
pub struct ReplicaGroup {
    local: usize,
    process: Arc<dyn ProcessGroup>,
    state: Mutex<State>,
    done: Condvar,
}

/// One round of the collective at a time: the replicas deposit their slices, the last to
/// arrive sums them (in replica order, so that every run sums alike), reduces over the
/// processes, and wakes the others.
#[derive(Default)]
struct State {
    round: u64,
    slots: Vec<Option<Vec<f32>>>,
    result: Arc<Vec<f32>>,
    failed: Option<(usize, String)>,
}

impl ReplicaGroup {
    /// `local` replicas in this process, in the run of `process`.
    pub fn new(local: usize, process: Arc<dyn ProcessGroup>) -> Arc<Self> {
        Arc::new(Self {
            local,
            process,
            state: Mutex::new(State {
                slots: vec![None; local],
                ..State::default()
            }),
            done: Condvar::new(),
        })
    }

    /// Replicas in this process.
    pub fn local(&self) -> usize {
        self.local
    }

    /// Replicas over all processes.
    pub fn replicas(&self) -> usize {
        self.local * self.process.size()
    }

    /// The run-wide index of this process's `local`-th replica.
    pub fn global_index(&self, local: usize) -> usize {
        self.process.rank() * self.local + local
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replace `data` by its sum over every replica of the run; each of this process's
    /// replicas calls it once a round (as `local`), with slices of one length. Returns
    /// the error of a replica that failed instead of waiting for it.
    pub fn sum(&self, local: usize, data: &mut [f32]) -> Result<()> {
        let mut state = self.lock();
        if let Some(e) = self.failure(&state) {
            return Err(e);
        }
        let round = state.round;
        state.slots[local] = Some(data.to_vec());
        if state.slots.iter().all(Option::is_some) {
            let mut slots = state.slots.iter_mut().map(|s| s.take().unwrap_or_default());
            let mut total = slots.next().unwrap_or_default();
            for (replica, slot) in slots.enumerate() {
                if slot.len() != total.len() {
                    let e = Error::Collective(format!(
                        "replica {} reduces {} values, replica 0 {}",
                        replica + 1,
                        slot.len(),
                        total.len()
                    ));
                    self.fail_locked(&mut state, local, e.to_string());
                    return Err(e);
                }
                total.iter_mut().zip(&slot).for_each(|(t, v)| *t += v);
            }
            if let Err(e) = self.process.sum(&mut total) {
                self.fail_locked(&mut state, local, e.to_string());
                return Err(e);
            }
            state.result = Arc::new(total);
            state.round += 1;
            self.done.notify_all();
        } else {
            while state.round == round && state.failed.is_none() {
                state = self.done.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.round == round {
                return Err(self.failure(&state).expect("woken by a failure"));
            }
        }
        data.copy_from_slice(&state.result);
        Ok(())
    }

    fn failure(&self, state: &State) -> Option<Error> {
        state
            .failed
            .as_ref()
            .map(|(replica, reason)| Error::ReplicaFailed {
                replica: *replica,
                reason: reason.clone(),
            })
    }

    /// Record that this process's `local`-th replica stopped with `reason`: every replica
    /// waiting in [`ReplicaGroup::sum`], and every later call, returns it as an error.
    pub fn fail(&self, local: usize, reason: String) {
        let mut state = self.lock();
        self.fail_locked(&mut state, local, reason);
    }

    fn fail_locked(&self, state: &mut State, local: usize, reason: String) {
        if state.failed.is_none() {
            state.failed = Some((self.global_index(local), reason));
        }
        self.done.notify_all();
    }
}

/// A replica's place in its group, as an epoch sees it.
#[derive(Clone)]
pub struct ReplicaLink {
    /// The group.
    pub group: Arc<ReplicaGroup>,
    /// This replica's index in its process.
    pub local: usize,
}

impl ReplicaLink {
    /// Sum the gradients over the replicas, average the running statistics, and agree on
    /// whether to stop (any replica asking stops all): the step before each optimizer
    /// update. Waits for the GPU to finish the backward passes.
    pub fn reduce(&self, ctx: &GpuContext, store: &ParamStore, stop: bool) -> Result<bool> {
        let grads = ctx.download_f32(&store.grads)?;
        let stats = store.download_stats(ctx)?;
        let (g, s) = (grads.len(), stats.len());
        let mut data = grads;
        data.extend_from_slice(&stats);
        data.push(stop as u8 as f32);
        self.group.sum(self.local, &mut data)?;
        let replicas = self.group.replicas() as f32;
        ctx.write_words(&store.grads, &data[..g])?;
        let mean: Vec<f32> = data[g..g + s].iter().map(|v| v / replicas).collect();
        store.write_stats(ctx, &mean)?;
        Ok(data[g + s] > 0.0)
    }

    /// Sum an epoch's running figures (loss sum, correct, seen) over the replicas.
    pub fn sum_figures(
        &self,
        (loss, correct, seen): (f64, usize, usize),
    ) -> Result<(f64, usize, usize)> {
        let mut data = [loss as f32, correct as f32, seen as f32];
        self.group.sum(self.local, &mut data)?;
        Ok((
            data[0] as f64,
            data[1].round() as usize,
            data[2].round() as usize,
        ))
    }

    /// Whether this is replica 0 of the run, which writes the checkpoints and logs.
    pub fn leads(&self) -> bool {
        self.group.global_index(self.local) == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::ReplicaGroup;
    use crate::train::parallel::Alone;

    #[test]
    fn sums_over_threads_round_after_round() {
        let group = ReplicaGroup::new(3, Arc::new(Alone));
        std::thread::scope(|s| {
            for r in 0..3 {
                let group = &group;
                s.spawn(move || {
                    for round in 0..50 {
                        let mut v = vec![r as f32 + round as f32, 1.0];
                        group.sum(r, &mut v).unwrap();
                        assert_eq!(v, vec![3.0 + 3.0 * round as f32, 3.0]);
                    }
                });
            }
        });
    }

    #[test]
    fn a_failed_replica_releases_the_waiting_ones() {
        let group = ReplicaGroup::new(2, Arc::new(Alone));
        std::thread::scope(|s| {
            let waiting = s.spawn(|| group.sum(0, &mut [1.0]).unwrap_err().to_string());
            std::thread::sleep(std::time::Duration::from_millis(50));
            group.fail(1, "its data is unreadable".into());
            let e = waiting.join().unwrap();
            assert!(e.contains("replica 1") && e.contains("unreadable"), "{e}");
        });
        assert!(group.sum(0, &mut [1.0]).is_err());
    }
}
