//! A bounded multi-producer, single-consumer queue whose consumer awaits on a glommio
//! executor while producers are plain threads: `crossbeam` `ArrayQueue` for the slots and an
//! `AtomicWaker` for the wake-up (glommio routes foreign wakes to the owning executor).
//! Full means full: `push` hands the item back, the queue never grows.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Inbox<T> {
    slots: ArrayQueue<T>,
    waker: AtomicWaker,
    closed: AtomicBool,
}

impl<T> Inbox<T> {
    pub fn new(capacity: usize) -> Self {
        Inbox {
            slots: ArrayQueue::new(capacity),
            waker: AtomicWaker::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Enqueue, or give the item back if the queue is full or closed.
    pub fn push(&self, item: T) -> Result<(), T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(item);
        }
        self.slots.push(item)?;
        self.waker.wake();
        Ok(())
    }

    /// The next item if one is queued, without waiting.
    pub fn try_pop(&self) -> Option<T> {
        self.slots.pop()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Stop accepting; the consumer drains what is queued, then sees `None`.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Next item, or `None` once closed and drained. Single consumer.
    pub async fn pop(&self) -> Option<T> {
        poll_fn(|cx| {
            if let Some(item) = self.slots.pop() {
                return Poll::Ready(Some(item));
            }
            self.waker.register(cx.waker());
            // Re-check after registering: a push between the first check and the
            // registration would otherwise be missed.
            if let Some(item) = self.slots.pop() {
                return Poll::Ready(Some(item));
            }
            if self.closed.load(Ordering::Acquire) {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn full_queue_hands_items_back() {
        let q = Inbox::new(2);
        q.push(1).unwrap();
        q.push(2).unwrap();
        assert_eq!(q.push(3), Err(3));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn consumer_on_glommio_is_woken_by_a_foreign_thread() {
        let q = Arc::new(Inbox::new(4));
        let consumer = {
            let q = q.clone();
            glommio::LocalExecutorBuilder::default()
                .io_memory(256 << 10)
                .spawn(move || async move {
                    let mut got = vec![];
                    while let Some(x) = q.pop().await {
                        got.push(x);
                    }
                    got
                })
                .unwrap()
        };
        let mut sent = 0;
        while sent < 100 {
            if q.push(sent).is_ok() {
                sent += 1;
            } else {
                std::thread::yield_now();
            }
        }
        q.close();
        let got = consumer.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }
}
