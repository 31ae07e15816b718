"""JSON in and out: the generic decoder, and the typed shape of the one page the tap reads in bulk.

Every body is decoded by msgspec, which keeps integers wider than 64 bits exact (orjson turned them
into floats without a word; the stdlib is two to three times slower).

An /api/events page of 1,000 events with its included profiles is 1-2 MB. Decoded into dicts it
is some 100,000 Python objects, most of them never looked at: event properties and profile custom
properties are copied into the RECORD as they are. Decoded into the types below, the members no row
needs (links, types) are skipped and those properties stay raw JSON text, embedded verbatim when
the row is encoded: decoding and encoding cost a fraction, and so does the page's memory.
"""
from typing import Any

import msgspec

decode = msgspec.json.decode
_ENCODER = msgspec.json.Encoder()
encode = _ENCODER.encode
encode_into = _ENCODER.encode_into     # (value, bytearray, -1) appends
Raw = msgspec.Raw
NULL = msgspec.Raw(b"null")
# DecodeError: not JSON (or cut off). ValidationError, its subclass: JSON, but not the declared shape.
NotJSON = msgspec.DecodeError
Misshapen = msgspec.ValidationError


class _Ref(msgspec.Struct):
    id: Any = None


class _ToOne(msgspec.Struct):
    data: _Ref | None = None


class _EventRelations(msgspec.Struct):
    profile: _ToOne | None = None
    metric: _ToOne | None = None


class EventAttributes(msgspec.Struct):
    # Any: a value of an unexpected type is judged by the row code, as for a dict
    timestamp: Any = None
    datetime: Any = None
    uuid: Any = None
    event_properties: msgspec.Raw = NULL


class Event(msgspec.Struct):
    id: str             # the row's key: an event without one is an answer not shaped as expected
    attributes: EventAttributes | None = None
    relationships: _EventRelations | None = None

    def related_ids(self):
        """(metric id, profile id) of the event's relationships, None where one is absent."""
        relationships = self.relationships
        if relationships is None:
            return None, None
        metric, profile = relationships.metric, relationships.profile
        metric = metric.data if metric is not None else None
        profile = profile.data if profile is not None else None
        return (metric.id if metric is not None else None), (profile.id if profile is not None else None)


class Location(msgspec.Struct):
    address1: Any = None
    address2: Any = None
    city: Any = None
    region: Any = None
    zip: Any = None
    country: Any = None
    latitude: Any = None
    longitude: Any = None
    timezone: Any = None


class ProfileAttributes(msgspec.Struct):
    email: Any = None
    first_name: Any = None
    last_name: Any = None
    phone_number: Any = None
    organization: Any = None
    title: Any = None
    external_id: Any = None
    location: Location | None = None
    properties: msgspec.Raw = NULL      # an object of custom properties, or null
    created: Any = None
    updated: Any = None


class _MetricAttributes(msgspec.Struct):
    name: Any = None


class Included(msgspec.Struct):
    type: Any = None
    id: Any = None
    attributes: msgspec.Raw = NULL      # decoded by its type, only for the types a row uses

    def profile_attributes(self):
        return _PROFILE_ATTRIBUTES.decode(self.attributes)

    def metric_name(self):
        attributes = _METRIC_ATTRIBUTES.decode(self.attributes)
        return attributes.name if attributes is not None else None


class _Links(msgspec.Struct):
    next: Any = None


class EventPage(msgspec.Struct):
    data: list[Event] | None = None         # None: not a JSON:API answer, see client
    included: list[Included] | None = None
    links: _Links | None = None

    @property
    def next_url(self):
        return self.links.next if self.links is not None else None


# Issue 22: an /api/events page read with include=attributions (event_attributions): the events
# name their attributions, and each included attribution its related resources (spec:
# AttributionResponseObjectResource, no attributes, relationships only).
class _ToMany(msgspec.Struct):
    data: list[_Ref] | None = None


class _AttributedEventRelations(_EventRelations):
    attributions: _ToMany | None = None


class AttributedEvent(Event):
    relationships: _AttributedEventRelations | None = None

    def attribution_ids(self):
        """The ids of the event's attributions; None when the event says nothing of them."""
        relationships = self.relationships
        related = relationships.attributions if relationships is not None else None
        if related is None or related.data is None:
            return None
        return [ref.id for ref in related.data]


_ATTRIBUTION_RELATIONS = ("event", "attributed-event", "campaign", "campaign-message", "flow", "flow-message",
                          "flow-message-variation")
_AttributionRelations = msgspec.defstruct(
    "_AttributionRelations", [(name.replace("-", "_"), _ToOne | None, msgspec.field(default=None, name=name))
                              for name in _ATTRIBUTION_RELATIONS])


class IncludedRelated(Included):
    relationships: _AttributionRelations | None = None

    def related(self):
        """{relationship name: the related resource's id or None} of an included attribution."""
        relationships = self.relationships
        out = {}
        for name in _ATTRIBUTION_RELATIONS:
            one = getattr(relationships, name.replace("-", "_")) if relationships is not None else None
            out[name] = one.data.id if one is not None and one.data is not None else None
        return out


class AttributedEventPage(EventPage):
    data: list[AttributedEvent] | None = None
    included: list[IncludedRelated] | None = None


def next_link(document):
    """links.next of a page, decoded as a pages type or as dicts."""
    if isinstance(document, dict):
        return (document.get("links") or {}).get("next")
    return document.next_url


def object_type(name, keys):
    """A type built positionally, one value per key, that encodes as a JSON object with these keys
    in this order: a quarter of a dict's cost to build and half to encode."""
    return msgspec.defstruct(name, [(f"m{n}", object, msgspec.field(name=key)) for n, key in enumerate(keys)])


def member_test(names):
    """A function telling whether a JSON object (raw text) has a member named one of names. It
    decodes member names only (escapes included) and skips every value; it raises Misshapen on
    anything but an object."""
    fields = [(f"m{n}", msgspec.Raw, msgspec.field(default=None, name=name)) for n, name in enumerate(names)]
    members = msgspec.defstruct("Members", fields)
    decoder, none = msgspec.json.Decoder(members), members()

    def has_any(raw):
        return decoder.decode(raw) != none
    return has_any


_PROFILE_ATTRIBUTES = msgspec.json.Decoder(ProfileAttributes | None)
_METRIC_ATTRIBUTES = msgspec.json.Decoder(_MetricAttributes | None)
_DECODERS = {}


def decode_typed(body, document_type):
    """body decoded as document_type. Raw members are embedded in output lines as they are, so a
    body with line breaks between its tokens (never inside a JSON string) is made one line first."""
    decoder = _DECODERS.get(document_type)
    if decoder is None:
        decoder = _DECODERS[document_type] = msgspec.json.Decoder(document_type)
    body = body.rstrip()        # a final line break alone needs no pass over the page
    if b"\n" in body or b"\r" in body:
        body = msgspec.json.format(body, indent=-1)
    return decoder.decode(body)
