"""Credentials that live somewhere else and change: shell-command helpers and OAuth2 tokens.

:mod:`~qcc.credentials.source` keeps one account's current value (single-flight refresh, no
lock), :mod:`~qcc.credentials.command` runs a helper command, :mod:`~qcc.credentials.oauth`
talks to a token endpoint, :mod:`~qcc.credentials.tokens` persists rotated refresh tokens and
:mod:`~qcc.credentials.keeper` refreshes every source before it expires. Static credentials
(``api_key``, ``*_env``) never come here: they are resolved once, by the pool.
"""
