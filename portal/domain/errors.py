from __future__ import annotations


class DomainError(Exception):
    """A refusal the user can read: the message is shown where they are."""


class NotFound(DomainError):
    """Missing, or outside the actor's wing: the two answer alike so that another
    tenant's ids reveal nothing."""


class PermissionDenied(DomainError):
    pass


class ValidationFailed(DomainError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class SignInRefused(DomainError):
    pass
