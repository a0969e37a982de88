//! A small fixed pool for the sync's requests: GitHub discourages many
//! concurrent requests, so a sync runs its tree calls and blob fetches on a
//! few scoped threads, never one per item.

/// Runs `f` over `items` on up to `workers` threads (the caller's thread is
/// one of them), keeping the input order in the output. A thread that cannot
/// be spawned only means fewer workers.
pub fn parallel<T: Send, R: Send>(
    items: Vec<T>,
    workers: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let n = items.len();
    let (job_tx, job_rx) = crossbeam_channel::unbounded();
    for job in items.into_iter().enumerate() {
        let _ = job_tx.send(job);
    }
    drop(job_tx);
    let (out_tx, out_rx) = crossbeam_channel::unbounded();
    std::thread::scope(|s| {
        let work = || {
            for (i, job) in job_rx.iter() {
                let _ = out_tx.send((i, f(job)));
            }
        };
        for i in 1..workers.min(n) {
            let spawned = std::thread::Builder::new()
                .name(format!("kv-github-{i}"))
                .spawn_scoped(s, work);
            if spawned.is_err() {
                break;
            }
        }
        work();
    });
    drop(out_tx);
    let mut out: Vec<(usize, R)> = out_rx.iter().collect();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::parallel;

    #[test]
    fn keeps_order() {
        let out = parallel((0..50).collect(), 4, |i: i32| i * 2);
        assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        assert!(parallel(Vec::<i32>::new(), 4, |i| i).is_empty());
        assert_eq!(parallel(vec![1, 2, 3], 1, |i: i32| i + 1), [2, 3, 4]);
    }
}
