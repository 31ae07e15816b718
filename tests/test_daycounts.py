"""The per-day counts' arithmetic (tap_klaviyo/daycounts.py): which days are read again, and what a
run leaves in the state. The runs themselves are tested over HTTP in test_late_events.py."""
from tap_klaviyo import daycounts
from tap_klaviyo.daycounts import DAY, Tally, differing

D = 20_000      # a UTC day number


def test_days_read_again_are_those_klaviyo_counts_differently_now_or_since_last_time():
    lower, upper = D * DAY, (D + 5) * DAY + 3600
    ours = {D: 3, D + 1: 5, D + 2: 7, D + 4: 2}
    klaviyo = {D: 3, D + 1: 6, D + 2: 7, D + 3: 0, D + 4: 1, D + 5: 4}
    # D+1 and D+4: more and fewer than ours; D+5: the bookmark's own day, partly counted so far
    assert differing(klaviyo, ours, {}, lower, upper) == [
        ((D + 1) * DAY, (D + 2) * DAY), ((D + 4) * DAY, upper)]
    # Klaviyo kept one below what its API lists on D+2 (6 against our 7); a late event brings it level
    assert differing({D + 2: 7}, {D + 2: 7}, {D + 2: 6}, (D + 2) * DAY, (D + 3) * DAY) == [
        ((D + 2) * DAY, (D + 3) * DAY)]
    assert differing({D + 2: 6}, {D + 2: 7}, {D + 2: 6}, (D + 2) * DAY, (D + 3) * DAY) == [
        ((D + 2) * DAY, (D + 3) * DAY)], "a day Klaviyo still counts off ours is read again"


def test_a_run_keeps_its_counts_re_read_days_replaced_and_klaviyo_s_where_they_differ():
    tally = Tally({"m": {D: 4, D + 1: 9, D - 30: 2}}, {"m": {D + 1: 8}}, D * DAY, True)
    tally.recount("m", [D + 1], {D: 4, D + 1: 10})
    tally.add({("m", D + 1): 10, ("m", D + 2): 3, ("n", D + 2): 1})
    ours, theirs = tally.result()
    text = daycounts.day_text
    # D-30 is out of the window; D+1 read again (10); D+2 counted from the bookmark on
    assert ours == {"m": {text(D): 4, text(D + 1): 10, text(D + 2): 3}, "n": {text(D + 2): 1}}
    assert theirs == {}, "Klaviyo's count agrees with the re-read: nothing to remember"
    tally = Tally({"m": {D: 4}}, {}, D * DAY, True)
    tally.recount("m", [D], {D: 5})
    tally.add({("m", D): 4})        # the re-read still finds 4: Klaviyo counts one the API does not list
    assert tally.result() == ({"m": {text(D): 4}}, {"m": {text(D): 5}})


def test_counts_past_the_bookmark_are_cut_at_its_day():
    assert daycounts.up_to({"m": {D: 1, D + 1: 2, D + 2: 3}}, D + 1) == {"m": {D: 1}}


def test_the_window_reaches_back_the_days_asked_and_never_before_start_date():
    started = (D + 20) * DAY + 5000
    assert daycounts.window_start(started, 20, 0) == D * DAY
    assert daycounts.window_start(started, 20, D * DAY + 1) == (D + 1) * DAY
