"""The drand round the Bittensor SDK encrypts a timelocked weight commit to: bittensor-drand's
own `get_encrypted_commit_v2` (the stateful epoch model, what `SetWeights` calls with chain
state read at one block), for each state given.

stdin: [{"last_epoch_block", "pending_epoch_at", "subnet_epoch_index", "tempo",
         "blocks_since_last_step", "current_block", "reveal_period", "block_time"}]
stdout: [{"round": n, "before": unix seconds, "after": unix seconds} | {"error": "..."}]
(`before`/`after` bracket the call: the SDK reads the clock inside it.)
"""

import json
import sys
import time

from bittensor_drand import get_encrypted_commit_v2


def main() -> None:
    out = []
    for c in json.load(sys.stdin):
        before = time.time()
        try:
            _, round_ = get_encrypted_commit_v2(
                [0], [65535], 0,
                c["last_epoch_block"], c["pending_epoch_at"], c["subnet_epoch_index"],
                c["tempo"], c["blocks_since_last_step"], c["current_block"],
                c["reveal_period"], c["block_time"], bytes(32),
            )
        except Exception as e:  # a schedule that never reveals
            out.append({"error": str(e)})
            continue
        out.append({"round": round_, "before": before, "after": time.time()})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
