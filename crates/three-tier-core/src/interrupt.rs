//! Ctrl-C during a run: the scheduler starts no new step, drops its waits (they change
//! nothing), lets the calls in flight finish so nothing is left half-made, and returns
//! [`crate::Error::Interrupted`]. The stack's lock is then released as after any error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Raised once, by whoever watches for the signal; read by the scheduler.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<Raised>);

#[derive(Debug, Default)]
struct Raised {
    flag: AtomicBool,
    notify: Notify,
}

impl Interrupt {
    pub fn raise(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    pub fn is_raised(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// Resolves once raised.
    pub async fn raised(&self) {
        loop {
            // Made before the flag is read: a raise in between still wakes it.
            let notified = self.0.notify.notified();
            if self.is_raised() {
                return;
            }
            notified.await;
        }
    }
}
