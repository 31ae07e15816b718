"""Singer metric lines on the log: 'METRIC: {"type": ..., "metric": ..., "value": ..., "tags": ...}',
the line singer-python's metrics.log writes, so tools that read Singer metrics read ours.

Written here rather than through singer-python because importing singer-python costs a sync run
about 0.2 s of CPU (it pulls jsonschema, and backoff pulls asyncio): a fifth of a small account's
whole run. singer-python is imported for discovery only.
"""
import json
import logging

LOGGER = logging.getLogger("tap_klaviyo")


def log_metric(kind, metric, value, tags):
    LOGGER.info("METRIC: %s", json.dumps({"type": kind, "metric": metric, "value": value, "tags": tags}))


def http_request_duration(seconds, endpoint, status):
    log_metric("timer", "http_request_duration", seconds, {
        "endpoint": endpoint, "http_status_code": status, "status": "succeeded" if status == 200 else "failed"})


def record_count(count, endpoint):
    log_metric("counter", "record_count", count, {"endpoint": endpoint})
