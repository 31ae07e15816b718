"""Singer messages on stdout: one JSON object per line, written by one writer only."""
import functools
import sys
import time

import msgspec

from .errors import TargetGone
from .pages import encode, encode_into


def time_extracted():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


class Envelope(msgspec.Struct, frozen=True):
    """The RECORD message around one stream's rows: the one place a RECORD line is put together,
    made once per run for each stream (envelope()). Plain bytes, so a decode helper process is
    handed the envelope itself."""
    head: bytes

    def lines(self, rows, extracted=None):
        """RECORD messages for rows, as newline-terminated bytes (a bytearray) ready to write."""
        # the envelope is the same for every row; rows are encoded straight into one buffer, which
        # costs half of joining a page's 1,000 encoded rows
        head = self.head
        tail = b',"time_extracted":' + encode(extracted or time_extracted()) + b'}\n'
        lines = bytearray()
        for row in rows:
            lines += head
            encode_into(row, lines, -1)
            lines += tail
        return lines


_VERSIONS = {}      # stream name -> the table version its RECORDs carry this run (a full read)


def read_in_full(versions):
    """{stream name: version}: the RECORDs of each stream carry its version from now on, those of
    every other none (Singer's table versions: a target keeps only the rows of the version an
    ACTIVATE_VERSION names)."""
    _VERSIONS.clear()
    _VERSIONS.update(versions)
    envelope.cache_clear()


@functools.cache
def envelope(stream_name):
    """The stream's RECORD envelope (one per stream for the run)."""
    version = _VERSIONS.get(stream_name)
    tagged = b',"version":' + encode(version) if version is not None else b""
    return Envelope(b'{"type":"RECORD","stream":' + encode(stream_name) + tagged + b',"record":')


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
        self.write(encode(message) + b"\n")

    def schema(self, stream, schema, key_properties, bookmark_properties=None):
        message = {"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": list(key_properties)}
        if bookmark_properties:
            message["bookmark_properties"] = list(bookmark_properties)
        self.message(message)

    def activate_version(self, stream, version):
        self.message({"type": "ACTIVATE_VERSION", "stream": stream, "version": version})

    def state(self, value):
        self.message({"type": "STATE", "value": value})
        self.flush()

    def flush(self):
        try:
            self._out.flush()
        except BrokenPipeError:
            raise TargetGone("the target stopped reading stdout (broken pipe)") from None
