"""Forms in the sandbox: GET /api/forms and GET /api/forms/{id}/form-versions, served as the spec
allows (fields, filters, sorts, page sizes, tier S, scope forms:read), a handful of forms with one to
three versions each, and what visitors did with them (the figures of the form reports, reports.py).

Everything here is drawn from a random stream of its own (`forms:<anchor>`), after the rest of the
account exists; nothing already there is changed. Activity is kept beside the account, not as its
events: the event streams' exact rows stay as they were.

The attributes, per the spec of the newest revision: a form's `name`, `status` (draft, live),
`ab_test` (boolean), `created_at`, `updated_at`; a version's `form_type` (banner, embed, flyout,
full_page, popup), `variation_name` (2026-01-15 on), `ab_test` ({"variation_name": ...} for a form
under an A/B test, else null), `status`, `created_at`, `updated_at`. A form's `updated_at` is never
before any of its versions' (the tap reads versions under the forms whose updated_at moved).
"""
import bisect
import dataclasses
import random
import threading
import time

from . import data as sandbox_data
from . import entities as sandbox_entities
from . import server as api

DAY = 86400
FORM_TYPES = ("banner", "embed", "flyout", "full_page", "popup")
NAMES = ("Welcome 10% off", "Newsletter footer", "Exit intent", "Back in stock", "VIP early access",
         "Spin to win", "Birthday club", "SMS opt-in", "Quiz: find your fit", "Holiday gift guide")
# what one visit may do, in the form reports' statistic names (the sandbox's reading: docs/reports.md)
FORM_COUNTS = ("viewed_form", "viewed_form_uniques", "viewed_form_step", "viewed_form_step_uniques",
               "submitted_form_step", "submitted_form_step_uniques", "submits", "closed_form",
               "closed_form_uniques", "qualified_form", "qualified_form_uniques")
UNIQUES = {"viewed_form": "viewed_form_uniques", "viewed_form_step": "viewed_form_step_uniques",
           "submitted_form_step": "submitted_form_step_uniques", "closed_form": "closed_form_uniques",
           "qualified_form": "qualified_form_uniques"}


@dataclasses.dataclass(frozen=True)
class FormCounts:
    """How many of each: the test account's defaults; the benchmark may ask for more."""
    forms: int = 5
    versions: tuple = (1, 3)            # versions per form, inclusive
    days: int = 400                     # days of activity before the anchor
    active_day_share: float = 0.3       # share of a live version's days with visitors
    visitors: tuple = (1, 5)            # visitors on such a day, inclusive


@dataclasses.dataclass
class Forms:
    forms: list = dataclasses.field(default_factory=list)
    versions: dict = dataclasses.field(default_factory=dict)    # form id -> its versions, oldest first
    activity: list = dataclasses.field(default_factory=list)    # (epoch, form id, version id, statistic, profile)
    keys: list = dataclasses.field(default_factory=list)        # the activity's epochs, sorted (bisect)
    version: int = 0                                            # bumped by each admin change
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def of(account):
    found = getattr(account, "forms_data", None)
    if found is None:
        found = account.forms_data = Forms()
    return found


# --- generation ---------------------------------------------------------------------------------
def populate(account, counts=None):
    counts = counts or FormCounts()
    rng = random.Random(f"forms:{account.anchor}")
    forms = of(account)
    profiles = sorted(account.profiles)
    anchor = account.anchor
    taken = set()

    def short():
        while True:
            made = "".join(rng.choice(sandbox_entities._ALNUM) for _ in range(6))
            if made not in taken:
                taken.add(made)
                return made

    for number in range(counts.forms):
        form_id = short()
        created = anchor - rng.randrange(60 * DAY, counts.days * DAY)
        count = rng.randint(*counts.versions)
        ab_test = count > 1 and rng.random() < 0.6
        # the cases the tests need, by index rather than by luck of the anchor: form 0 an A/B test of two
        # versions, form 1 one version and no A/B test
        if number == 0 and counts.versions[1] >= 2:
            count, ab_test = 2, True
        elif number == 1 and counts.versions[0] <= 1:
            count, ab_test = 1, False
        versions, at = [], created
        for index in range(count):
            at = at + rng.randrange(3600, 40 * DAY) if index else created
            updated = min(at + rng.randrange(0, 20 * DAY), anchor - 3600)
            status = "live" if index == count - 1 or (ab_test and index == count - 2) else "draft"
            versions.append({
                "type": "form-version", "id": str(rng.randrange(10 ** 6, 10 ** 7)),
                "attributes": {
                    "form_type": rng.choice(FORM_TYPES),
                    "variation_name": f"Version {chr(65 + index)}",
                    "ab_test": {"variation_name": f"Variation {chr(65 + index)}"} if ab_test else None,
                    "status": status, "created_at": sandbox_data.iso(at), "updated_at": sandbox_data.iso(updated)},
                "relationships": {"form": {"data": {"type": "form", "id": form_id}}}})
        status = "live" if rng.random() < 0.8 else "draft"
        if status == "draft":
            for version in versions:
                version["attributes"]["status"] = "draft"
        latest = max(sandbox_entities._epoch(v["attributes"]["updated_at"]) for v in versions)
        forms.forms.append({
            "type": "form", "id": form_id,
            "attributes": {"name": NAMES[number % len(NAMES)] + ("" if number < len(NAMES) else f" {number}"),
                           "status": status, "ab_test": ab_test, "created_at": sandbox_data.iso(created),
                           # an hour before the anchor at the latest: a run's read of changes begins 300 s
                           # (engine.CHANGE_MARGIN_SECONDS) before the last run's start, which is after the
                           # anchor, so no form is found changed that a test did not change
                           "updated_at": sandbox_data.iso(min(latest + rng.randrange(0, 3 * DAY), anchor - 3600))},
            "relationships": {"form-versions": {"data": [{"type": "form-version", "id": v["id"]} for v in versions]}}})
        forms.versions[form_id] = versions
        for version in versions:
            # a version had visitors from its creation while it was live (drafts: a few, from previews)
            start = max(sandbox_entities._epoch(version["attributes"]["created_at"]), anchor - counts.days * DAY)
            share = counts.active_day_share if version["attributes"]["status"] == "live" else 0.03
            for day in range(start // DAY * DAY, anchor // DAY * DAY + DAY, DAY):
                if rng.random() < share:
                    for _ in range(rng.randint(*counts.visitors)):
                        _visit(forms, rng, form_id, version["id"], rng.choice(profiles),
                               max(day + rng.randrange(DAY), start), anchor - 60)
    forms.activity.sort()
    forms.keys = [entry[0] for entry in forms.activity]


def _visit(forms, rng, form_id, version_id, profile_id, at, latest):
    def did(statistic, later=0):
        forms.activity.append((min(at + later, latest), form_id, version_id, statistic, profile_id))

    did("qualified_form")
    for n in range(rng.randint(1, 2)):
        did("viewed_form", n * 600)
    did("viewed_form_step", 5)
    if rng.random() < 0.3:
        did("submitted_form_step", 60)
        if rng.random() < 0.5:
            did("viewed_form_step", 70)
            did("submitted_form_step", 120)
        did("submits", 121)
    elif rng.random() < 0.6:
        did("closed_form", 30)


# --- the figures (the form reports, reports.py) ------------------------------------------------
def tallies(account, lower, upper, starts=None):
    """{(form id, version id) or (form id, version id, bucket): tally} of the activity in [lower, upper)."""
    forms = of(account)
    found = {}
    with forms.lock:
        start, stop = bisect.bisect_left(forms.keys, lower), bisect.bisect_left(forms.keys, upper)
        chosen = forms.activity[start:stop]
    for at, form_id, version_id, statistic, profile_id in chosen:
        key = (form_id, version_id) if starts is None else (form_id, version_id, bisect.bisect_right(starts, at) - 1)
        tally = found.setdefault(key, {})
        tally[statistic] = tally.get(statistic, 0) + 1
        if statistic in UNIQUES:
            tally.setdefault(("profiles", statistic), set()).add(profile_id)
    return found


def statistics(tally):
    """Every statistic of the form reports' enum from one tally (submit_rate: submits per unique view)."""
    figures = {name: tally.get(name, 0) for name in ("viewed_form", "viewed_form_step", "submitted_form_step",
                                                      "submits", "closed_form", "qualified_form")}
    for name, unique in UNIQUES.items():
        figures[unique] = len(tally.get(("profiles", name), ()))
    uniques = figures["viewed_form_uniques"]
    figures["submit_rate"] = round(figures["submits"] / uniques, 4) if uniques else 0.0
    return figures


def version_ids(account):
    """version id -> form id, of every version the account has."""
    return {v["id"]: form_id for form_id, versions in of(account).versions.items() for v in versions}


# --- the endpoints --------------------------------------------------------------------------------
def _time(name):
    return lambda item: sandbox_entities._epoch(item["attributes"].get(name))


TIME_OPS = sandbox_entities.COMPARE
FORM_FILTERS = {
    "id": (sandbox_entities._item_id, "str", {"any", "equals"}),
    "name": (sandbox_entities._attr("name"), "str", {"any", "contains", "equals"}),
    "ab_test": (sandbox_entities._attr("ab_test"), "bool", {"equals"}),
    "updated_at": (_time("updated_at"), "time", TIME_OPS), "created_at": (_time("created_at"), "time", TIME_OPS),
    "status": (sandbox_entities._attr("status"), "str", {"equals"}),
}
VERSION_FILTERS = {
    "form_type": (sandbox_entities._attr("form_type"), "str", {"any", "equals"}),
    "status": (sandbox_entities._attr("status"), "str", {"equals"}),
    "updated_at": (_time("updated_at"), "time", TIME_OPS), "created_at": (_time("created_at"), "time", TIME_OPS),
}
SORTS = {"created_at": _time("created_at"), "updated_at": _time("updated_at")}


def _render(base_url, item, query, revision):
    attributes = dict(item["attributes"])
    if item["type"] == "form-version" and revision < "2026-01-15":
        attributes.pop("variation_name")        # the spec lists it from 2026-01-15 on
    attributes = sandbox_entities.sparse(attributes, sandbox_entities._fields(query, item["type"]))
    path = "forms" if item["type"] == "form" else "form-versions"
    self_url = f"{base_url}/api/{path}/{item['id']}"
    relation = "form-versions" if item["type"] == "form" else "form"
    return {"type": item["type"], "id": item["id"], "attributes": attributes,
            "relationships": {relation: {"links": {"self": f"{self_url}/relationships/{relation}/",
                                                   "related": f"{self_url}/{relation}/"}}},
            "links": {"self": f"{self_url}/"}}


def _page(sandbox, name, items, query, revision, base, filters):
    forms = of(sandbox.account)
    entities = sandbox_entities.of(sandbox.account)
    size = sandbox._page_size(query, 20, 100)
    chosen = sandbox_entities._filters(query, filters, name.split(":")[0])
    page, token = sandbox_entities.keyset_page(entities, f"sandbox-{name}", items, query, size, SORTS, chosen,
                                               version=forms.version)
    data = [_render(sandbox.base_url, item, query, revision) for item in page]
    return {"data": data, "links": sandbox._links(base, query, token)}


def route(sandbox, parts, query):
    """(family, tier, scope, endpoint) of the forms endpoints, None for any other path."""
    name, rest = parts[1], parts[2:]
    if name != "forms":
        return None
    forms = of(sandbox.account)
    if not rest:
        return "forms", "S", "forms:read", lambda q, r, b: _page(sandbox, "forms", list(forms.forms), q, r, b,
                                                                FORM_FILTERS)
    if len(rest) == 2 and rest[1] == "form-versions":
        form_id = rest[0]

        def versions(q, r, b):
            if form_id not in forms.versions:
                raise api.ApiFailure(404, "not_found", f"A form with id {form_id} does not exist.")
            return _page(sandbox, f"form versions:{form_id}", list(forms.versions[form_id]), q, r, b, VERSION_FILTERS)
        return "form_versions", "S", "forms:read", versions
    return None


def dump(account):
    forms = of(account)
    return {"forms": forms.forms, "form_versions": [v for versions in forms.versions.values() for v in versions],
            "form_activity": [list(entry) for entry in forms.activity]}


# --- admin: changes between runs --------------------------------------------------------------------
def admin(account, path, payload):
    """POST /__sandbox/forms/touch {"form_id", "at"?, "version": true?}: renames the form (and, with
    version, adds a draft version) and moves its updated_at to `at`; /__sandbox/forms/delete
    {"form_id"}: the form and its versions are gone. (status, body), None for another path."""
    if path not in ("/__sandbox/forms/touch", "/__sandbox/forms/delete"):
        return None
    forms = of(account)
    form_id = payload.get("form_id")
    form = next((f for f in forms.forms if f["id"] == form_id), None)
    if form is None:
        return 404, {"error": f"no form {form_id}"}
    with forms.lock:
        if path.endswith("/delete"):
            forms.forms.remove(form)
            forms.versions.pop(form_id)
        else:
            at = sandbox_data.iso(api._parse_z(payload["at"]) if payload.get("at") else int(time.time()))
            form["attributes"] = dict(form["attributes"], name=form["attributes"]["name"] + " (edited)", updated_at=at)
            if payload.get("version"):
                number = len(forms.versions[form_id])
                version = {"type": "form-version", "id": str(9000000 + len(forms.activity) + number),
                           "attributes": {"form_type": "popup", "variation_name": f"Version {chr(65 + number)}",
                                          "ab_test": None, "status": "draft", "created_at": at, "updated_at": at},
                           "relationships": {"form": {"data": {"type": "form", "id": form_id}}}}
                forms.versions[form_id] = [*forms.versions[form_id], version]
                form["relationships"]["form-versions"]["data"].append({"type": "form-version", "id": version["id"]})
        forms.version += 1
    return 200, {"form_id": form_id}
