import pytest

from portal.staff import selectors
from tests.conftest import make_staff
from tests.staff.otp import confirmed_device

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("count", [10, 40])
def test_staff_rows_cost_two_queries_however_many_people(count, django_assert_num_queries):
    for n in range(count):
        person = make_staff(f"person{n:02d}", "Viewer", "Approver")
        if n % 3 == 0:
            confirmed_device(person)

    with django_assert_num_queries(2):
        rows = selectors.staff_rows()

    assert len(rows) == count
    assert rows[0].role_names == ["Viewer", "Approver"]
    assert [r.has_two_factor for r in rows[:3]] == [True, False, False]


def test_inactive_people_are_listed_last(admin, viewer):
    viewer.is_active = False
    viewer.save(update_fields=["is_active"])
    make_staff("zed", "Operator")

    assert [p.username for p in selectors.staff_rows()] == ["ada.admin", "zed", "vic.viewer"]


def test_two_factor_is_optional_until_an_admin_requires_it(db):
    assert selectors.two_factor_required() is False
    assert selectors.security_settings_get().require_two_factor is False
