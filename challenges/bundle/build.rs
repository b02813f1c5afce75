//! Builds the example challenge crates for `wasm32-unknown-unknown` (profile `wasm`) with a
//! nested cargo in its own target directory, so `cargo test` alone produces the modules.

use std::path::PathBuf;
use std::process::Command;

const GUESTS: [&str; 3] = [
    "challenge-linear-model",
    "challenge-knapsack",
    "challenge-edit-distance",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("workspace root");
    for dir in [
        "sdk",
        "challenges/linear-model",
        "challenges/knapsack",
        "challenges/edit-distance",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            root.join(dir).join("src").display()
        );
        println!(
            "cargo:rerun-if-changed={}",
            root.join(dir).join("Cargo.toml").display()
        );
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join(".cargo/config.toml").display()
    );
    let target_dir = root.join("target").join("wasm-guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--profile",
            "wasm",
            "--target",
            "wasm32-unknown-unknown",
            "--target-dir",
        ])
        .arg(&target_dir);
    for g in GUESTS {
        cmd.args(["-p", g]);
    }
    // Outer-build settings that must not leak into the guest build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo for the wasm guests");
    if !status.success() {
        panic!(
            "building the example challenges for wasm32 failed; is the target installed? \
             run `rustup target add wasm32-unknown-unknown` (scripts/setup.sh does)"
        );
    }
    let out = target_dir.join("wasm32-unknown-unknown").join("wasm");
    for g in GUESTS {
        let file = out.join(format!("{}.wasm", g.replace('-', "_")));
        assert!(file.exists(), "missing {}", file.display());
        println!(
            "cargo:rustc-env=PLATFORM_WASM_{}={}",
            g.replace('-', "_").to_uppercase(),
            file.display()
        );
    }
}
