"""crmkit's stock plugins (installed as ``crmkit_plugins``).

Each module is an ordinary plugin registered in the ``crmkit`` entry-point
group in pyproject.toml, exactly like a third-party plugin; each uses only the
public API in :mod:`crmkit`.
"""
