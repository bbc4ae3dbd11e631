"""The rule engine: plugins, what they register, settings, views, evaluation, the App."""
