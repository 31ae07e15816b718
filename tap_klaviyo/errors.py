"""The one kind of error the tap reports to a person: a sentence that says what is wrong and what to do."""


class TapError(Exception):
    """Ends the run with one line on stderr and a non-zero exit; never carries a traceback to the user."""


class ConfigError(TapError):
    pass


class ApiError(TapError):
    """Klaviyo answered with something the tap cannot go on from."""


class TargetGone(TapError):
    """The process reading stdout went away (broken pipe)."""


_secrets = set()


def register_secret(value):
    if isinstance(value, str) and len(value) >= 4:
        _secrets.add(value)


def redact(text):
    """Strip every registered secret from text meant for a person (logs, error lines)."""
    text = str(text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text
