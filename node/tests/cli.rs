//! The `platform` binary's key commands, run as a process.

use std::process::Command;

fn platform(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_platform"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn keys_new_then_inspect_round_trips_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallets/w/hotkeys/h");
    let p = path.to_str().unwrap();
    let out = platform(&["keys", "new", p]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ss58 = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(ss58.len(), 48, "{ss58}");

    let out = platform(&["keys", "inspect", p]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&ss58), "{text}");
    assert!(!text.contains("secret"), "inspect never prints the secret");
    let kp = platform_keys::Keypair::from_hotkey_file(&path).unwrap();
    assert_eq!(platform_keys::ss58_encode(&kp.public()), ss58);

    let again = platform(&["keys", "new", p]);
    assert!(
        !again.status.success(),
        "an existing key is never overwritten"
    );
    assert_eq!(
        platform_keys::Keypair::from_hotkey_file(&path)
            .unwrap()
            .public(),
        kp.public()
    );

    std::fs::write(&path, "{not json").unwrap();
    let bad = platform(&["keys", "inspect", p]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a Bittensor hotkey file"));
}

#[test]
fn help_lists_the_commands() {
    let out = platform(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in ["keys", "submit"] {
        assert!(text.contains(cmd), "{text}");
    }
}
