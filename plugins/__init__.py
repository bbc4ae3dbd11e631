"""crmkit's stock plugins (installed as ``crmkit_plugins``).

Each package is an ordinary plugin: crmkit loads them from
:data:`crmkit.engine.plugins.DEFAULT_PLUGINS` and ``disable_plugins`` blocks any of
them, as it does a third-party plugin; each uses only the public API in
:mod:`crmkit` and imports no other plugin.  Templates live beside the plugin
that owns them.
"""
