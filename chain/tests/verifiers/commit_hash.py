"""The commit-reveal v2 hash of a (mechanism) weight commit, computed with `scalecodec`'s
SCALE encoders and Python's blake2b, over the storage index the Bittensor SDK uses for a
mechanism (`mechid * GLOBAL_MAX_SUBNET_COUNT + netuid`, bittensor.intents.weights, with the
SDK's own constant).

stdin: [{"hotkey": hex, "netuid": n, "mecid": m, "uids": [...], "values": [...],
         "salt": [...], "version_key": k}]
stdout: [{"index": storage index, "hash": hex}]
"""

import hashlib
import json
import sys

from bittensor.settings import GLOBAL_MAX_SUBNET_COUNT
from scalecodec.base import RuntimeConfigurationObject
from scalecodec.type_registry import load_type_registry_preset


def main() -> None:
    rc = RuntimeConfigurationObject()
    rc.update_type_registry(load_type_registry_preset("core"))

    def enc(type_string, value):
        return bytes(rc.create_scale_object(type_string).encode(value).data)

    out = []
    for c in json.load(sys.stdin):
        index = c["mecid"] * GLOBAL_MAX_SUBNET_COUNT + c["netuid"]
        data = (
            enc("[u8; 32]", "0x" + c["hotkey"])
            + enc("u16", index)
            + enc("Vec<u16>", c["uids"])
            + enc("Vec<u16>", c["values"])
            + enc("Vec<u16>", c["salt"])
            + enc("u64", c["version_key"])
        )
        out.append({"index": index, "hash": hashlib.blake2b(data, digest_size=32).hexdigest()})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
