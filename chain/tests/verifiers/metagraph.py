"""A `SubnetInfoRuntimeApi::get_metagraph` answer as the Bittensor SDK's own codec writes it:
bt-decode (what the SDK decodes runtime-API answers with) encodes an
`Option<pallet_subtensor::rpc_info::metagraph::Metagraph<AccountId32>>` typed by the runtime's
type registry, which scalecodec reads from the metadata file given. Every field not given is
its type's zero; the answer is decoded back by bt-decode and checked before it is printed.

argv[1]: a runtime metadata file (V15 or V16: the type registry comes first in both).
stdin: {"netuid": n, "block": n, "neurons": [{"hotkey": hex32, "permit": bool, "alpha_stake": n}]}
stdout: {"some": hex of Some(metagraph), "none": hex of None}
"""

import json
import sys

import bt_decode
from scalecodec.base import RuntimeConfiguration, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset

PATH = ["pallet_subtensor", "rpc_info", "metagraph", "Metagraph"]


def registry(path: str) -> dict:
    data = open(path, "rb").read()
    assert data[:4] == b"meta" and data[4] in (15, 16), "not V15/V16 metadata"
    rc = RuntimeConfiguration()
    rc.update_type_registry(load_type_registry_preset("core"))
    obj = rc.create_scale_object("PortableRegistry", data=ScaleBytes(data[5:]))
    return obj.decode(check_remaining=False)


def zero(types: dict, tid: int):
    """The zero value of type `tid`, in the shape bt-decode encodes."""
    t = types[tid]
    if t.get("path") == ["Option"]:
        return None
    kind, d = next(iter(t["def"].items()))
    if kind == "composite":
        fields = d["fields"]
        if fields and fields[0]["name"] is None:
            return tuple(zero(types, f["type"]) for f in fields)
        return {f["name"]: zero(types, f["type"]) for f in fields}
    if kind == "sequence":
        return []
    if kind == "array":
        return [zero(types, d["type"])] * d["len"]
    if kind == "tuple":
        return tuple(zero(types, x) for x in d)
    if kind == "primitive":
        return {"bool": False, "str": ""}.get(d, 0)
    if kind == "compact":
        return 0
    if kind == "variant":
        v = d["variants"][0]
        if not v["fields"]:
            return v["name"]
        return {v["name"]: tuple(zero(types, f["type"]) for f in v["fields"])}
    raise ValueError(f"type {tid}: {kind}")


def main() -> None:
    reg_json = registry(sys.argv[1])
    types = {t["id"]: t["type"] for t in reg_json["types"]}
    reg = bt_decode.PortableRegistry.from_json(json.dumps(reg_json))
    (mg_id,) = [i for i, t in types.items() if t.get("path") == PATH]
    (opt_id,) = [
        i
        for i, t in types.items()
        if t.get("path") == ["Option"] and t["params"][0]["type"] == mg_id
    ]
    req = json.load(sys.stdin)
    value = zero(types, mg_id)
    value["netuid"] = req["netuid"]
    value["block"] = req["block"]
    value["hotkeys"] = [(list(bytes.fromhex(n["hotkey"])),) for n in req["neurons"]]
    value["coldkeys"] = value["hotkeys"]
    value["validator_permit"] = [n["permit"] for n in req["neurons"]]
    value["active"] = [True for _ in req["neurons"]]
    value["alpha_stake"] = [n["alpha_stake"] for n in req["neurons"]]
    value["total_stake"] = [n["alpha_stake"] for n in req["neurons"]]
    value["num_uids"] = len(req["neurons"])
    # A struct is its fields one after another. bt-decode 0.8 cannot encode an i128 (the
    # I96F32 `moving_price`), so that field alone is scalecodec's.
    parts = []
    for f in types[mg_id]["def"]["composite"]["fields"]:
        if types[f["type"]].get("path", [])[-1:] == ["FixedI128"]:
            rc = RuntimeConfiguration()
            parts.append(bytes(rc.create_scale_object("i128").encode(0).data))
        else:
            parts.append(bytes(bt_decode.encode(f"scale_info::{f['type']}", reg, value[f["name"]])))
    some = b"\x01" + b"".join(parts)
    back = bt_decode.decode(f"scale_info::{opt_id}", reg, some)
    assert back["netuid"] == req["netuid"] and back["block"] == req["block"]
    assert [bytes(h[0]).hex() for h in back["hotkeys"]] == [n["hotkey"] for n in req["neurons"]]
    assert list(back["validator_permit"]) == [n["permit"] for n in req["neurons"]]
    assert list(back["alpha_stake"]) == [n["alpha_stake"] for n in req["neurons"]]
    none = b"\x00"
    assert bt_decode.decode(f"scale_info::{opt_id}", reg, none) is None
    json.dump({"some": some.hex(), "none": none.hex()}, sys.stdout)


if __name__ == "__main__":
    main()
