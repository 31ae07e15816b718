"""The per-family tasks the engine runs; PLANNERS maps each stream family to its planner,
plan(stream, context) -> [(task, rank)]."""
from ..streams import CLASSIC_EVENT, COLLECTION, EVENTS, EXCLUSION, LIST, MEMBERS, REPORT
from .classic import plan_exclusions, plan_lists
from .collections import plan_collection, plan_members
from .events import plan_classic, plan_events
from .reports import plan_report

PLANNERS = {
    CLASSIC_EVENT: plan_classic,
    EVENTS: plan_events,
    LIST: plan_lists,
    EXCLUSION: plan_exclusions,
    COLLECTION: plan_collection,
    MEMBERS: plan_members,
    REPORT: plan_report,
}
