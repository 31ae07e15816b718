"""Reading a time range of a collection with as few requests as the data allows.

A range is first read through one cursor, in pages as large as the revision allows. Its first full
page says how much time a page of rows spans; when the rest of the range holds enough pages to
keep several connections busy, the task stops there and hands the rest to a few equal parts that
run side by side (each may split again the same way). Sparse ranges so cost about one request per
page of rows; dense ranges fill the pool. Each part is a Span of the stream's watermark, so the
bookmark stays contiguous whatever the split.
"""
import logging
import math

import msgspec

from .. import timeutil
from ..decoding import Mapping, PageMapper
from ..engine import Page, Span
from ..output import envelope
from ..daycounts import DAY
from ..state import Mark

# A part is only worth its own cursor when it is expected to hold this many pages: each part ends
# on a partly filled page, so this bounds the extra requests a split costs (about 1 in 5).
PAGES_PER_PART = 5
LOGGER = logging.getLogger("tap_klaviyo")


class RangeReader:
    """What differs between the ranges of one stream: the request and how rows are made.

    rows(document, lower, upper) returns (instant, row) pairs of the page's rows in [lower, upper),
    in the order the API sorted them (ascending instants); document is decoded as shape (a pages
    type), or as dicts when shape is None. rows is a module-level function, or a functools.partial
    of one with picklable arguments: pages may be decoded in a helper process (see decoding).
    """

    def __init__(self, endpoint, path, params, range_filter, rows, page_size, shape=None, keep=None,
                 metric_of=None, included=None):
        self.endpoint = endpoint
        self.shape = shape
        self.path = path
        self.params = params
        self.range_filter = range_filter
        self.rows = rows
        self.page_size = page_size
        self.keep = keep                # the columns a row keeps (None: all), once counted
        # what counts rows per metric and day (see daycounts): the metric id of every row, or the
        # column that holds each row's; None for a range that is not counted
        self.metric_of = metric_of
        # Issue 22: rows of a stream that come in the same pages (event_attributions): None, or
        # Included; its rows are those of the page's written rows
        self.included = included


class Included(msgspec.Struct, frozen=True):
    """What a RangeReader's pages also hold: rows(document, ids of the rows written, *arguments) ->
    (rows, missing) of the stream `stream` (its RECORD envelope: record), written beside the
    reader's own (or instead: emit False, a stream read only for this one). missing: the id of the
    reader's row of each row of `stream` the page names but does not hold (one per row lacking)."""
    stream: str
    record: object
    rows: object
    arguments: tuple = ()
    emit: bool = True


class PageRows(msgspec.Struct):
    """What a span needs of one page: its RECORD lines, and where its rows lie in time."""
    lines: bytes
    count: int              # rows written (those of the edge instant seen on the page before are not)
    read: int = 0           # rows of the page in the span's range
    first: int | None = None
    last: int | None = None     # the page's latest instant, and the ids of its rows there
    edge_ids: tuple = ()
    counted: dict | None = None     # (metric id, UTC day) -> rows written at or after the count's start
    also: tuple = ()                # (stream, rows written) of the rows of another stream (Included)
    lacking: int = 0                # rows of that stream the page names but does not hold
    held: int | None = None         # the instant of the first row written whose rows of that stream lack


def _extent(times):
    """(rows, first instant, latest instant, ids at the latest) of a page's (instant, id) pairs in
    page order; sorted pages have been seen slightly out of order: the latest instant is the edge."""
    if not times:
        return 0, None, None, ()
    last = max(instant for instant, _ in times)
    return len(times), times[0][0], last, tuple(row_id for instant, row_id in times if instant == last)


def page_rows(document, rows, record, lower, upper, skip, keep=None, count=None, included=None):
    """A page's PageRows (maybe in a helper process): skip holds ids already written. count:
    (metric_of, counted_from), to count the rows written from that instant on per metric and day.
    included: an Included, whose rows are written too."""
    pairs = rows(document, lower, upper)
    fresh = [(instant, row) for instant, row in pairs if row["id"] not in skip]
    counted = _count(fresh, *count) if count is not None else None
    chosen = [row for _, row in fresh] if keep is None else \
        [{name: value for name, value in row.items() if name in keep} for _, row in fresh]
    written, also, missing, held = len(fresh), (), (), None
    if included is None:
        lines = record.lines(chosen)
    else:
        more, missing = included.rows(document, {row["id"] for _, row in fresh}, *included.arguments)
        if missing:
            lacking_ids = set(missing)
            held = min(instant for instant, row in fresh if row["id"] in lacking_ids)
        more_lines = included.record.lines(more)
        if included.emit:
            lines, also = record.lines(chosen) + more_lines, ((included.stream, len(more)),)
        else:       # the stream's own rows are only read for these: the page's count is theirs
            lines, written = more_lines, len(more)
    return PageRows(lines, written, *_extent([(instant, row["id"]) for instant, row in pairs]),
                    counted=counted, also=also, lacking=len(missing), held=held)


def _count(fresh, metric_of, counted_from):
    column = metric_of.column if isinstance(metric_of, MetricColumn) else None
    counted = {}
    for instant, row in fresh:
        if instant >= counted_from:
            metric_id = row.get(column) if column else metric_of
            if metric_id is None:
                continue    # an event whose metric Klaviyo does not name is in no metric's count
            key = (metric_id, instant // DAY)
            counted[key] = counted.get(key, 0) + 1
    return counted


class MetricColumn(msgspec.Struct, frozen=True):
    """RangeReader.metric_of for rows of several metrics: the column holding each row's metric id."""
    column: str


class RangeScan(Span):
    """One unit's rows with instants in [lower, upper), read through one cursor, maybe split."""

    def __init__(self, stream, unit, lower, upper, reader, parts_allowed, skip_ids=frozenset(), confirm=None,
                 counted_from=None):
        super().__init__(stream, unit, lower, upper)
        self.reader = reader
        self.parts_allowed = parts_allowed
        # rows from this instant on are counted per metric and day (see daycounts); the rows
        # before it, re-read by a lookback, were counted by the run that first read them
        self.counted_from = counted_from if reader.metric_of is not None else None
        # None, or confirm() -> whether the range is to be read at all (it may wait for the metric list)
        self.confirm = confirm
        self._skip = set(skip_ids)      # emitted by the span before, at its last instant
        self._seen = 0                  # rows read so far, and the instant of the first
        self._first = None
        self._judged = False            # the split was considered once on a page spanning time

    def run(self, client, config):
        params = dict(self.reader.params)
        params["filter"] = self.reader.range_filter(self.lower, self.upper)
        mapper = PageMapper(self._mapping, self._page)
        read = client.pages(self.reader.endpoint, self.reader.path, params, mapper, self.reader.shape)
        for page in read:
            if self.confirm is not None:
                # asked once the first page is in: the answer has usually come meanwhile
                confirmed, self.confirm = self.confirm(), None
                if not confirmed:
                    del page
                    read.close()
                    yield Page(self, done=True, mark=Mark(progress=self.upper))
                    return
            done = page.done
            yield page
            del page        # not held while the next page is fetched
            if done:
                return

    def _mapping(self):
        count = None if self.counted_from is None else (self.reader.metric_of, self.counted_from)
        return Mapping(page_rows, (self.reader.rows, envelope(self.stream.name), self.lower, self.upper,
                                   frozenset(self._skip), self.reader.keep, count, self.reader.included))

    def _page(self, rows, last):
        page = self._page_of(rows, last)
        page.also = rows.also       # rows of another stream the page wrote (Included)
        if rows.held is not None:
            # not lost: that stream's bookmark stays at the first event lacking one (Mark.held), so
            # that the next run reads the event again; the reader's own rows are all written, and
            # its own bookmark (when it writes one) moves on
            included = self.reader.included
            LOGGER.warning("stream %s: Klaviyo named %d resource(s) for stream %s in a page of %s (%s) but left them "
                           "out of 'included': no rows for them this run; the bookmark of %s stays at or before "
                           "%s, so the next run reads them again", self.stream.name, rows.lacking, included.stream,
                           self.reader.path, self.unit, included.stream, timeutil.to_bookmark(rows.held))
            if page.mark is None:
                page.mark = Mark()
            page.mark.held = (included.stream, rows.held)
        return page

    def _page_of(self, rows, last):
        counted = rows.counted
        if last:
            return Page(self, rows.lines, rows.count, done=True, mark=Mark(progress=self.upper, counted=counted))
        extent = (rows.read, rows.first, rows.last, rows.edge_ids)
        split = self._split(extent)
        read, first, at, edge_ids = extent
        if not read:
            return Page(self, rows.lines, rows.count, mark=Mark(counted=counted) if counted else None)
        # the next page may repeat rows of this one at the edge instant: remember their ids
        self._skip = set(edge_ids)
        if self._first is None:
            self._first = first
        self._seen += read
        if split is not None:
            self._judged = True
        if split:
            LOGGER.info("stream %s (%s): about %.0f pages left after %s; reading them in %d parts side by side",
                        self.stream.name, self.unit, self._pages_left(self._seen, self._first, at),
                        timeutil.to_bookmark(at), len(split))
            return Page(self, rows.lines, rows.count, done=True, spawn=[(child, child.lower) for child in split],
                        mark=Mark(progress=at, split_at=at, counted=counted))
        return Page(self, rows.lines, rows.count, mark=Mark(progress=at, counted=counted))

    def _pages_left(self, seen, first, at):
        return (self.upper - at) * seen / (at - first + 1) / self.reader.page_size

    def _split(self, extent):
        """The parts the rest of the range is read in, judged once, on the first page that spans
        time, from the rows seen so far and this page's extent: None when not judged, [] when
        judged too sparse to split."""
        read, first, at, edge_ids = extent
        first = self._first if self._first is not None else first
        if self._judged or not read or at <= first:
            return None     # rows of one instant say nothing about density
        parts = min(self.parts_allowed, int(self._pages_left(self._seen + read, first, at) // PAGES_PER_PART))
        if parts < 2:
            return []
        width = math.ceil((self.upper - at) / parts)
        bounds = [at + width * n for n in range(parts)] + [self.upper]
        children = []
        for lower, upper in zip(bounds, bounds[1:]):
            if lower < upper:
                children.append(RangeScan(self.stream, self.unit, lower, upper, self.reader, self.parts_allowed,
                                          edge_ids if lower == at else (), counted_from=self.counted_from))
        return children
