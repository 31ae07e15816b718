"""Command line: parse arguments, read the files, run discovery or sync, report failures in one line."""
import argparse
import json
import logging
import os
import sys
import time

from . import __version__
from .errors import ApiError, ConfigError, TapError, TargetGone, redact

LOGGER = logging.getLogger("tap_klaviyo")


class _Redact(logging.Filter):
    def filter(self, record):
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _utc_formatter():
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    return formatter


def _setup_logging(after_singer=False):
    if after_singer:
        # importing singer-python runs logging.config.fileConfig, which replaces the root's handlers
        # (and with them the redaction filter): let it do so first, then install ours again. Only
        # discovery imports it (see metrics.py).
        import singer  # noqa: F401
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_utc_formatter())
    handler.addFilter(_Redact())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("urllib3", "backoff"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _parser():
    parser = argparse.ArgumentParser(prog="tap-klaviyo", description="Singer tap for Klaviyo: the classic tables and opt-in streams.")
    parser.add_argument("-c", "--config", help="config JSON file (see sample_config.json)")
    parser.add_argument("-d", "--discover", action="store_true", help="write the catalog to stdout")
    parser.add_argument("--catalog", help="catalog JSON file selecting the streams to sync")
    parser.add_argument("-p", "--properties", help="legacy name of --catalog")
    parser.add_argument("-s", "--state", help="state JSON file from a previous run (missing or empty: a first run)")
    parser.add_argument("--about", action="store_true", help="describe the tap and its settings")
    parser.add_argument("--format", choices=("json", "markdown", "meltano"), default="markdown",
                        help="format of --about (meltano: the extractor entry of a meltano.yml)")
    parser.add_argument("--version", action="version", version=f"tap-klaviyo {__version__}")
    return parser


def run(argv=None):
    args = _parser().parse_args(argv)
    if args.about:
        from .about import render
        print(render(args.format))
        return
    if not args.config:
        raise ConfigError("--config is required: pass a JSON file with api_key and start_date "
                          "(see sample_config.json)")
    from .config import load_config, read_json_file
    config = load_config(read_json_file(args.config, "config"))
    from . import revisions
    retiring = revisions.retirement_warning(config.revision, time.strftime("%Y-%m-%d", time.gmtime()))
    if retiring:
        LOGGER.warning(retiring)
    catalog_path = args.catalog or args.properties
    from . import discovery, state as bookmarks
    from .client import KlaviyoClient
    from .output import MessageWriter

    if args.discover or not catalog_path:
        _setup_logging(after_singer=True)
    if args.discover:
        from . import watchdog
        watchdog.start(config.watchdog_seconds)     # a sync's is started by the engine, after its fork
        catalog = discovery.discover()
        from .streams import BY_NAME
        from .tasks.events import list_metrics
        # one cheap request per scope: a wrong key (or a key that can read none of the classic tables)
        # fails here, a missing scope warns once naming its streams, and a probe that fails otherwise
        # warns without stopping discovery; metrics' is the list itself, noted in the classic tables'
        # entries
        _, listed = discovery.check_access(KlaviyoClient(config), [BY_NAME[e["tap_stream_id"]] for e in catalog["streams"]],
                                           {"metrics:read": list_metrics})
        if "metrics:read" in listed:
            discovery.note_metrics(catalog, listed["metrics:read"])
        watchdog.stop()     # writing the catalog takes what the reader of stdout takes
        sys.stdout.write(json.dumps(catalog, indent=2) + "\n")
        return
    columns, noted = {}, {}
    if catalog_path:
        catalog = read_json_file(catalog_path, "catalog")
        streams = discovery.selected_streams(catalog)
        columns = discovery.selected_columns(catalog)
        noted = discovery.catalog_metrics(catalog)
    else:
        LOGGER.info("no --catalog given: syncing all twelve streams")
        streams = discovery.selected_streams(discovery.discover_all_selected())
    state = bookmarks.read(args.state) if args.state else {}
    if not streams:
        LOGGER.warning("the catalog selects no stream; nothing to do (set \"selected\": true in the metadata "
                       "entry with \"breadcrumb\": [] of each stream to sync, or make a fresh catalog with "
                       "--discover: it selects the twelve classic tables)")
        return
    from .client import RefusedError
    from .engine import run as sync
    from .tasks import PLANNERS
    try:
        sync(config, KlaviyoClient(config), streams, state, MessageWriter(), PLANNERS, columns=columns,
             catalog_metrics=noted)
    except RefusedError as exc:
        if exc.status != 403:
            raise
        raise ApiError(discovery.scope_failure(exc, streams)) from None


def _say(text):
    """A line on stderr in one piece: the fetch threads may still be logging as the tap ends, and
    print() writes the text and its newline apart, so a log line could land in between. Written
    under the log handlers' locks."""
    handlers = logging.getLogger().handlers
    for handler in handlers:
        handler.acquire()
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    finally:
        for handler in handlers:
            handler.release()


def main(argv=None):
    _setup_logging()
    try:
        run(argv)
        sys.stdout.flush()
    except (TargetGone, BrokenPipeError):
        # stdout is gone: point it at /dev/null so the interpreter's last flush stays quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        _say("tap-klaviyo: the target stopped reading stdout (broken pipe); stopping, the last STATE written stands")
        sys.exit(1)
    except TapError as exc:
        _say(f"tap-klaviyo: error: {redact(exc)}")
        sys.exit(1)
    except KeyboardInterrupt:
        _say("tap-klaviyo: interrupted")
        sys.exit(130)
    except Exception as exc:   # a bug: still one line, never the key
        if os.environ.get("TAP_KLAVIYO_DEBUG"):
            import traceback
            _say(redact(traceback.format_exc()))
        _say(f"tap-klaviyo: unexpected error {type(exc).__name__}: {redact(exc)} (a bug: please report "
             "it; TAP_KLAVIYO_DEBUG=1 shows the traceback)")
        sys.exit(1)
