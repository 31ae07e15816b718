"""What keeps a run from hanging, and what ends one that hangs anyway (docs/concurrency.md).

The lock order. A worker thread waits, at one time or another, for five things, each of which ends
only when other threads have moved on:

  metric list   the account's metric list, fetched once per run (SyncContext.once) by the first
                thread that asks: its requests need body permits
  day counts    a metric's per-day event counts (tasks/recount.py), fetched once per run likewise
  body permit   one of the client's BODIES_HELD answers read and not yet decoded: freed when the
                thread holding it has waited for writer room and a decode turn and decoded it
  writer room   the writer (the main thread) taking pages: it never waits for a worker
  decode turn   a page being decoded here or in a helper: it waits for nothing else

A thread may wait for one of these only while everything it holds comes earlier in that list.
Holding a body permit while waiting for another, or for the metric list, is how both deadlocks
found in review began (every permit held by threads waiting for something that itself needed
one). waiting() raises LockOrderError before such a wait, however the timing falls, so a change
that breaks the rule fails in the first run that takes the path, not in the rare one that hangs.

The watchdog. A run that makes no progress for watchdog_seconds (no page handed to the writer, no
request answered, no wait the tap has announced, such as a rate-limit wait or a retry's back-off,
for as long as it lasts) writes every thread's stack to stderr, ends the decode helper processes
and exits 1 with one line: it never hangs silently. While the writer writes a page to stdout the
clock stands still: a target slow to read is not the tap's hang.
"""
import faulthandler
import os
import signal
import sys
import threading
import time

ORDER = ("metric list", "day counts", "body permit", "writer room", "decode turn")
_RANK = {name: rank for rank, name in enumerate(ORDER)}

_held = {}                      # thread ident -> names of what the thread holds, in order taken
_held_lock = threading.Lock()


class LockOrderError(RuntimeError):
    """A wait that could deadlock: the thread holds something the awaited one may need (a bug)."""


def waiting(name):
    """Called before a blocking wait for name: raises LockOrderError when the calling thread holds
    anything that does not come before name in ORDER."""
    held = _held.get(threading.get_ident())
    if held:
        rank = _RANK[name]
        later = [h for h in held if _RANK[h] >= rank]
        if later:
            raise LockOrderError(f"lock order broken in thread {threading.current_thread().name}: waiting for the "
                                 f"{name} while holding the {', the '.join(later)} (the order is "
                                 f"{' < '.join(ORDER)})")


def hold(name):
    """The calling thread now holds name (a body permit, a decode turn, a once-a-run value's lock)."""
    ident = threading.get_ident()
    with _held_lock:
        _held[ident] = _held.get(ident, ()) + (name,)


def let_go(name):
    ident = threading.get_ident()
    with _held_lock:
        held = list(_held.get(ident, ()))
        if name in held:
            held.reverse()
            held.remove(name)       # the latest taken
            held.reverse()
        if held:
            _held[ident] = tuple(held)
        else:
            _held.pop(ident, None)


# --- the watchdog ----------------------------------------------------------------------------
_last = time.monotonic()        # the last progress
_quiet_until = 0.0              # the end of the latest announced wait
_writing = False                # the writer is writing a page to stdout (the target's time)
_children = set()               # decode helper processes to end on a stall
_watch = None


def progress():
    """A page handed to the writer, a request answered."""
    global _last
    _last = time.monotonic()


def announced(seconds):
    """A wait the tap has told the user about: progress for as long as it lasts."""
    global _quiet_until
    until = time.monotonic() + seconds
    if until > _quiet_until:
        _quiet_until = until


def writing(busy):
    """The writer is (True) or no longer (False) writing to stdout: the clock stands still meanwhile,
    and starts again from naught when the writer is back."""
    global _writing, _last
    if _writing and not busy:
        _last = time.monotonic()
    _writing = busy


def child(pid):
    """A helper process to end if the run stalls."""
    _children.add(pid)


def child_gone(pid):
    _children.discard(pid)


class _Watch:
    def __init__(self, seconds):
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    def _run(self):
        tick = min(1.0, self.seconds / 10)
        while not self._stop.wait(tick):
            now = time.monotonic()
            if _writing:
                progress()
                continue
            idle = now - max(_last, _quiet_until)
            if idle >= self.seconds and not self._stop.is_set():
                self._fire()
                return

    def _fire(self):
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        try:
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            names = {thread.ident: thread.name for thread in threading.enumerate()}
            with _held_lock:
                holding = dict(_held)
            lines = [f"Thread {ident:#018x} ({names.get(ident, '?')}) holds: {', '.join(held)}"
                     for ident, held in holding.items()]
            if lines:
                os.write(2, ("\n".join(lines) + "\n").encode())
            # stdout first, while the writer waits: once a helper is ended, its page is decoded in
            # this process and the writer could write again while the run exits
            _flush_stdout()
            _end_children()
        finally:
            os.write(2, (f"tap-klaviyo: error: no progress for {self.seconds:g} s (no page written, no request "
                         "answered, no announced wait; config watchdog_seconds); the stacks of every thread are "
                         "above; please report it\n").encode())
            os._exit(1)


def _flush_stdout(seconds=5.0):
    """What the writer has buffered goes out before the exit: the buffer holds whole messages, and an
    earlier flush may have sent the first part of one (stdout is no longer being written to: the
    clock stands still while it is). Bounded: a target that reads nothing more cannot hold the exit."""
    def flush():
        try:
            sys.stdout.buffer.flush()
        except (OSError, ValueError, AttributeError):
            pass
    flusher = threading.Thread(target=flush, name="watchdog-flush", daemon=True)
    flusher.start()
    flusher.join(seconds)
    try:    # nothing more reaches the target: no message cut by the exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    except OSError:
        pass


def _end_children():
    """SIGKILL (which a stopped process obeys too) and reap every helper process."""
    for pid in list(_children):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        _children.discard(pid)


def start(seconds):
    """Watch this process from now on (once; a second call sets the time)."""
    global _watch, _writing, _quiet_until
    _writing, _quiet_until = False, 0.0
    progress()
    if _watch is not None:
        _watch.seconds = seconds
        return
    _watch = _Watch(seconds)
    _watch._thread.start()


def stop():
    """No more watching (the sync's pages are all written; what is left is the target's time)."""
    global _watch
    if _watch is not None:
        _watch._stop.set()
        _watch = None
