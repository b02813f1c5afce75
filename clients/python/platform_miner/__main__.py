"""``platform-miner-py``: sign a payload with a btcli hotkey file and submit it over HTTP."""

import argparse
import sys

from . import submit


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="platform-miner-py", description=__doc__)
    p.add_argument("--to", required=True, help="the validator's API, e.g. http://127.0.0.1:9100")
    p.add_argument("--hotkey-file", required=True, help="a btcli hotkey file")
    p.add_argument("--challenge", type=int, required=True)
    p.add_argument("--epoch", type=int, required=True)
    p.add_argument("--payload", required=True, help="the file holding the payload")
    p.add_argument("--timeout", type=float, default=15.0)
    a = p.parse_args(argv)
    from bittensor_wallet import Keyfile

    try:
        keypair = Keyfile(a.hotkey_file).keypair
        with open(a.payload, "rb") as f:
            body = f.read()
        answer = submit(a.to, keypair, a.challenge, a.epoch, body, a.timeout)
    except Exception as e:  # one line, no traceback: a command line's failure
        print(f"platform-miner-py: {e}", file=sys.stderr)
        return 1
    if "accepted" in answer:
        print(answer["accepted"])
        return 0
    print(f"platform-miner-py: the validator refused it: {answer.get('refused')}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
