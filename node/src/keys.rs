//! `platform keys`: create and inspect hotkeys, in Bittensor's hotkey-file format.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use platform_keys::{Keypair, ss58_encode};

#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a new hotkey file (refuses to overwrite one).
    New {
        /// Where to write it (e.g. ~/.bittensor/wallets/W/hotkeys/H).
        path: PathBuf,
    },
    /// Show a hotkey file's SS58 address and public key (never the secret).
    Inspect {
        /// The hotkey file.
        path: PathBuf,
    },
}

pub fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::New { path } => {
            let mut seed = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed))
                .context("reading /dev/urandom")?;
            let kp = Keypair::from_seed(&seed);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .with_context(|| format!("creating {} (it must not exist)", path.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            f.write_all(kp.to_hotkey_file_json().as_bytes())?;
            f.sync_all()?;
            println!("{}", ss58_encode(&kp.public()));
            Ok(())
        }
        KeysCommand::Inspect { path } => {
            let kp = Keypair::from_hotkey_file(&path)?;
            println!("ss58:       {}", ss58_encode(&kp.public()));
            println!("public key: 0x{}", hex::encode(kp.public()));
            Ok(())
        }
    }
}
