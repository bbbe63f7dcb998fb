from datetime import timedelta

import pytest

from portal.staff.templatetags.staff_words import duration_words


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (timedelta(minutes=15), "15 minutes"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(hours=2), "2 hours"),
        (timedelta(seconds=90), "90 seconds"),
        (None, ""),
    ],
)
def test_cool_off_periods_read_as_words(value, words):
    assert duration_words(value) == words
