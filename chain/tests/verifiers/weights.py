"""Weight conforming by the Bittensor Python SDK itself (bittensor 11, intents.weights).

Reads JSON cases from stdin: [{"uids": [...], "weights": [...], "max_weight_limit": N,
"self_uid": U or null}], prints [[uids, values] | {"error": "..."}] computed by the SDK's
own `_conform` (clip to the max weight limit, max-upscale, round half to even, zeros
dropped). Weights are Python ints, as our integer weights are.
"""

import json
import sys

from bittensor.intents.weights import _conform, _Preflight


def main() -> None:
    cases = json.load(sys.stdin)
    out = []
    for c in cases:
        pre = _Preflight(
            uid=c["self_uid"] if c["self_uid"] is not None else 65535,
            commit_reveal=False,
            min_allowed_weights=0,
            max_weight_limit=c["max_weight_limit"],
        )
        try:
            uids, vals = _conform(list(c["uids"]), list(c["weights"]), pre, netuid=1)
            out.append([uids, vals])
        except Exception as e:  # the SDK raises on all-zero input
            out.append({"error": str(e)})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
