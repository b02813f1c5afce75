//! [`RemoteChain`]: a validator's [`Chain`] on the devnet's shared chain server.

use std::time::Duration;

use platform_chain::{BlockInfo, Chain, ChainError, Hyperparams, Metagraph, Neuron, PalletError};
use serde_json::{Value, json};

use super::hex32;

/// Every validator's weights as the chain holds them: (validator uid, its (uid, value) row).
pub type WeightRows = Vec<(u16, Vec<(u16, u16)>)>;

/// A validator's [`Chain`] on the devnet's shared chain.
#[derive(Clone, Debug)]
pub struct RemoteChain {
    addr: String,
    timeout: Duration,
}

impl RemoteChain {
    /// The chain served at `addr` (`host:port`).
    pub fn new(addr: &str, timeout: Duration) -> RemoteChain {
        RemoteChain {
            addr: addr.trim_start_matches("http://").to_string(),
            timeout,
        }
    }

    fn get(&self, path: &str) -> Result<Value, ChainError> {
        let text = crate::http::get(&self.addr, path, self.timeout)
            .map_err(|e| ChainError::Connection(format!("{e:#}")))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| ChainError::Malformed(e.to_string()))?;
        answer(v)
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value, ChainError> {
        let (code, bytes) = crate::http::request(
            &self.addr,
            "POST",
            path,
            body.to_string().as_bytes(),
            self.timeout,
        )
        .map_err(|e| ChainError::Connection(format!("{e:#}")))?;
        if code != 200 {
            return Err(ChainError::Malformed(
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
        answer(serde_json::from_slice(&bytes).map_err(|e| ChainError::Malformed(e.to_string()))?)
    }

    /// Register a neuron with stake (the devnet's `register` command).
    pub fn register(&self, netuid: u16, hotkey: &str, stake: u64) -> Result<u16, ChainError> {
        let v = self.post(
            "/register",
            &json!({"netuid": netuid, "hotkey": hotkey, "stake": stake}),
        )?;
        Ok(v["uid"].as_u64().unwrap_or(0) as u16)
    }

    /// Every validator's weights on mechanism 0: uid → (uid, value).
    pub fn all_weights(&self, netuid: u16) -> Result<WeightRows, ChainError> {
        self.all_mechanism_weights(netuid, 0)
    }

    /// Every validator's weights on one mechanism: uid → (uid, value).
    pub fn all_mechanism_weights(&self, netuid: u16, mecid: u8) -> Result<WeightRows, ChainError> {
        let v = self.get(&format!("/weights/{netuid}/{mecid}"))?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        let ws = e["weights"]
                            .as_array()
                            .map(|p| {
                                p.iter()
                                    .map(|x| {
                                        (
                                            x[0].as_u64().unwrap_or(0) as u16,
                                            x[1].as_u64().unwrap_or(0) as u16,
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        (e["uid"].as_u64().unwrap_or(0) as u16, ws)
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The owner's mechanism count of a subnet (the devnet's `mechanisms` setting).
    pub fn set_mechanism_count(&self, netuid: u16, count: u8) -> Result<(), ChainError> {
        self.post("/mechanisms", &json!({"netuid": netuid, "count": count}))
            .map(|_| ())
    }

    fn call(
        &self,
        mut body: Value,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
    ) -> Result<(), ChainError> {
        body["hotkey"] = json!(hex::encode(hotkey));
        body["netuid"] = json!(netuid);
        body["mecid"] = json!(mecid);
        self.post("/call", &body).map(|_| ())
    }
}

fn answer(v: Value) -> Result<Value, ChainError> {
    if let Some(e) = v.get("error") {
        if let Some(p) = e["pallet"].as_str() {
            return Err(PalletError::from_name(p).map_or_else(
                || ChainError::Dispatch(format!("SubtensorModule::{p}")),
                ChainError::Pallet,
            ));
        }
        return Err(ChainError::Dispatch(
            e["other"].as_str().unwrap_or("").to_string(),
        ));
    }
    Ok(v)
}

fn block_of(v: &Value) -> Result<BlockInfo, ChainError> {
    Ok(BlockInfo {
        number: v["number"]
            .as_u64()
            .ok_or_else(|| ChainError::Malformed("block number".into()))?,
        hash: hex32(&v["hash"])?,
    })
}

fn metagraph_of(v: &Value) -> Result<Metagraph, ChainError> {
    let neurons = v["neurons"]
        .as_array()
        .ok_or_else(|| ChainError::Malformed("neurons".into()))?
        .iter()
        .map(|n| {
            Ok(Neuron {
                uid: n["uid"].as_u64().unwrap_or(0) as u16,
                hotkey: hex32(&n["hotkey"])?,
                stake: n["stake"].as_u64().unwrap_or(0),
                validator_permit: n["permit"].as_bool().unwrap_or(false),
            })
        })
        .collect::<Result<_, ChainError>>()?;
    Ok(Metagraph {
        netuid: v["netuid"].as_u64().unwrap_or(0) as u16,
        block: block_of(&v["block"])?,
        neurons,
        // The simulated chain's stakes (it has no child hotkeys).
        stake_kind: platform_chain::StakeKind::HotkeyAlpha,
    })
}

impl Chain for RemoteChain {
    fn current_block(&self) -> Result<BlockInfo, ChainError> {
        block_of(&self.get("/block")?)
    }

    fn mechanism_count(&self, netuid: u16) -> Result<u8, ChainError> {
        let v = self.get(&format!("/mechanisms/{netuid}"))?;
        v["count"]
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| ChainError::Malformed("mechanism count".into()))
    }

    fn mechanism_weights(
        &self,
        netuid: u16,
        mecid: u8,
        uid: u16,
    ) -> Result<Vec<(u16, u16)>, ChainError> {
        Ok(self
            .all_mechanism_weights(netuid, mecid)?
            .into_iter()
            .find(|(u, _)| *u == uid)
            .map(|(_, w)| w)
            .unwrap_or_default())
    }

    fn metagraph(&self, netuid: u16) -> Result<Metagraph, ChainError> {
        metagraph_of(&self.get(&format!("/metagraph/{netuid}"))?)
    }

    fn metagraph_at(&self, netuid: u16, block: u64) -> Result<Metagraph, ChainError> {
        metagraph_of(&self.get(&format!("/metagraph/{netuid}/{block}"))?)
    }

    fn uid_of(&self, netuid: u16, hotkey: &[u8; 32]) -> Result<Option<u16>, ChainError> {
        let v = self.get(&format!("/uid/{netuid}/{}", hex::encode(hotkey)))?;
        match &v["uid"] {
            Value::Null => Ok(None),
            u => u
                .as_u64()
                .and_then(|u| u16::try_from(u).ok())
                .map(Some)
                .ok_or_else(|| ChainError::Malformed(format!("uid: {u}"))),
        }
    }

    fn hyperparams(&self, netuid: u16) -> Result<Hyperparams, ChainError> {
        let v = self.get(&format!("/hyperparams/{netuid}"))?;
        Ok(Hyperparams {
            tempo: v["tempo"].as_u64().unwrap_or(0) as u16,
            commit_reveal_enabled: v["commit_reveal_enabled"].as_bool().unwrap_or(false),
            commit_reveal_period: v["commit_reveal_period"].as_u64().unwrap_or(1),
            weights_version_key: v["weights_version_key"].as_u64().unwrap_or(0),
            weights_rate_limit: v["weights_rate_limit"].as_u64().unwrap_or(0),
            min_allowed_weights: v["min_allowed_weights"].as_u64().unwrap_or(0) as u16,
            max_weight_limit: v["max_weight_limit"].as_u64().unwrap_or(65535) as u16,
        })
    }

    fn set_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        self.call(
            json!({"call": "set_weights", "uids": uids, "values": values, "version_key": version_key}),
            hotkey,
            netuid,
            mecid,
        )
    }

    fn commit_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        hash: [u8; 32],
    ) -> Result<(), ChainError> {
        self.call(
            json!({"call": "commit_weights", "hash": hex::encode(hash)}),
            hotkey,
            netuid,
            mecid,
        )
    }

    fn commit_timelocked_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        commit: &[u8],
        reveal_round: u64,
        commit_reveal_version: u16,
    ) -> Result<(), ChainError> {
        self.call(
            json!({"call": "commit_timelocked_weights", "commit": hex::encode(commit),
                   "reveal_round": reveal_round, "version": commit_reveal_version}),
            hotkey,
            netuid,
            mecid,
        )
    }

    fn reveal_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        uids: &[u16],
        values: &[u16],
        salt: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        self.call(
            json!({"call": "reveal_weights", "uids": uids, "values": values, "salt": salt,
                   "version_key": version_key}),
            hotkey,
            netuid,
            mecid,
        )
    }
}
