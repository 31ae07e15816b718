"""The API revisions the tap supports, and where what it knows of each comes from.

What each revision allows (page sizes, rate limits, scopes, fields) is read from the rules
extracted from Klaviyo's spec (apispec.py, spec_rules.json), never kept by hand here.

Sources, per revision (docs/revisions.md has the table):
- 2025-01-15 .. 2026-07-15: the spec branch of that revision (klaviyo/openapi, openapi/stable.json).
- 2026-10-15, whose branch no copy read here had: the campaign endpoints from Klaviyo's 2026-10-15
  reference pages (https://developers.klaviyo.com/en/reference/get_campaigns.md,
  .../get_campaign_messages.md: endpoints, fields, includes, scopes, limits) and, where those pages
  are silent, the beta spec 2026-07-15.pre (openapi/beta.json), whose omnichannel operations say
  they become GA in 2026-10-15 -- INFERRED: filters, sorts, page sizes; every other endpoint the tap
  reads from the 2026-07-15 branch, which those reference pages show unchanged or only added to.
A revision is served for two years after its date, so the oldest one listed is the oldest Klaviyo
still answers; drop a revision here when it retires and add each new one once its sources are read.
"""
from datetime import date

SUPPORTED = ("2025-01-15", "2025-04-15", "2025-07-15", "2025-10-15",
             "2026-01-15", "2026-04-15", "2026-07-15", "2026-10-15")
NEWEST = SUPPORTED[-1]
# The revision sent when config names none: the newest whose every request the tap sends is known
# from a published GA spec branch (2026-10-15 has none yet: docs/revisions.md).
DEFAULT = "2026-07-15"
# From this revision campaigns are omnichannel (campaigns -> audiences -> messages -> variations):
# no `messages.channel` filter, attributes under `definition`, a flat /api/campaign-messages.
OMNICHANNEL_CAMPAIGNS = "2026-10-15"

def base(revision):
    """The GA revision a header names (config refuses betas, see check)."""
    return revision[:-4] if revision.endswith(".pre") else revision


def is_supported(revision):
    return revision in SUPPORTED


def check(revision):
    """Raise ValueError, in words for the user, unless revision is one the tap reads.

    Betas ('2026-07-15.pre') are refused: Klaviyo's beta specs replace endpoints the tap reads
    (campaigns under 2026-04-15.pre and 2026-07-15.pre have the omnichannel shape, flow actions
    and messages under 2025-04-15.pre and 2025-07-15.pre the 2025-10-15 one), so a base-revision
    request sent under a beta header is a 400 there."""
    if revision.endswith(".pre") and base(revision) in SUPPORTED:
        newer = [r for r in SUPPORTED if r > base(revision)]
        raise ValueError(f"{revision} is a beta revision, whose endpoints differ from the GA ones the tap reads; "
                         f"set revision to a GA revision: {DEFAULT} (the default, or remove the setting)"
                         + (f", or {newer[-1]}" if newer and newer[-1] != DEFAULT else ""))
    if revision not in SUPPORTED:
        raise ValueError(f"the tap supports revisions {', '.join(SUPPORTED)}")


# Klaviyo serves a revision for two years after its date: stable in the first, deprecated in the
# second, retired after: a 410, or silently answered as a newer revision (Klaviyo's "API versioning
# and deprecation policy", https://developers.klaviyo.com/en/docs/api_versioning_and_deprecation_policy;
# docs/revisions.md). So the warning comes before the date, not only with the 410.
WARN_DAYS_BEFORE_RETIREMENT = 90


def retires_on(revision):
    """The day (YYYY-MM-DD) Klaviyo stops serving a GA revision: two years after its date."""
    return f"{int(revision[:4]) + 2}{revision[4:10]}"


def retirement_warning(revision, today):
    """One line for the user when the revision retires within WARN_DAYS_BEFORE_RETIREMENT days of
    today (YYYY-MM-DD, UTC) or has retired; None otherwise."""
    ends = retires_on(base(revision))
    left = (date.fromisoformat(ends) - date.fromisoformat(today)).days
    if left > WARN_DAYS_BEFORE_RETIREMENT:
        return None
    when = f"retired on {ends}" if left < 0 else f"retires on {ends}" + (f", in {left} days" if left else ", today")
    fix = (f"set config 'revision' to a newer one such as {DEFAULT} (the default)" if base(revision) < DEFAULT
           else "upgrade tap-klaviyo to a version that reads a newer revision")
    return f"revision {revision} {when} (Klaviyo serves a revision for two years after its date); {fix}"
