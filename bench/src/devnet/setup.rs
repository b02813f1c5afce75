//! Starting the devnet under load (the `platform devnet` process, its directory removed
//! afterwards) or attaching to a running one, and waiting on it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::Args;

pub(super) struct Devnet {
    pub(super) child: Option<Child>,
    _dir: Option<tempfile_dir::Dir>,
}

mod tempfile_dir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(super) fn start(args: &Args) -> anyhow::Result<(Devnet, PathBuf)> {
    if let Some(dir) = &args.attach {
        return Ok((
            Devnet {
                child: None,
                _dir: None,
            },
            dir.clone(),
        ));
    }
    let exe = match &args.platform {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no exe directory")?
            .join("platform"),
    };
    anyhow::ensure!(
        exe.is_file(),
        "{} not found: build it (cargo build --release -p platform-node) or pass --platform",
        exe.display()
    );
    let dir = std::env::temp_dir().join(format!("platform-bench-devnet-{}", std::process::id()));
    let log = std::fs::File::create(std::env::temp_dir().join("platform-bench-devnet.log"))?;
    let child = Command::new(&exe)
        .args(["devnet", "--load", "0", "--nodes", &args.nodes.to_string()])
        .args(["--miners", &args.miners.to_string()])
        .args(["--epoch-blocks", &args.epoch_blocks.to_string()])
        .args(
            args.retain_epochs
                .map(|r| ["--retain-epochs".to_string(), r.to_string()])
                .into_iter()
                .flatten(),
        )
        .args(
            (!args.challenges.is_empty())
                .then(|| ["--challenges".to_string(), args.challenges.join(",")])
                .into_iter()
                .flatten(),
        )
        .arg("--block-time")
        .arg(format!("{}ms", args.block_time.as_millis()))
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    Ok((
        Devnet {
            child: Some(child),
            _dir: Some(tempfile_dir::Dir(dir.clone())),
        },
        dir,
    ))
}

pub(super) fn wait_for<T>(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
