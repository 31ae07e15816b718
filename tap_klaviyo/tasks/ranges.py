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

from .. import timeutil
from ..engine import Page, Span
from ..output import record_lines, time_extracted

# A part is only worth its own cursor when it is expected to hold this many pages: each part ends
# on a partly filled page, so this bounds the extra requests a split costs (about 1 in 5).
PAGES_PER_PART = 5
LOGGER = logging.getLogger("tap_klaviyo")


class RangeReader:
    """What differs between the ranges of one stream: the request and how rows are made.

    rows(document, lower, upper) returns (instant, row) pairs of the page's rows in [lower, upper),
    in the order the API sorted them (ascending instants); document is decoded as shape (a pages
    type), or as dicts when shape is None.
    """

    def __init__(self, endpoint, path, params, range_filter, rows, page_size, shape=None):
        self.endpoint = endpoint
        self.shape = shape
        self.path = path
        self.params = params
        self.range_filter = range_filter
        self.rows = rows
        self.page_size = page_size


class RangeScan(Span):
    """One unit's rows with instants in [lower, upper), read through one cursor, maybe split."""

    def __init__(self, stream, unit, lower, upper, reader, parts_allowed, skip_ids=frozenset()):
        super().__init__(stream, unit, lower, upper)
        self.reader = reader
        self.parts_allowed = parts_allowed
        self._skip = set(skip_ids)      # emitted by the span before, at its last instant
        self._seen = 0                  # rows read so far, and the instant of the first
        self._first = None
        self._judged = False            # the split was considered once on a page spanning time

    def run(self, client, config):
        params = dict(self.reader.params)
        params["filter"] = self.reader.range_filter(self.lower, self.upper)
        for page in client.pages(self.reader.endpoint, self.reader.path, params, self._page, self.reader.shape):
            done = page.done
            yield page
            del page        # not held while the next page is fetched
            if done:
                return

    def _page(self, document, last):
        pairs = self.reader.rows(document, self.lower, self.upper)
        fresh, skip = [], self._skip
        for instant, row in pairs:
            if row["id"] not in skip:
                fresh.append(row)
        lines = record_lines(self.stream.name, fresh, time_extracted())
        if last:
            return Page(self, lines, len(fresh), progress=self.upper, done=True)
        if not pairs:
            return Page(self, lines, len(fresh))
        # sorted pages have been seen slightly out of order: the page's latest instant is the edge
        last_instant = max(instant for instant, _ in pairs)
        # the next page may repeat rows of this one at the edge instant: remember their ids
        self._skip = {row["id"] for instant, row in pairs if instant == last_instant}
        if self._first is None:
            self._first = pairs[0][0]
        self._seen += len(pairs)
        children = self._split(last_instant)
        if children:
            return Page(self, lines, len(fresh), progress=last_instant, done=True, split_at=last_instant,
                        spawn=[(child, child.lower) for child in children])
        return Page(self, lines, len(fresh), progress=last_instant)

    def _split(self, at):
        if self._judged or at <= self._first:
            return None     # rows of one instant say nothing about density
        self._judged = True
        per_second = self._seen / (at - self._first + 1)
        remaining_pages = (self.upper - at) * per_second / self.reader.page_size
        parts = min(self.parts_allowed, int(remaining_pages // PAGES_PER_PART))
        if parts < 2:
            return None
        LOGGER.info("stream %s (%s): about %.0f pages left after %s; reading them in %d parts side by side",
                    self.stream.name, self.unit, remaining_pages, timeutil.to_bookmark(at), parts)
        width = math.ceil((self.upper - at) / parts)
        bounds = [at + width * n for n in range(parts)] + [self.upper]
        children = []
        for lower, upper in zip(bounds, bounds[1:]):
            if lower < upper:
                children.append(RangeScan(self.stream, self.unit, lower, upper, self.reader, self.parts_allowed,
                                          self._skip if lower == at else ()))
        return children
