"""Errors that qcc reports to its users.

Every error here carries a one-line, human message that names the problem and, where there is
one, the fix. The CLI prints ``str(error)`` on stderr and exits non-zero; nothing else is shown.

    QccError                      base; exit code 2 (bad input) unless overridden
    ├── ConfigError               the config file cannot be read or is invalid
    │   └── ConfigValidationError one field is wrong; message starts with its dotted location
    ├── NotFoundError             unknown cluster or account
    ├── AlreadyExistsError        duplicate cluster or account name
    ├── CredentialError           a credential is missing, doubled, or its env var is unset
    └── ProxyError                the proxy cannot start, is not running, or is unreachable
"""

from __future__ import annotations


class QccError(Exception):
    """Base of every error shown to a user as one line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(QccError):
    """The config file is unreadable, unparsable or invalid."""


class ConfigValidationError(ConfigError):
    """One field of the config is invalid; ``location`` is its dotted path."""

    def __init__(self, location: str, problem: str) -> None:
        super().__init__(f"{location}: {problem}" if location else problem)
        self.location = location
        self.problem = problem


class NotFoundError(QccError):
    """A named cluster or account does not exist."""


class AlreadyExistsError(QccError):
    """A cluster or account with that name exists already."""


class CredentialError(QccError):
    """An account's credential is missing, doubled, or cannot be resolved."""


class ProxyError(QccError):
    """The proxy cannot start, is not running, or cannot be reached."""

    exit_code = 1
