//! A running answer as the rest of the service sees it: the events it has
//! produced so far (replayed to a client that reconnects), the sockets
//! subscribed to it, and its cancel switch.
//!
//! It belongs to the conversation, not to a socket: the store keeps it while
//! the answer runs, the turn (`chat::turn`) publishes into it, the WebSocket
//! session subscribes to it. None of them needs to know the others.

use crate::sync::lock;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Where a turn's events go: one open WebSocket. `send` returns false when the
/// receiver is gone, and it is then dropped from the turn.
pub trait EventSink: Send + Sync {
    fn send(&self, event: &str) -> bool;
}

/// Stops a running answer from another thread: sets a flag the turn checks
/// between steps, and runs the hook the request in flight registered (the
/// model client closes its upstream socket, so a blocked read ends at once).
#[derive(Default)]
pub struct Cancel {
    flag: AtomicBool,
    /// Stopped by the service (shutting down), not by the user: the answer
    /// is `interrupted`, not `cancelled`.
    by_service: AtomicBool,
    hook: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Cancel {
    pub fn new() -> Arc<Cancel> {
        Arc::new(Cancel::default())
    }

    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let hook = lock(&self.hook).take();
        if let Some(hook) = hook {
            hook();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Cancels on the service's behalf (a shutdown whose grace ran out).
    pub fn interrupt(&self) {
        self.by_service.store(true, Ordering::SeqCst);
        self.cancel();
    }

    pub fn by_service(&self) -> bool {
        self.by_service.load(Ordering::SeqCst)
    }

    /// Registers what closes the request in flight, replacing any earlier
    /// hook; runs it at once if the answer is already cancelled. The flag is
    /// read under the hook's lock, so a concurrent cancel runs it exactly once.
    pub fn on_cancel(&self, hook: Box<dyn FnOnce() + Send>) {
        let mut slot = lock(&self.hook);
        if self.is_cancelled() {
            drop(slot);
            hook();
        } else {
            *slot = Some(hook);
        }
    }

    /// The request in flight has ended; nothing is left to close.
    pub fn clear_hook(&self) {
        lock(&self.hook).take();
    }
}

#[derive(Default)]
struct Log {
    events: Vec<Arc<str>>,
    subscribers: Vec<Arc<dyn EventSink>>,
}

/// A running answer, attached to its conversation while it runs.
pub struct TurnHandle {
    pub cancel: Arc<Cancel>,
    log: Mutex<Log>,
}

impl Default for TurnHandle {
    fn default() -> TurnHandle {
        TurnHandle {
            cancel: Cancel::new(),
            log: Mutex::new(Log::default()),
        }
    }
}

impl TurnHandle {
    /// Records an event and writes it to every subscriber at once. Writing
    /// under the log lock keeps each subscriber's order: its replay and the
    /// live events never interleave.
    pub fn publish(&self, event: &impl Serialize) {
        // Events are built from our own strings and JSON values: serialising
        // them cannot fail.
        let text: Arc<str> = Arc::from(serde_json::to_string(event).unwrap_or_default());
        let mut log = lock(&self.log);
        log.subscribers.retain(|s| s.send(&text));
        log.events.push(text);
    }

    /// Replays the events so far to `sink`, then keeps it for the live ones.
    pub fn subscribe(&self, sink: Arc<dyn EventSink>) {
        let mut log = lock(&self.log);
        if log.events.iter().all(|e| sink.send(e)) {
            log.subscribers.push(sink);
        }
    }

    pub fn unsubscribe(&self, sink: &Arc<dyn EventSink>) {
        lock(&self.log)
            .subscribers
            .retain(|s| !Arc::ptr_eq(s, sink));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_hook_runs_once_whichever_comes_first() {
        let runs = Arc::new(AtomicUsize::new(0));
        let hook = |runs: &Arc<AtomicUsize>| {
            let runs = runs.clone();
            Box::new(move || {
                runs.fetch_add(1, Ordering::SeqCst);
            }) as Box<dyn FnOnce() + Send>
        };
        let c = Cancel::new();
        c.on_cancel(hook(&runs));
        c.cancel();
        c.cancel();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Registered after the cancel: runs at once.
        c.on_cancel(hook(&runs));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // Cleared before a cancel: never runs.
        let c = Cancel::new();
        c.on_cancel(hook(&runs));
        c.clear_hook();
        c.cancel();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    struct Collect(Mutex<Vec<String>>, bool);
    impl EventSink for Collect {
        fn send(&self, event: &str) -> bool {
            lock(&self.0).push(event.to_string());
            self.1
        }
    }

    #[test]
    fn a_subscriber_gets_the_replay_then_the_live_events() {
        let t = TurnHandle::default();
        t.publish(&"one");
        let sink = Arc::new(Collect(Mutex::new(vec![]), true));
        t.subscribe(sink.clone());
        t.publish(&"two");
        assert_eq!(*lock(&sink.0), ["\"one\"", "\"two\""]);
        let gone = Arc::new(Collect(Mutex::new(vec![]), false));
        t.subscribe(gone.clone());
        t.publish(&"three");
        assert_eq!(lock(&gone.0).len(), 1, "a dead sink is not kept");
        let sink: Arc<dyn EventSink> = sink;
        t.unsubscribe(&sink);
        t.publish(&"four");
    }
}
