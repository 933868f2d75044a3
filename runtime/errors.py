"""Typed errors: every failure a user can cause or meet has its own class and a message that says
what was expected, what was found and what to do. The CLIs map them to exit codes."""

import numbers


class NextwordError(Exception):
    """Base of every error nextword raises on purpose."""

    exit_code = 1


class InputError(NextwordError, ValueError):
    """Bad text, bad arguments (k < 1, unknown variant name, ...)."""

    exit_code = 2


class BundleError(NextwordError):
    """The bundle cannot be trusted or used: nothing from it reached an interpreter."""

    exit_code = 3


class BundleInvalid(BundleError):
    """Manifest or vocabulary missing, malformed, inconsistent, or naming files outside the bundle."""


class HashMismatch(BundleError):
    """A file's size or sha256 differs from what the manifest records (damaged or half-copied)."""


class UnsupportedVersion(BundleError):
    """The manifest's format_version is not one this runtime reads."""


class VariantUnavailable(BundleError):
    """The requested variant exists but cannot run here (recorded as not runnable, or refused)."""


class BackendUnavailable(NextwordError):
    """No interpreter package that can run the requested variant is installed."""

    exit_code = 4


def check_int(name, value, low):
    """An integer argument >= low: TypeError for a wrong type, InputError for a value out of range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise InputError(f"{name} must be at least {low}, got {value}")
    return int(value)
