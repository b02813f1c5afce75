"""Decode a signed extrinsic with `scalecodec` and the runtime's V14 metadata, rebuild its
signing payload from the decoded fields, and verify the sr25519 signature with
`py-sr25519-bindings`. None of this code path is ours.

stdin: {"metadata": path, "extrinsic": hex, "genesis_hash": hex, "spec_version": n,
        "transaction_version": n}
stdout: JSON with the decoded fields, the rebuilt payload and whether the signature verifies.
"""

import hashlib
import json
import sys

import sr25519
from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset


def main() -> None:
    req = json.load(sys.stdin)
    rc = RuntimeConfigurationObject()
    rc.update_type_registry(load_type_registry_preset("core"))
    with open(req["metadata"], "rb") as f:
        md = rc.create_scale_object("MetadataVersioned", data=ScaleBytes(f.read()))
    md.decode()
    rc.add_portable_registry(md)

    ext = rc.create_scale_object(
        "Extrinsic", data=ScaleBytes(bytes.fromhex(req["extrinsic"])), metadata=md
    )
    v = ext.decode()

    call = rc.create_scale_object("Call", metadata=md)
    call_bytes = call.encode(
        {"call_module": v["call"]["call_module"], "call_function": v["call"]["call_function"],
         "call_args": {a["name"]: a["value"] for a in v["call"]["call_args"]}}
    )
    # The signing payload, rebuilt from the metadata's own list of transaction extensions:
    # call | each extension's explicit part | each extension's implicit part.
    genesis = "0x" + req["genesis_hash"]
    explicit = {
        "CheckMortality": v["era"],
        "CheckNonce": v["nonce"],
        "ChargeTransactionPayment": v.get("tip", 0),
        "CheckMetadataHash": v.get("mode"),
    }
    implicit = {
        "CheckSpecVersion": req["spec_version"],
        "CheckTxVersion": req["transaction_version"],
        "CheckGenesis": genesis,
        "CheckMortality": genesis,  # immortal: the genesis hash
        "CheckMetadataHash": None,
    }

    def enc(type_string, value):
        obj = rc.create_scale_object(type_string, metadata=md)
        for candidate in (value, {}, ()):
            try:
                return bytes(obj.encode(candidate).data)
            except Exception:
                obj = rc.create_scale_object(type_string, metadata=md)
        raise ValueError(f"cannot encode {type_string}")

    exts = md.get_signed_extensions()
    data = bytes(call_bytes.data)
    for name, e in exts.items():
        data += enc(e["extrinsic"], explicit.get(name))
    for name, e in exts.items():
        data += enc(e["additional_signed"], implicit.get(name))
    signed = hashlib.blake2b(data, digest_size=32).digest() if len(data) > 256 else data

    address = v["address"]
    public = bytes.fromhex(address[2:] if address.startswith("0x") else address)
    sig_field = v["signature"]
    sig_hex = sig_field["Sr25519"] if isinstance(sig_field, dict) else sig_field
    signature = bytes.fromhex(sig_hex[2:])
    json.dump(
        {
            "address": address,
            "call_module": v["call"]["call_module"],
            "call_function": v["call"]["call_function"],
            "args": {a["name"]: a["value"] for a in v["call"]["call_args"]},
            "nonce": v["nonce"],
            "era": str(v["era"]),
            "payload": data.hex(),
            "signature_valid": sr25519.verify(signature, signed, public),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
