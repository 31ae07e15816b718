"""The API revisions the tap supports, and what Klaviyo's published spec allows in each of them.

Sources, per revision (docs/revisions.md has the table):
- 2025-01-15 .. 2026-07-15: the spec branch of that revision (klaviyo/openapi, openapi/stable.json).
- 2026-10-15, which has no published branch: the campaign endpoints from Klaviyo's 2026-10-15
  reference pages (https://developers.klaviyo.com/en/reference/get_campaigns.md,
  .../get_campaign_messages.md: endpoints, fields, includes, scopes, limits) and, where those pages
  are silent, the beta spec 2026-07-15.pre (openapi/beta.json), whose omnichannel operations say
  they become GA in 2026-10-15 -- INFERRED: filters, sorts, page sizes; every other endpoint the tap
  reads from the 2026-07-15 branch, which those reference pages show unchanged or only added to.
A revision is served for two years after its date, so the oldest one listed is the oldest Klaviyo
still answers; drop a revision here when it retires and add each new one once its sources are read.
"""

SUPPORTED = ("2025-01-15", "2025-04-15", "2025-07-15", "2025-10-15",
             "2026-01-15", "2026-04-15", "2026-07-15", "2026-10-15")
NEWEST = SUPPORTED[-1]
# The revision sent when config names none: the newest whose every request the tap sends is known
# from a published GA spec branch (2026-10-15 has none yet: docs/revisions.md).
DEFAULT = "2026-07-15"
# From this revision campaigns are omnichannel (campaigns -> audiences -> messages -> variations):
# no `messages.channel` filter, attributes under `definition`, a flat /api/campaign-messages.
OMNICHANNEL_CAMPAIGNS = "2026-10-15"

# endpoint -> ((first revision with page[size], its maximum), ...), latest first. An endpoint
# absent here, or a revision before its first entry, has no page[size]: sending it is a 400.
_PAGE_SIZES = {
    "events": (("2026-01-15", 1000),),
    "profiles": (("2025-01-15", 100),),
    "lists": (("2026-04-15", 10),),
    "segments": (("2026-04-15", 10),),
    "campaigns": (("2026-04-15", 100),),      # 2026-10-15: 100 in the beta spec (inferred)
    "campaign_messages": (),
    # 2026-10-15's flat message list: from the beta spec 2026-07-15.pre (inferred; see docs/revisions.md)
    "campaign_message_list": (("2026-10-15", 100),),
    "flows": (("2025-01-15", 50),),
    "flow_actions": (("2025-01-15", 50),),
    "flow_messages": (("2025-01-15", 50),),
    "templates": (("2026-04-15", 10),),
    "tags": (("2026-04-15", 50),),
    "list_profiles": (("2025-01-15", 100),),
    "segment_profiles": (("2025-01-15", 100),),
    "metrics": (),
}

# JSON:API type -> ((first revision, attributes of the newest revision it lacks), ...), latest first.
# The opt-in streams' schemas follow the newest revision; an older one cannot be asked for these
# (a sparse fieldset naming one is a 400) and its rows leave them out. Types absent here have had
# the same attributes in every supported revision.
_ABSENT_ATTRIBUTES = {
    "flow-action": (("2025-10-15", ()), ("2025-01-15", ("definition",))),
    "flow-message": (("2026-01-15", ()), ("2025-10-15", ("channel",)), ("2025-01-15", ("definition",))),
    "template": (("2026-04-15", ()), ("2025-01-15", ("definition",))),
}

# tier -> ((first revision, (burst per second, steady per minute)), ...), latest first
_TIERS = {
    "XS": (("2025-01-15", (1, 15)),),
    "S": (("2025-01-15", (3, 60)),),
    "M": (("2025-01-15", (10, 150)),),
    "L": (("2026-01-15", (75, 750)), ("2025-01-15", (75, 700))),
    "XL": (("2025-01-15", (350, 3500)),),
    # the reporting endpoints (campaign-values, flow-series reports) have limits of their own
    "reporting": (("2025-01-15", (1, 2)),),
}
# (they also allow 225 requests a day, shared with every other app using the account: the tap
# cannot pace that, only recognise the 429 that says it is spent)
# report bodies take `group_by` from this revision; before it they are grouped by the defaults
# (campaign_id, campaign_message_id, send_channel / flow_id, flow_message_id, send_channel)
_REPORT_GROUP_BY_SINCE = "2025-10-15"


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


def in_force(table, revision):
    """The value of a ((first revision, value), ...) table, latest first, that holds in revision."""
    wanted = base(revision)
    for since, value in table:
        if wanted >= since:
            return value
    return None


def page_size(endpoint, revision):
    """The largest page[size] the spec allows for endpoint in revision; None when the parameter does
    not exist there (then the request must not send it, and gets the endpoint's fixed page)."""
    return in_force(_PAGE_SIZES[endpoint], revision)


def page_param(endpoint, revision):
    """{"page[size]": the largest page} where revision has the parameter for endpoint, else {}."""
    size = page_size(endpoint, revision)
    return {"page[size]": size} if size else {}


def tier_limits(tier, revision):
    """(burst per second, steady per minute) of a rate tier in revision."""
    return in_force(_TIERS[tier], revision) or _TIERS[tier][-1][1]


def absent_attributes(resource, revision):
    """Attributes of the newest revision that JSON:API type `resource` does not have in revision."""
    return frozenset(in_force(_ABSENT_ATTRIBUTES.get(resource, ()), revision) or ())


def report_group_by(revision):
    """Whether a report body may carry `group_by` in revision (sending it before is a 400)."""
    return base(revision) >= _REPORT_GROUP_BY_SINCE
