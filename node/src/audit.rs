//! `platform audit export`: a node's audit log (one record per evaluation it ran: epoch,
//! challenge, module, input and submission hashes, outcome, score, fuel, host calls) as JSON
//! Lines, for tools that check what a validator did.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::store::{AuditRecord, Store};

/// `platform audit …`.
#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Write the audit log as JSON Lines on stdout (run it on a stopped node's data_dir, or
    /// a copy of its node.redb: a running node holds the file).
    Export(ExportArgs),
}

/// `platform audit export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The node's data directory (its `node.redb`).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Only records from this sequence number on.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Only records of this epoch.
    #[arg(long)]
    pub epoch: Option<u64>,
}

/// One record as a JSON object.
pub fn record_json(seq: u64, r: &AuditRecord) -> serde_json::Value {
    let outcome = usize::from(r.outcome)
        .checked_sub(1)
        .and_then(|i| platform_engine::Outcome::LABELS.get(i))
        .copied()
        .unwrap_or("unknown");
    serde_json::json!({
        "seq": seq,
        "epoch": r.epoch,
        "challenge": r.challenge,
        "module": hex::encode(r.module_hash),
        "input": hex::encode(r.input_hash),
        "submission": hex::encode(r.submission),
        "outcome": outcome,
        "score": r.score,
        "fuel": r.fuel,
        "host_calls": r.host_calls,
    })
}

/// Write the selected records to `out`, one JSON object a line; how many were written.
pub fn export(args: &ExportArgs, out: &mut dyn Write) -> anyhow::Result<u64> {
    let path = args.data_dir.join("node.redb");
    anyhow::ensure!(
        path.is_file(),
        "{} not found: give the node's data_dir",
        path.display()
    );
    let store = crate::boot::open_store(&path, Store::open)
        .context("a running node holds node.redb: stop it, or export from a copy")?;
    let mut n = 0;
    store.audit_each(args.from, |seq, r| {
        if args.epoch.is_none_or(|e| e == r.epoch) {
            serde_json::to_writer(&mut *out, &record_json(seq, r))?;
            out.write_all(b"\n")?;
            n += 1;
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(n)
}

/// Run `platform audit …`.
pub fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Export(args) => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            export(&args, &mut out)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: u64, outcome: u8) -> AuditRecord {
        AuditRecord {
            epoch,
            challenge: 2,
            module_hash: [1; 32],
            input_hash: [2; 32],
            submission: [3; 32],
            outcome,
            score: 5_000,
            fuel: 77,
            host_calls: 1,
        }
    }

    #[test]
    fn exports_the_stored_log_as_json_lines_filtered_by_epoch_and_sequence() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(&dir.path().join("node.redb")).unwrap();
            for (i, (epoch, outcome)) in [(1, 1), (1, 4), (2, 2)].into_iter().enumerate() {
                store
                    .record_result(epoch, &[i as u8; 32], &[0; 128], &record(epoch, outcome))
                    .unwrap();
            }
        }
        let export_with = |from, epoch| {
            let mut out = Vec::new();
            let args = ExportArgs {
                data_dir: dir.path().to_path_buf(),
                from,
                epoch,
            };
            let n = export(&args, &mut out).unwrap();
            let lines: Vec<serde_json::Value> = String::from_utf8(out)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines.len() as u64, n);
            lines
        };
        let all = export_with(0, None);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0]["outcome"], "scored");
        assert_eq!(all[1]["outcome"], "trap");
        assert_eq!(all[2]["outcome"], "out_of_fuel");
        assert_eq!(all[0]["module"], hex::encode([1; 32]));
        assert_eq!(all[0]["fuel"], 77);
        assert_eq!(export_with(0, Some(1)).len(), 2);
        let seq1 = all[1]["seq"].as_u64().unwrap();
        assert_eq!(export_with(seq1, None).len(), 2);
        let e = export(
            &ExportArgs {
                data_dir: dir.path().join("nowhere"),
                from: 0,
                epoch: None,
            },
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not found"), "{e}");
    }
}
