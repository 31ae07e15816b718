"""tap-klaviyo: the classic Klaviyo tables, from Klaviyo's current API, as a Singer tap."""
__version__ = "2.0.0"


def main():
    from .cli import main as run
    run()
