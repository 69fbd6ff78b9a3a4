"""An independent reader of the backbone's Avro data, with fastavro and nothing of ours.

It knows only what docs/DATA.md says: the .avsc files, and the framing (Avro single-object
encoding, or the Confluent wire format). test/integration/independent-decoder.test.ts runs it.

  decode_rt.py records MANIFEST.json
      MANIFEST: {"schemas": {kind: path of its .avsc}, "records": [{"id", "kind", "value_b64"}]}
      prints {"records": [{"id", "framing", "header_fingerprint", "schema_fingerprint", "value"}]}
  decode_rt.py container FILE.avro
      prints {"schema": the writer schema in the file header, "records": [...]}

Values are printed as JSON: timestamp-millis fields (which fastavro reads as datetimes) go back
to milliseconds since the epoch, and a branch of a union of several records is printed as
{"branch": full name, "value": record} (fastavro's return_record_name).
"""

import base64
import datetime
import io
import json
import struct
import sys

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def plain(v):
    if isinstance(v, datetime.datetime):
        return (v - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str):
        return {"branch": v[0], "value": plain(v[1])}
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, bytes):
        return base64.b64encode(v).decode("ascii")
    return v


def decode_records(manifest_path):
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    schemas = {}
    for kind, path in manifest["schemas"].items():
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        schemas[kind] = {
            "parsed": fastavro.parse_schema(raw),
            # The Avro spec's 64-bit Rabin fingerprint of the Parsing Canonical Form, as fastavro
            # computes it: hex of the 8 bytes in the order the single-object header holds them.
            "fingerprint": fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO"),
        }
    out = []
    for rec in manifest["records"]:
        data = base64.b64decode(rec["value_b64"])
        schema = schemas[rec["kind"]]
        if data[:2] == b"\xc3\x01":
            framing = "single-object"
            header_fp = data[2:10].hex()
            body = data[10:]
        elif data[:1] == b"\x00":
            framing = "confluent"
            header_fp = None
            (schema_id,) = struct.unpack(">I", data[1:5])
            framing = f"confluent:{schema_id}"
            body = data[5:]
        else:
            raise SystemExit(f"record {rec['id']}: unknown framing {data[:2].hex()}")
        buf = io.BytesIO(body)
        value = fastavro.schemaless_reader(
            buf, schema["parsed"], None, return_record_name=True, return_record_name_override=True
        )
        if buf.read(1):
            raise SystemExit(f"record {rec['id']}: bytes after the Avro body")
        out.append(
            {
                "id": rec["id"],
                "framing": framing,
                "header_fingerprint": header_fp,
                "schema_fingerprint": schema["fingerprint"],
                "value": plain(value),
            }
        )
    json.dump({"fastavro": fastavro.__version__, "records": out}, sys.stdout, ensure_ascii=False)


def decode_container(path):
    with open(path, "rb") as f:
        r = fastavro.reader(f, return_record_name=True, return_record_name_override=True)
        records = [plain(rec) for rec in r]
        schema = r.writer_schema
    json.dump({"schema": schema, "records": records}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("records", "container"):
        raise SystemExit(__doc__)
    (decode_records if sys.argv[1] == "records" else decode_container)(sys.argv[2])
