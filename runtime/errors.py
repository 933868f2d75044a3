"""Typed errors: every failure a user can cause or meet has its own class and a message that says
what was expected, what was found and what to do. The CLIs map them to exit codes."""

import numbers

from .limits import MAX_ERROR_CHARS, THREADS_PER_CORE, max_threads


def cap_message(text, limit=MAX_ERROR_CHARS):
    """`text` cut to `limit` characters, saying how much was left out (a hostile bundle can make a
    message megabytes long; a terminal needs one readable line)."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit - 40]}... [{len(text) - (limit - 40)} more characters cut]"


class NextwordError(Exception):
    """Base of every error nextword raises on purpose. Messages are capped at MAX_ERROR_CHARS."""

    exit_code = 1

    def __init__(self, message=""):
        super().__init__(cap_message(message))


class InputError(NextwordError, ValueError):
    """Bad text, bad arguments (k < 1, unknown variant name, ...)."""

    exit_code = 2


class ArgumentTypeError(InputError, TypeError):
    """An API argument of the wrong type (a str where ids were expected, a float count, ...): an
    InputError for the CLIs and a TypeError for Python callers."""


class UserFileInvalid(InputError):
    """A user file (a session's learnt words, runtime/user_file.py) that is corrupt, foreign, too big,
    of another format version or learnt with other tokenizer settings: refused whole; the bundle
    keeps working without it."""


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


class ModelError(NextwordError):
    """A verified model misbehaved at run time: its interpreter raised, or it answered with
    non-finite scores or a shape the manifest does not give. The bundle is damaged or hostile."""

    exit_code = 5


INTERNAL_EXIT_CODE = 70   # EX_SOFTWARE: an exception nextword did not raise on purpose (a bug of ours)


def check_int(name, value, low):
    """An integer argument >= low: TypeError for a wrong type, InputError for a value out of range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise InputError(f"{name} must be at least {low}, got {value}")
    return int(value)


def check_threads(value, name="num_threads"):
    """A thread count from 1 to limits.max_threads() (THREADS_PER_CORE x cores)."""
    value = check_int(name, value, 1)
    if value > max_threads():
        raise InputError(f"{name} must be at most {max_threads()} ({THREADS_PER_CORE} per core on this machine), got {value}")
    return value
