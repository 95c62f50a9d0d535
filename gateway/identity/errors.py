"""The identity package's base error."""

from __future__ import annotations


class IdentityError(ValueError):
    """Bad identity data: a malformed dial pattern, SIP URI or password hash."""


class PatternError(IdentityError):
    """A dial pattern does not follow the pattern language (see `gateway.identity.patterns`)."""


class PasswordHashError(IdentityError):
    """A stored password hash is not in a format `verify_secret` understands."""


class LoginBusy(IdentityError):
    """Too many web logins are being checked at once; the login was not checked (try again later)."""


class LoginThrottled(LoginBusy):
    """Too many failed logins from this address (or for this user id from it): wait ``retry_after`` s."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
