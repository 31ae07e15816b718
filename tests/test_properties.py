"""Property-based tests of what parses outside input and of the window arithmetic."""
import calendar
import datetime as dt

from hypothesis import given, settings, strategies as st

from tap_klaviyo import state, timeutil
from tap_klaviyo.errors import ConfigError
from tap_klaviyo.tasks.events import _datetime_filter

instants = st.integers(min_value=0, max_value=4102444800)     # 1970 .. 2100


@given(st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2099, 1, 1)),
       st.integers(min_value=-14 * 60, max_value=14 * 60))
def test_start_dates_with_any_offset_land_on_the_same_utc_instant(moment, offset_minutes):
    moment = moment.replace(microsecond=0)
    zone = dt.timezone(dt.timedelta(minutes=offset_minutes))
    aware = moment.replace(tzinfo=zone)
    expected = calendar.timegm(aware.astimezone(dt.timezone.utc).timetuple())
    assert timeutil.parse_instant(aware.isoformat()) == expected
    naive_utc = calendar.timegm(moment.timetuple())
    assert timeutil.parse_instant(moment.isoformat()) == naive_utc          # no offset means UTC
    assert timeutil.parse_instant(moment.strftime("%Y-%m-%dT%H:%M:%SZ")) == naive_utc


@given(st.dates(min_value=dt.date(1971, 1, 1), max_value=dt.date(2099, 1, 1)))
def test_a_bare_date_is_midnight_utc(day):
    assert timeutil.parse_instant(day.isoformat()) == calendar.timegm(day.timetuple())


@given(instants)
def test_formats_round_trip(epoch):
    assert timeutil.parse_instant(timeutil.to_bookmark(epoch)) == epoch
    assert timeutil.parse_instant(timeutil.to_classic(epoch)) == epoch
    assert timeutil.iso_to_classic(timeutil.to_classic(epoch).replace(" ", "T")) == timeutil.to_classic(epoch)


@given(st.text())
def test_unparseable_text_is_a_value_error_not_a_crash(text):
    try:
        timeutil.parse_instant(text)
    except ValueError:
        pass


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                       max_size=3), max_leaves=8)


@given(json_values)
@settings(max_examples=300)
def test_any_state_shape_is_accepted_or_refused_in_one_clear_error(raw):
    try:
        checked = state.validate(raw)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    for name in (checked.get("bookmarks") or {}):
        state.since(checked, name)


@given(st.dictionaries(st.sampled_from(["receive", "open", "Xi7Kwh"]), instants, min_size=1))
def test_bookmarks_round_trip_and_unknown_keys_are_kept(marks):
    value = {"bookmarks": {k: {"since": timeutil.to_bookmark(v), "extra": 1} for k, v in marks.items()},
             "other": [1, 2]}
    checked = state.validate(value)
    for name, epoch in marks.items():
        assert state.since(checked, name) == epoch
        state.set_since(checked, name, epoch + 5)
        assert checked["bookmarks"][name]["extra"] == 1
        assert state.since(checked, name) == epoch + 5
    assert checked["other"] == [1, 2]


@given(instants, instants)
def test_event_filter_is_unquoted_utc_with_z(a, b):
    text = _datetime_filter(a, b, "AbC123")
    assert text == (f'equals(metric_id,"AbC123"),greater-or-equal(datetime,{timeutil.to_bookmark(a)}),'
                    f"less-than(datetime,{timeutil.to_bookmark(b)})")
    assert "+" not in text and " " not in text


def test_legacy_metric_id_state_gives_the_earliest_of_the_stream_metrics():
    checked = state.validate({"bookmarks": {"A": {"since": "2024-01-02T00:00:00Z"},
                                            "B": {"since": "2024-01-01T00:00:00Z"}}})
    assert state.since(checked, "unsubscribe", ["A", "B"]) == calendar.timegm((2024, 1, 1, 0, 0, 0))
    assert state.since(checked, "unsubscribe", []) is None
