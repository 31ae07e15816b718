"""Where a page's body becomes rows: in the tap's process, or in helper processes beside it.

Turning an events page into RECORD lines (parse, map, serialize) is the tap's CPU-bound work, 15 to
30 ms a page of 1,000 events. Python threads take turns on one core, so once the network has
delivered, a sync waits on that core while the machine's others idle. Helper processes (config
decode_processes, see engine.decode_helpers), forked at the start of a sync before any thread or
connection exists, decode pages on those cores: a worker thread hands a page's body to a free
helper, or decodes it here when this process's turn is free first.

A page can go to a helper only when its mapping is portable: a module-level function with
picklable arguments (Mapping). The range tasks' are (events, profiles: tasks/ranges.py); every
other page is decoded here. A helper costs CPU (the transfer both ways, its own memory of person
objects): on the benchmark, +9-17% for 1-8% less wall clock on the sparse account and 2-54% less on
the dense day (the machine's noise is of that order). A helper that dies costs nothing but speed:
its page, and every page after it, is decoded here.
"""
import gc
import logging
import os
import pickle
import signal
import struct
import sys
import threading
import time

import msgspec

from . import pages, watchdog

LOGGER = logging.getLogger("tap_klaviyo")
_SIZES = struct.Struct("<QQ")       # a job: its pickled spec's size, its body's size
_SIZE = struct.Struct("<Q")         # an outcome: its pickle's size
_PIPE_BYTES = 1 << 20       # a page's body in one or two writes, not thirty of the default 64 KB


class NotAnswered(Exception):
    """A 200 whose JSON is no JSON:API document (no data member)."""


class Unmappable(Exception):
    """The mapping failed on a parsed page; args[0] is what it raised."""


class Mapping(msgspec.Struct, frozen=True):
    """function(document, *arguments), which may run in a helper process: function is defined at
    module level and arguments pickle."""
    function: object
    arguments: tuple = ()


class PageMapper(msgspec.Struct, frozen=True):
    """What a paged read does with each page, split so that the costly part may run in a helper:
    mapping() gives the Mapping for the next page (its arguments may change from page to page),
    finish(mapped, is_last_page) runs in the reading thread on what it returned."""
    mapping: object
    finish: object


def with_next_link(document, function, *arguments):
    """(the page's links.next, function(document, *arguments)): a PageMapper's mapping, as run."""
    return pages.next_link(document), function(document, *arguments)


def parse(body, shape=None):
    """The document of a 200's body: a pages type when shape is given, else dicts and lists."""
    if shape is not None:
        document = pages.decode_typed(body, shape)
        answered = document.data is not None
    else:
        document = pages.decode(body)
        answered = isinstance(document, dict) and isinstance(document.get("data"), (list, dict))
    if not answered:
        raise NotAnswered()
    return document


def parse_and_map(body, shape, function):
    """function(document) of the parsed body; the document when function is None."""
    document = parse(body, shape)
    if function is None:
        return document
    try:
        return function(document)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise Unmappable(exc) from None


def _apply(mapping):
    return lambda document: mapping.function(document, *mapping.arguments)


class HelperGone(Exception):
    pass


class _DecodeHere(Exception):
    """A page or its outcome that does not travel by pickle: decoded in the tap instead."""


def _widen(fd):
    try:
        import fcntl
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass        # a smaller pipe is only slower


def _read_exactly(stream, size):
    data = stream.read(size)
    if data is None or len(data) != size:
        raise HelperGone()
    return data


class _Helper:
    """One helper process and its two pipes: jobs (sizes, pickled shape and mapping, body) in,
    pickled outcomes out. Only the caller holding it (see Decoders) talks to it."""

    def __init__(self, siblings=()):
        jobs_in, jobs_out = os.pipe()
        results_in, results_out = os.pipe()
        _widen(jobs_out)
        _widen(results_out)
        pid = os.fork()
        if pid == 0:        # the helper
            status = 0
            try:
                os.close(jobs_out)
                os.close(results_in)
                for sibling in siblings:    # else an earlier helper never sees its pipe end
                    sibling.forget()
                _serve(jobs_in, results_out)
            except BaseException:   # noqa: B036 - whatever happens, never return into the tap's code
                status = 1
            finally:
                os._exit(status)   # no atexit handlers, no flush of the tap's buffers
        os.close(jobs_in)
        os.close(results_out)
        self.pid = pid
        watchdog.child(pid)     # ended by the watchdog if the run stalls
        self.pages = 0
        self._jobs = os.fdopen(jobs_out, "wb", buffering=0)
        self._results = os.fdopen(results_in, "rb")

    def forget(self):
        """In a later helper: let go of this one's pipes, which fork copied (closing the file
        objects, not only their descriptors, so none is left to close a reused number later)."""
        self._jobs.close()
        self._results.close()

    def run(self, body, shape, mapping):
        try:
            spec = pickle.dumps((shape, mapping), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:   # noqa: BLE001 - whatever does not pickle is decoded here
            raise _DecodeHere() from None
        try:
            self._jobs.write(_SIZES.pack(len(spec), len(body)) + spec)
            self._jobs.write(body)
            (size,) = _SIZE.unpack(_read_exactly(self._results, _SIZE.size))
            data = _read_exactly(self._results, size)
        except (OSError, EOFError):
            raise HelperGone() from None
        try:
            answered, value = pickle.loads(data)
        except Exception:   # noqa: BLE001 - an outcome that does not unpickle: decoded here
            raise _DecodeHere() from None
        if answered is None:
            raise _DecodeHere()
        self.pages += 1
        if answered:
            return value
        raise value

    def close(self):
        """Ends the helper (it exits at the end of its pipe) and reaps it: its CPU then counts in
        this process's resource usage, as a parent's wait4 sees it. Returns its rusage, or None."""
        for stream in (self._jobs, self._results):
            try:
                stream.close()
            except OSError:
                pass
        deadline = time.monotonic() + 10
        while True:
            try:
                pid, _, usage = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid:
                watchdog.child_gone(self.pid)
                return usage
            if time.monotonic() > deadline:
                LOGGER.warning("decode helper process %d did not end within 10 s of the sync; killed", self.pid)
                os.kill(self.pid, signal.SIGKILL)
                usage = os.wait4(self.pid, 0)[2]
                watchdog.child_gone(self.pid)
                return usage
            time.sleep(0.002)


def _serve(jobs_fd, results_fd):
    """The helper's loop: decode what comes in until the tap closes the pipe (or dies)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the tap's to handle
    # stdout is the target's: the helper never writes there, nor keeps it open past the tap
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    # closed on the way out: an unclosed file is a ResourceWarning on the tap's stderr
    with os.fdopen(jobs_fd, "rb") as jobs, os.fdopen(results_fd, "wb", buffering=0) as results:
        _answer(jobs, results)


def _answer(jobs, results):
    while True:
        head = jobs.read(_SIZES.size)
        if len(head) != _SIZES.size:
            return      # the tap is done, or gone
        spec_size, body_size = _SIZES.unpack(head)
        shape, mapping = pickle.loads(jobs.read(spec_size))
        body = jobs.read(body_size)
        try:
            outcome = (True, parse_and_map(body, shape, _apply(mapping)))
        except Exception as exc:    # handed back to be raised, and classified, in the tap
            outcome = (False, exc)
        del body
        try:
            data = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:   # noqa: BLE001 - an outcome that does not pickle: the tap decodes the page
            data = pickle.dumps((None, None))
        del outcome
        try:
            results.write(_SIZE.pack(len(data)))
            results.write(data)
        except BrokenPipeError:
            return


class Decoders:
    """This process's turn (one page at a time: decoding holds the GIL anyway, and one parsed page
    in memory is enough) and the helpers'. run() takes a free one, helpers first for a portable
    mapping: they leave this process free for the network and the writer."""

    def __init__(self, helpers=0):
        self._condition = threading.Condition()
        self._helpers = []
        if helpers and hasattr(os, "fork"):
            gc.freeze()     # the helpers share the start-up objects; no collection copies them
            for _ in range(helpers):
                self._helpers.append(_Helper(self._helpers))
        self._free = list(self._helpers) + [None]       # None: this process's turn
        self.local_pages = 0

    def run(self, body, shape=None, function=None):
        """function(document) of body parsed as shape, here; or, for a Mapping, wherever a turn is
        free first. Raises NotAnswered, pages.NotJSON, pages.Misshapen or Unmappable."""
        portable = isinstance(function, Mapping)
        helper = self._take(portable)
        if helper is not None:
            try:
                result = helper.run(body, shape, function)
            except HelperGone:
                self._lose(helper)
                self._take(portable=False)      # then decoded here
            except _DecodeHere:
                self._give_back(helper)
                self._take(portable=False)
            except BaseException:
                self._give_back(helper)
                raise
            else:
                self._give_back(helper)
                return result
        try:
            self.local_pages += 1
            return parse_and_map(body, shape, _apply(function) if portable else function)
        finally:
            self._give_back(None)

    def _take(self, portable):
        watchdog.waiting("decode turn")
        with self._condition:
            while True:
                for turn in self._free:
                    if portable or turn is None:
                        self._free.remove(turn)
                        watchdog.hold("decode turn")
                        return turn
                self._condition.wait()

    def _give_back(self, turn):
        watchdog.let_go("decode turn")
        with self._condition:
            self._free.append(turn)
            self._free.sort(key=lambda t: t is None)    # helpers first
            self._condition.notify_all()

    def _lose(self, helper):
        watchdog.let_go("decode turn")
        helper.close()
        if helper in self._helpers:     # close() may have ended them all meanwhile (a failing run)
            self._helpers.remove(helper)
        LOGGER.warning("decode helper process %d ended unexpectedly after %d pages; its page and the ones "
                       "after it are decoded in the tap's process", helper.pid, helper.pages)

    def close(self):
        """Ends the helpers and says what they did."""
        helpers, self._helpers = self._helpers, []
        for helper in helpers:
            usage = helper.close()
            if usage is not None:
                LOGGER.info("decode helper process: %d pages, CPU %.2f s, peak RSS %.0f MB (besides the tap's "
                            "%d pages)", helper.pages, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                            self.local_pages)
        self._helpers = []
