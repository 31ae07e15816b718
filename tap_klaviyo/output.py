"""Singer messages on stdout: one JSON object per line, written by one writer only."""
import json
import sys
import time

import orjson

from .errors import TargetGone


def _dumps(message):
    try:
        return orjson.dumps(message)
    except TypeError:
        # integers wider than 64 bits (event_properties may hold them) are beyond orjson
        return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def time_extracted():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def record_lines(stream, rows, extracted):
    """RECORD messages for rows, as newline-terminated bytes ready to write."""
    if not rows:
        return b""
    lines = [_dumps({"type": "RECORD", "stream": stream, "record": row, "time_extracted": extracted})
             for row in rows]
    lines.append(b"")
    return b"\n".join(lines)


class MessageWriter:
    def __init__(self, out=None):
        self._out = out if out is not None else sys.stdout.buffer

    def write(self, data):
        if not data:
            return
        try:
            self._out.write(data)
        except BrokenPipeError:
            raise TargetGone("the target stopped reading stdout (broken pipe)") from None

    def message(self, message):
        self.write(_dumps(message) + b"\n")

    def schema(self, stream, schema, key_properties, bookmark_properties=None):
        message = {"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": list(key_properties)}
        if bookmark_properties:
            message["bookmark_properties"] = list(bookmark_properties)
        self.message(message)

    def state(self, value):
        self.message({"type": "STATE", "value": value})
        self.flush()

    def flush(self):
        try:
            self._out.flush()
        except BrokenPipeError:
            raise TargetGone("the target stopped reading stdout (broken pipe)") from None
