//! Reading many files at once: a map over items on the machine's cores (at most 8), in
//! order.

use crate::error::{Error, Result};

/// `f` of every item, in order, computed on up to 8 threads (one contiguous chunk each);
/// the first error is returned, and a thread that panics is an error naming `what` it
/// was doing.
pub fn par_map<I: Sync, T: Send>(
    items: &[I],
    what: &str,
    f: impl Fn(&I) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = items.len().div_ceil(threads).max(1);
    let f = &f;
    let parts: Vec<Result<Vec<T>>> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Result<Vec<T>>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::InvalidArgument(format!("{what} thread panicked")))
                })
            })
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}
