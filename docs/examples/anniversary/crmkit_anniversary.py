"""A reminder kind: thank customers on the anniversary of their first purchase."""
import crmkit


def anniversary(c: crmkit.CustomerView):
    first = c.derived.first_purchase
    if first is None:
        return
    day = c.today.replace(month=first.month, day=min(first.day, 28 if first.month == 2 else 31))
    if (c.today - day).days > c.options.grace_days:  # this year's is over: next year's
        day = day.replace(year=day.year + 1)
    years = day.year - first.year
    contacted = any(i.direction == "outbound" and (day - i.date).days <= 7 for i in c.history)
    if years >= c.options.min_years and not contacted:
        yield crmkit.Due(day, f"{years} years with us: thank {c.customer.name}",
                         f"first purchase on {first}", details={"years": years})


@crmkit.hookimpl
def crmkit_register(register):
    register(crmkit.ReminderKind("anniversary", anniversary, "thanks on the anniversary",
                                 options={"min_years": 1, "grace_days": 7}))
