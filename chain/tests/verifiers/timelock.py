"""Timelock commits by `bittensor-drand` (and `scalecodec` for the payload).

`decrypt`: stdin {"commit": hex, "reveal_round": n, "signature": hex}; decrypts our commit
with the round's drand signature and decodes the plaintext as the pallet's
`WeightsTlockPayload`; stdout {"hotkey": hex, "uids": [...], "values": [...], "version_key": n}.
bittensor-drand's `decrypt_with_signature` takes its own `encrypt_at_round` framing: the
compressed ciphertext as a SCALE `Vec<u8>`, then the round as u64 little endian. The chain's
commit (as its `get_encrypted_commit_v2` makes it for `commit_timelocked_weights`) is the
compressed ciphertext alone, so it is framed here with scalecodec.

`encrypt`: stdin {"plaintext": hex, "reveal_round": n}; stdout {"commit": hex}, the chain
commit bittensor-drand makes for those bytes (unframed).
"""

import json
import sys

from bittensor_drand import decrypt_with_signature, encrypt_at_round
from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset


def registry() -> RuntimeConfigurationObject:
    rc = RuntimeConfigurationObject()
    rc.update_type_registry(load_type_registry_preset("core"))
    return rc


def encrypt(req) -> None:
    round_ = req["reveal_round"]
    framed, r = encrypt_at_round(bytes.fromhex(req["plaintext"]), round_)
    assert r == round_ and framed[-8:] == round_.to_bytes(8, "little"), "unexpected framing"
    vec = registry().create_scale_object("Vec<u8>", data=ScaleBytes(framed[:-8]))
    commit = vec.decode(check_remaining=True)
    json.dump({"commit": commit[2:] if isinstance(commit, str) else bytes(commit).hex()}, sys.stdout)


def main() -> None:
    req = json.load(sys.stdin)
    if sys.argv[1:] == ["encrypt"]:
        return encrypt(req)
    rc = registry()
    vec = bytes(rc.create_scale_object("Vec<u8>").encode(bytes.fromhex(req["commit"])).data)
    framed = vec + req["reveal_round"].to_bytes(8, "little")
    plain = decrypt_with_signature(framed, req["signature"])
    rc.update_type_registry(
        {
            "types": {
                "WeightsTlockPayload": {
                    "type": "struct",
                    "type_mapping": [
                        ["hotkey", "Vec<u8>"],
                        ["uids", "Vec<u16>"],
                        ["values", "Vec<u16>"],
                        ["version_key", "u64"],
                    ],
                }
            }
        }
    )
    obj = rc.create_scale_object("WeightsTlockPayload", data=ScaleBytes(bytes(plain)))
    v = obj.decode(check_remaining=True)
    hotkey = v["hotkey"]
    json.dump(
        {
            "hotkey": hotkey[2:] if isinstance(hotkey, str) else bytes(hotkey).hex(),
            "uids": v["uids"],
            "values": v["values"],
            "version_key": v["version_key"],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
