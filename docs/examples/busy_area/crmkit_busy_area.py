"""Where most customers live: a label over everybody, a report section and a filter."""
from collections import Counter

import jinja2

import crmkit


def postal_code(customer: crmkit.CustomerView):
    address = customer.customer.address
    return address.postal_code if address else None


def busiest(population):
    """Over everybody (never kept: it runs in every build)."""
    codes = {c.id: postal_code(c) for c in population.customers}
    counts = Counter(code for code in codes.values() if code)
    top = max(counts.values(), default=0)
    return {cid: top > 1 and counts[code] == top for cid, code in codes.items()}


def section(app: crmkit.App):
    return {"ids": [cid for cid, yes in app.labels().column("busy_area").items() if yes]}


@jinja2.pass_context
def customer_name(context, customer_id):
    """Looks the customer up through the template's ``app``."""
    return context["app"].customer(customer_id).customer.name


@crmkit.hookimpl
def crmkit_register(register):
    register(crmkit.Label("busy_area", over_all=busiest,
                          description="lives where most of our customers live"))
    register(crmkit.ReportSection("weekly", "busy_area", "Where most customers live",
                                  "busy_area", section, order=90))


@crmkit.hookimpl
def crmkit_jinja_filters():
    return {"customer_name": customer_name}
