//! Whole-system tests live in `tests/`; this crate's library holds the helpers the
//! end-to-end tests share (process guards, bounded waits, node status).

pub mod e2e {
    use std::process::Child;
    use std::time::{Duration, Instant};

    /// Child processes stopped when the test ends, even on a failure: SIGTERM first (a
    /// devnet then stops its own validators), SIGKILL after 20 s.
    #[derive(Debug, Default)]
    pub struct Procs(pub Vec<Child>);

    impl Drop for Procs {
        fn drop(&mut self) {
            for c in self.0.iter_mut().rev() {
                sigterm(c);
                let deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Send SIGTERM to a child.
    pub fn sigterm(c: &Child) {
        if let Ok(pid) = i32::try_from(c.id()) {
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }

    /// Poll `f` every 200 ms until it returns `Some`; fail naming `what` after `secs`.
    pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A node's `/status` document, if it answers.
    pub fn status(api: &str) -> Option<serde_json::Value> {
        let text = platform_node::http::get(api, "/status", Duration::from_secs(2)).ok()?;
        serde_json::from_str(&text).ok()
    }
}
