//! What a benchmark ran on (cores, CPU, kernel, commit), printed with every table, and the
//! JSON results file written beside it.

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

/// Facts about the machine and build, recorded beside every result.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
    pub commit: String,
    pub profile: &'static str,
    pub when: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |s| s.trim().to_string());
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel,
            commit,
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            when: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }

    pub fn line(&self) -> String {
        format!(
            "machine: {} cores, {}, kernel {}, commit {}, {} build, {}",
            self.cores, self.cpu, self.kernel, self.commit, self.profile, self.when
        )
    }
}

/// Write `report` as `<dir>/<name>-<YYYY-MM-DD>.json` (the day the machine line records).
pub fn write_results(
    dir: &Path,
    name: &str,
    machine: &Machine,
    report: &impl Serialize,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let day = machine.when.get(..10).unwrap_or("unknown");
    let path = dir.join(format!("{name}-{day}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("write {}", path.display()))?;
    println!("results written to {}", path.display());
    Ok(())
}
