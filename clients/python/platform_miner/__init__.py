"""Sign a Platform submission with a Bittensor hotkey and send it to a validator over HTTP.

The byte layouts are those of docs/net-wire.md: a submission payload
(``version | challenge u32 | epoch u64 | len u32 | body``) inside a version-2 envelope
(``2 | topic | author | issued_at_ms u64 | len u32 | payload | signature``) whose signature
is ``Keypair.sign(DOMAIN + every byte before the signature)``.
"""

import json
import struct
import time
import urllib.error
import urllib.request

__all__ = ["DOMAIN", "submission_payload", "envelope", "post", "submit"]

DOMAIN = b"platform/net/envelope/v2:"
_ENVELOPE_V2 = 2
_SUBMISSION_VERSION = 1
_TOPIC_SUBMISSIONS = 1


def submission_payload(challenge: int, epoch: int, body: bytes) -> bytes:
    """The submission, as the payload of its envelope."""
    return bytes([_SUBMISSION_VERSION]) + struct.pack("<IQI", challenge, epoch, len(body)) + body


def envelope(keypair, payload: bytes, issued_at_ms: int = None) -> bytes:
    """A version-2 envelope on the submissions topic, signed by ``keypair`` (a
    ``bittensor_wallet.Keypair``)."""
    if issued_at_ms is None:
        issued_at_ms = int(time.time() * 1000)
    author = bytes(keypair.public_key)
    if len(author) != 32:
        raise ValueError("an sr25519 hotkey is needed")
    signed = (
        bytes([_ENVELOPE_V2, _TOPIC_SUBMISSIONS])
        + author
        + struct.pack("<QI", issued_at_ms, len(payload))
        + payload
    )
    signature = bytes(keypair.sign(DOMAIN + signed))
    return signed + signature


def post(url: str, envelope_bytes: bytes, timeout: float = 15.0) -> dict:
    """POST an envelope to ``url``/submission; the validator's answer,
    ``{"accepted": id}`` or ``{"refused": reason}``."""
    request = urllib.request.Request(
        url.rstrip("/") + "/submission",
        data=envelope_bytes,
        method="POST",
        headers={"Content-Type": "application/octet-stream"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return json.loads(body)
        except ValueError:
            return {"refused": f"HTTP {e.code}: {body[:200]!r}"}


def submit(url: str, keypair, challenge: int, epoch: int, body: bytes, timeout: float = 15.0) -> dict:
    """Build, sign and send one submission; the validator's answer."""
    return post(url, envelope(keypair, submission_payload(challenge, epoch, body)), timeout)
