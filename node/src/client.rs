//! The client side of a node's API, shared by the command line and the devnet: an owner's
//! signed registry change posted to a validator.

use std::time::Duration;

use parity_scale_codec::Encode as _;
use platform_keys::Keypair;

use crate::msg::ChallengePost;
use crate::registry::{Change, Scheme, SignedChange};

/// Send a change (and module), signed by the owner as `scheme` says, to a validator's API.
pub fn post_change(
    node: &str,
    owner: &Keypair,
    scheme: Scheme,
    change: Change,
    nonce: u64,
    module: Option<Vec<u8>>,
) -> anyhow::Result<String> {
    let sc = SignedChange::sign_as(scheme, owner, change, nonce);
    let body = ChallengePost {
        change: sc.encode(),
        module,
    }
    .encode();
    let (code, reply) =
        crate::http::request(node, "POST", "/challenge", &body, Duration::from_secs(60))?;
    let text = String::from_utf8_lossy(&reply).trim().to_string();
    anyhow::ensure!(code == 200, "{node} refused the change: {text}");
    Ok(text)
}
