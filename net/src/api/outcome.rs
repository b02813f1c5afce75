//! Where a command's outcome goes: to a caller waiting on a channel, to a callback, or
//! nowhere. Only the first waits; the other two never hold the caller up.

use super::{NetError, Reply};

/// A callback the net thread runs with an outcome. It runs on the net thread, so it must
/// be cheap and must never block (send on an unbounded channel, set a flag).
pub(crate) type Then<T> = Box<dyn FnOnce(Result<T, NetError>) + Send>;

/// The destination of one command's outcome.
pub(crate) enum Done<T> {
    /// A caller blocked in `NetHandle::call` (it may have given up: then nothing happens).
    Wait(Reply<T>),
    /// A callback run on the net thread.
    Then(Then<T>),
    /// No one: the caller did not wait (the net thread logs failures itself).
    Detached,
}

impl<T> Done<T> {
    /// Deliver the outcome.
    pub(crate) fn send(self, outcome: Result<T, NetError>) {
        match self {
            Done::Wait(reply) => {
                let _ = reply.send(outcome);
            }
            Done::Then(f) => f(outcome),
            Done::Detached => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn each_destination_gets_the_outcome_once_and_a_gone_waiter_is_harmless() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        Done::Wait(tx).send(Ok(7u32));
        assert_eq!(rx.recv().unwrap(), Ok(7));

        let (tx, rx) = crossbeam_channel::bounded::<Result<u32, NetError>>(1);
        drop(rx);
        Done::Wait(tx).send(Ok(1)); // the caller timed out and left: nothing to do

        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        Done::Then(Box::new(move |r: Result<u32, NetError>| {
            assert_eq!(r, Err(NetError::NotFound));
            h.fetch_add(1, Ordering::Relaxed);
        }))
        .send(Err(NetError::NotFound));
        assert_eq!(hits.load(Ordering::Relaxed), 1);

        Done::<u32>::Detached.send(Ok(3));
    }
}
