import datetime as dt
from decimal import Decimal

from crmkit import App

HISTORY = """\
- {customer: a, date: 2025-01-10, type: call}
- {customer: a, date: 2025-02-01, type: purchase, amount: 100}
- {customer: a, date: 2025-11-30, type: purchase, amount: 50.50}
- {customer: a, date: 2025-12-01, type: purchase, amount: 30, currency: USD}
- {customer: a, date: 2026-01-15, type: complaint, follow_up: 2026-01-20}
- {customer: a, date: 2026-03-01, type: note, summary: internal}
- {customer: a, date: 2026-06-01, type: purchase, amount: 200}
"""


def test_derived_values_as_of_a_day(make_workspace):
    root = make_workspace({"customers/a.yaml": "name: A\n", "customers/b.yaml": "name: B\n",
                           "interactions/h.yaml": HISTORY})
    a = App(root, dt.date(2026, 3, 1)).customer("a")
    d = a.derived
    assert d.first_contact == dt.date(2025, 1, 10)
    # the note on 2026-03-01 is not contact; the June purchase is planned
    assert d.last_contact == dt.date(2026, 1, 15)
    assert d.first_purchase == dt.date(2025, 2, 1)
    assert d.last_purchase == dt.date(2025, 12, 1)
    assert d.purchase_count == 3
    # the USD purchase is not in EUR revenue: 100 + 50.50
    assert d.revenue == Decimal("150.50")
    # 12 months = after 2025-03-01: only 50.50
    assert d.revenue_12m == Decimal("50.50")
    assert d.average_order_value == Decimal("75.25")
    assert d.complaint_count == 1
    assert d.interaction_count == 6
    assert [i.date for i in d.planned] == [dt.date(2026, 6, 1)]
    # the complaint's follow-up: nobody reached out since (the note does not count)
    assert [o.follow_up.date for o in d.open_follow_ups] == [dt.date(2026, 1, 20)]
    assert d.years_as_customer(a.today) == 1.1
    # the view splits the history at the day, too
    assert [i.date for i in a.planned] == [dt.date(2026, 6, 1)]
    assert len(a.history) == 6 and a.history[-1].type == "note"


def test_today_means_as_of(make_workspace):
    root = make_workspace({"customers/a.yaml": "name: A\n", "interactions/h.yaml": HISTORY})
    app = App(root, dt.date(2026, 6, 1))
    later = app.customer("a").derived
    # a purchase is no answer to the complaint's follow-up: only reaching out is
    assert later.revenue == Decimal("350.50") and len(later.open_follow_ups) == 1
    earlier = app.at(dt.date(2025, 1, 31)).customer("a").derived
    assert earlier.purchase_count == 0 and earlier.revenue == 0
    assert earlier.first_purchase is None and earlier.average_order_value is None
    assert len(app.at(dt.date(2025, 6, 1)).customer("a").history) == 2


def test_customer_without_interactions(make_workspace):
    root = make_workspace({"customers/b.yaml": "name: B\n"})
    d = App(root, dt.date(2026, 1, 1)).customer("b").derived
    assert (d.last_contact, d.purchase_count, d.revenue, d.open_follow_ups) == (None, 0, 0, ())
