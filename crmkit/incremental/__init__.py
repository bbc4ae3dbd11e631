"""Caching and incrementality, owned by the core and invisible to plugins.

The parse cache (:mod:`.cache`), parallel parsing of a cold start
(:mod:`.parallel`), applying changed files in ``crmkit watch`` (:mod:`.reload`),
rule results kept while their declared inputs are the same (:mod:`.memo`),
rendered text of pure report sections and rows (:mod:`.render`), and the replay of
read-only commands (:mod:`.replay`).  Every one of them must give exactly what a
fresh computation gives; the tests compare both after random edits.
"""
