//! The example challenges as the engine sees them (wasm bytes built by `build.rs`) and as
//! native code (the same scoring functions), with payload generators for tests and bench.

use platform_sdk::Evaluation;

/// One example challenge.
#[derive(Clone, Copy, Debug)]
pub struct Example {
    /// Stable id used in tests, bench and the devnet.
    pub id: u32,
    /// Short name.
    pub name: &'static str,
    /// The wasm32 module (ABI v1).
    pub wasm: &'static [u8],
    /// The same scoring code, compiled natively.
    pub native: fn(&[u8]) -> Evaluation,
    /// A plausible miner payload for a seed.
    pub sample_payload: fn(u64) -> Vec<u8>,
}

/// Every example challenge, cheapest first.
pub const EXAMPLES: [Example; 3] = [
    Example {
        id: 1,
        name: "knapsack",
        wasm: include_bytes!(env!("PLATFORM_WASM_CHALLENGE_KNAPSACK")),
        native: challenge_knapsack::evaluate,
        sample_payload: challenge_knapsack::sample_payload,
    },
    Example {
        id: 2,
        name: "linear-model",
        wasm: include_bytes!(env!("PLATFORM_WASM_CHALLENGE_LINEAR_MODEL")),
        native: challenge_linear_model::evaluate,
        sample_payload: challenge_linear_model::sample_payload,
    },
    Example {
        id: 3,
        name: "edit-distance",
        wasm: include_bytes!(env!("PLATFORM_WASM_CHALLENGE_EDIT_DISTANCE")),
        native: challenge_edit_distance::evaluate,
        sample_payload: challenge_edit_distance::sample_payload,
    },
];

/// The example with this name.
pub fn by_name(name: &str) -> Option<&'static Example> {
    EXAMPLES.iter().find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_wasm_with_the_abi_exports() {
        for e in EXAMPLES {
            assert_eq!(&e.wasm[..4], b"\0asm", "{}", e.name);
            for export in ["platform_abi_v1", "platform_alloc", "platform_evaluate"] {
                assert!(
                    e.wasm.windows(export.len()).any(|w| w == export.as_bytes()),
                    "{} lacks {export}",
                    e.name
                );
            }
        }
    }
}
