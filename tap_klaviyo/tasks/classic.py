"""The two classic full tables: `lists` (lists and segments, with profile counts) and
`global_exclusions` (email-suppressed profiles)."""
from .. import apispec, timeutil
from ..engine import Page
from ..output import envelope
from ..rows import SUPPRESSION_REASONS, exclusion_row, list_row


class GroupCollection:
    """All lists (or all segments), each with its profile count from the per-id call."""

    def __init__(self, stream, kind):
        self.stream = stream
        self.kind = kind            # "list" or "segment"

    def run(self, client, config):
        path = f"/api/{self.kind}s"
        params = {f"fields[{self.kind}]": "name,created,updated",
                  **apispec.page_param(f"GET /api/{self.kind}s", config.revision)}
        for resources, last in client.pages(f"{self.kind}s", path, params, lambda doc, last: (doc["data"], last)):
            # the count calls are requests of their own, made outside the page's decoding
            rows = [list_row(resource, self.kind, self._profile_count(client, config, path, resource["id"]))
                    for resource in resources]
            yield Page(self, envelope(self.stream.name).lines(rows), len(rows), done=last)

    def _profile_count(self, client, config, path, resource_id):
        if not config.list_person_count:
            return None
        document = client.get(f"{self.kind}_count", client.url(f"{path}/{resource_id}"), {
            f"additional-fields[{self.kind}]": "profile_count",
            f"fields[{self.kind}]": "profile_count",
        })
        return ((document.get("data") or {}).get("attributes") or {}).get("profile_count")


class SuppressedProfiles:
    """Profiles suppressed for one reason, each emitted only by the query of its latest reason, so
    the five queries of a full read never emit the same email twice; or, between full reads, the
    profiles suppressed since an instant, in one query (a lifted suppression shows only in a full read)."""

    def __init__(self, stream, reason=None, since=None, until=None):
        self.stream = stream
        self.reason = reason
        self.since, self.until = since, until

    def run(self, client, config):
        if self.since is not None:
            found = self.stream.changes.format(since=timeutil.to_filter(self.since),
                                               until=timeutil.to_filter(self.until))
        else:
            found = f'equals(subscriptions.email.marketing.suppression.reason,"{self.reason}")'
        params = {
            "filter": found,
            "additional-fields[profile]": "subscriptions",
            "fields[profile]": "email,subscriptions",
            **apispec.page_param("GET /api/profiles", config.revision),
        }
        classic_reason = SUPPRESSION_REASONS.get(self.reason)

        # a change read keeps the rows a full read would: a latest reason of the five
        wanted = set(SUPPRESSION_REASONS.values()) if classic_reason is None else {classic_reason}

        def page(document, last):
            rows = [row for row in map(exclusion_row, document["data"]) if row is not None and row["reason"] in wanted]
            return Page(self, envelope(self.stream.name).lines(rows), len(rows), done=last)

        yield from client.pages("profiles", "/api/profiles", params, page)


def plan_lists(stream, context):
    return [(GroupCollection(stream, kind), 0) for kind in ("list", "segment")]


def plan_exclusions(stream, context):
    since = context.changed_since.get(stream.name)
    if since is not None:
        return [(SuppressedProfiles(stream, since=since, until=context.started), 0)]
    return [(SuppressedProfiles(stream, reason), 0) for reason in SUPPRESSION_REASONS]
