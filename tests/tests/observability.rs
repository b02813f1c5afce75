//! Observability end to end, against a devnet with synthetic load:
//! - a live node's `/metrics` passes `promtool check metrics`;
//! - every Grafana panel's PromQL parses, names only metrics a running node exports, and
//!   reads counters only through `rate`/`increase`/`irate`;
//! - a real Prometheus server on loopback scrapes the four validators, and its query API
//!   shows evaluation, consensus and net series present and moving.
//!
//! Needs Debian's `prometheus` package (`promtool`, `prometheus`), which `scripts/setup.sh`
//! installs; without it the test says so and passes, unless `PLATFORM_REQUIRE_PROMETHEUS=1`
//! (set by `scripts/test.sh`, so CI cannot skip it).
#![allow(clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use platform_tests::e2e::{Procs, wait_for};
use promql_parser::parser::{self, Expr};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_platform-e2e");

fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Metric families a `/metrics` text declares: name → type.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

/// Every metric selector in `e`, with whether it sits inside rate/increase/irate.
fn selectors(e: &Expr, in_rate: bool, out: &mut Vec<(String, bool)>) {
    match e {
        Expr::Aggregate(a) => {
            selectors(&a.expr, in_rate, out);
            if let Some(p) = &a.param {
                selectors(p, in_rate, out);
            }
        }
        Expr::Unary(u) => selectors(&u.expr, in_rate, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, in_rate, out);
            selectors(&b.rhs, in_rate, out);
        }
        Expr::Paren(p) => selectors(&p.expr, in_rate, out),
        Expr::Subquery(s) => selectors(&s.expr, in_rate, out),
        Expr::VectorSelector(v) => out.push((v.name.clone().unwrap_or_default(), in_rate)),
        Expr::MatrixSelector(m) => out.push((m.vs.name.clone().unwrap_or_default(), in_rate)),
        Expr::Call(c) => {
            let rate = matches!(c.func.name, "rate" | "increase" | "irate");
            for a in &c.args.args {
                selectors(a, in_rate || rate, out);
            }
        }
        _ => {}
    }
}

fn dashboards() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../grafana/dashboards");
    let mut out = Vec::new();
    for f in std::fs::read_dir(&dir).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            out.push((p.display().to_string(), v));
        }
    }
    assert!(out.len() >= 2, "expected the overview and node dashboards");
    out
}

#[test]
fn dashboards_have_stable_uids_and_one_datasource() {
    let mut uids = BTreeSet::new();
    for (path, d) in dashboards() {
        let uid = d["uid"].as_str().unwrap_or_default().to_string();
        assert!(uid.starts_with("platform-"), "{path}: uid {uid:?}");
        assert!(uids.insert(uid), "{path}: duplicate uid");
        for p in d["panels"].as_array().unwrap() {
            assert_eq!(
                p["datasource"]["uid"], "platform-prometheus",
                "{path}: {}",
                p["title"]
            );
            for t in p["targets"].as_array().unwrap() {
                let expr = t["expr"].as_str().unwrap();
                parser::parse(expr).unwrap_or_else(|e| panic!("{path}: {expr}: {e}"));
            }
        }
    }
    assert!(uids.contains("platform-overview") && uids.contains("platform-node"));
}

#[test]
fn prometheus_scrapes_a_devnet_and_dashboards_match_what_nodes_export() {
    let (Some(promtool), Some(prometheus)) = (tool("promtool"), tool("prometheus")) else {
        assert!(
            std::env::var("PLATFORM_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
            "promtool/prometheus not found and PLATFORM_REQUIRE_PROMETHEUS=1 (run scripts/setup.sh)"
        );
        eprintln!("skipped: promtool/prometheus not installed (Debian package `prometheus`)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("devnet");
    let mut procs = Procs(Vec::new());
    let log = std::fs::File::create(dir.path().join("devnet.log")).unwrap();
    procs.0.push(
        Command::new(EXE)
            .args([
                "devnet",
                "--nodes",
                "4",
                "--miners",
                "4",
                "--load",
                "1",
                "--epoch-blocks",
                "20",
            ])
            .arg("--dir")
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let manifest: Value = wait_for(60, "devnet.json", || {
        serde_json::from_str(&std::fs::read_to_string(root.join("devnet.json")).ok()?).ok()
    });
    let apis: Vec<String> = manifest["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["api"].as_str().unwrap().to_string())
        .collect();

    // A real Prometheus scraping every validator each second.
    let port = free_port();
    let targets: Vec<String> = apis.iter().map(|a| format!("'{a}'")).collect();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: platform\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .unwrap();
    let plog = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    procs.0.push(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(plog.try_clone().unwrap())
            .stderr(plog)
            .spawn()
            .unwrap(),
    );
    let prom = format!("127.0.0.1:{port}");
    let query = |q: &str| -> Option<Vec<Value>> {
        let text = platform_node::http::get(
            &prom,
            &format!("/api/v1/query?query={}", urlencode(q)),
            Duration::from_secs(5),
        )
        .ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["data"]["result"].as_array().cloned()
    };

    // Load reaches committed results.
    wait_for(180, "two committed epochs with reports on v0", || {
        let st: Value = serde_json::from_str(
            &platform_node::http::get(&apis[0], "/status", Duration::from_secs(2)).ok()?,
        )
        .ok()?;
        let with_reports = st["committed"]
            .as_array()?
            .iter()
            .filter(|c| c["reports"].as_u64() > Some(0))
            .count();
        (with_reports >= 2).then_some(())
    });

    // promtool on a live node's exposition.
    let text = platform_node::http::get(&apis[0], "/metrics", Duration::from_secs(5)).unwrap();
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Dashboards name only exported metrics; counters only through rate/increase.
    let fams = families(&text);
    let exported = |name: &str| {
        fams.contains_key(name)
            || ["_bucket", "_sum", "_count"].iter().any(|s| {
                name.strip_suffix(s)
                    .is_some_and(|b| fams.get(b).is_some_and(|t| t == "histogram"))
            })
    };
    let mut missing = BTreeSet::new();
    for (path, d) in dashboards() {
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().unwrap() {
                let expr = t["expr"].as_str().unwrap();
                let mut sels = Vec::new();
                selectors(&parser::parse(expr).unwrap(), false, &mut sels);
                assert!(!sels.is_empty(), "{path}: {expr} reads no metric");
                for (name, in_rate) in sels {
                    if !exported(&name) {
                        missing.insert(name.clone());
                    }
                    let counter = fams.get(&name).is_some_and(|t| t == "counter")
                        || name.ends_with("_bucket");
                    assert!(
                        !counter || in_rate,
                        "{path}: {expr}: counter {name} without rate/increase"
                    );
                }
            }
        }
    }

    // The example scrape config in config/ is valid.
    let out = Command::new(&promtool)
        .args(["check", "config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check config:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Prometheus sees every validator up, and the series moving.
    wait_for(60, "all four targets up", || {
        let r = query("up{job=\"platform\"} == 1")?;
        (r.len() == 4).then_some(())
    });
    for q in [
        "sum(increase(platform_engine_evaluations_total[30s])) > 0",
        "sum(increase(platform_consensus_decisions_total[30s])) > 0",
        "sum(increase(platform_net_messages_total[30s])) > 0",
        "count(platform_consensus_height) == 4",
        "sum(rate(platform_engine_evaluation_duration_seconds_bucket[30s])) > 0",
    ] {
        wait_for(60, q, || query(q).filter(|r| !r.is_empty()).map(|_| ()));
    }
}
