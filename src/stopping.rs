//! What must be told when the service stops: open chat sockets register
//! here while they live, and the graceful shutdown (`App::shut_down`) tells
//! each one, once, before it closes.

use crate::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Something with a client at the other end that should hear why it is
/// being closed.
pub trait Stoppable: Send + Sync {
    fn stop(&self, message: &str);
}

#[derive(Default)]
pub struct Registry {
    open: Mutex<HashMap<u64, Weak<dyn Stoppable>>>,
    next: AtomicU64,
    stopping: AtomicBool,
}

impl Registry {
    /// Registers `it` until [`Registry::remove`]; `None` once the service is
    /// stopping (the caller should close at once).
    pub fn add(&self, it: Weak<dyn Stoppable>) -> Option<u64> {
        let mut open = lock(&self.open);
        if self.stopping.load(Ordering::SeqCst) {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        open.insert(id, it);
        Some(id)
    }

    pub fn remove(&self, id: u64) {
        lock(&self.open).remove(&id);
    }

    /// Tells everything registered, and refuses later registrations.
    /// Returns how many were told.
    pub fn stop_all(&self, message: &str) -> usize {
        let all: Vec<Arc<dyn Stoppable>> = {
            let mut open = lock(&self.open);
            self.stopping.store(true, Ordering::SeqCst);
            open.drain().filter_map(|(_, w)| w.upgrade()).collect()
        };
        for it in &all {
            it.stop(message);
        }
        all.len()
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Told(Mutex<Vec<String>>);
    impl Stoppable for Told {
        fn stop(&self, message: &str) {
            lock(&self.0).push(message.to_string());
        }
    }

    #[test]
    fn everything_open_is_told_once_and_later_ones_are_refused() {
        let r = Registry::default();
        let a = Arc::new(Told(Mutex::new(vec![])));
        let gone = Arc::new(Told(Mutex::new(vec![])));
        let removed = Arc::new(Told(Mutex::new(vec![])));
        let a_dyn: Arc<dyn Stoppable> = a.clone();
        let gone_dyn: Arc<dyn Stoppable> = gone;
        let removed_dyn: Arc<dyn Stoppable> = removed.clone();
        r.add(Arc::downgrade(&a_dyn)).unwrap();
        r.add(Arc::downgrade(&gone_dyn)).unwrap();
        let id = r.add(Arc::downgrade(&removed_dyn)).unwrap();
        drop(gone_dyn);
        r.remove(id);
        assert_eq!(r.stop_all("bye"), 1);
        assert_eq!(*lock(&a.0), ["bye"]);
        assert!(lock(&removed.0).is_empty());
        assert!(r.add(Arc::downgrade(&a_dyn)).is_none());
        assert_eq!(r.stop_all("again"), 0);
    }
}
