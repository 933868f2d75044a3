"""The one-step model: a bundle's *step* variant on one interpreter, (token id, h, c) -> (logits,
h', c'), and which step variant a predictor's sessions use. Sessions (runtime/session.py) carry the
state between words; this module only steps.

Padding states are cached: `pad_state(k)` is the state after k padding steps over id 0 from the zero state,
so the window model's input for a context of n < window ids costs n steps (exact_state).

One StepModel serves every session of a predictor, so its interpreter sits behind one lock, a fair
(first come, first served) one held for at most MAX_FEED_CHUNK steps at a time: a session fed a
whole book steps through it in chunks and other sessions' calls get in between. Every interpreter
call's outputs are checked against the manifest's shapes (runtime/guarded.py)."""

import collections
import threading

import numpy as np

from .backends import PACKAGES, check_backend, open_first, packages_for
from .bundle import Bundle
from .errors import ArgumentTypeError, BackendUnavailable, InputError, VariantUnavailable, check_threads
from .guarded import run_checked
from .limits import MAX_FEED_CHUNK, MAX_NGRAM_ORDER
from .mix import Mixer
from .ranking import Ranking

# z: logits (V,) for the next word after this state; recent: the last ids stepped through (at most
# MAX_NGRAM_ORDER - 1, 0 = padding), the context the bundle's n-gram mixes in (runtime/mix.py)
State = collections.namedtuple("State", "h c z recent", defaults=((),))


def step_variant(manifest, name):
    """The step variant `name` of the manifest, or InputError naming the ones it has."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"step variant must be a str, got {type(name).__name__} {name!r}")
    v = manifest.variants.get(name)
    if v is None or v.kind != "step":
        steps = [n for n, x in manifest.variants.items() if x.kind == "step"]
        raise InputError(f"unknown step variant {name!r}; this bundle has {', '.join(steps) or 'none'}")
    return v


class FairLock:
    """A lock granted in the order it was asked for (tickets), so a thread that releases it and asks
    again at once queues behind the threads already waiting (threading.Lock lets it barge in)."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._next = 0       # the next ticket handed out
        self._serving = 0    # the ticket that holds the lock

    def __enter__(self):
        with self._cond:
            ticket = self._next
            self._next += 1
            while self._serving != ticket:
                self._cond.wait()
        return self

    def __exit__(self, *exc):
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


class StepModel:
    """One step variant on one interpreter package: (id, h, c) -> (logits, h', c'). Thread-safe:
    every interpreter call happens under this object's lock."""

    def __init__(self, bundle, variant, runner, package, num_threads=1):
        self.bundle, self.variant, self.package, self.num_threads = bundle, variant, package, num_threads
        m = bundle.manifest
        self.window, self.vocab_size = m.window, m.vocab_size
        self.tokenizer = bundle.tokenizer
        ids_spec, h_spec, c_spec = variant.inputs
        self.units = int(h_spec.shape[-1])
        if c_spec.shape[-1] != self.units or any(o.shape[-1] != self.units for o in variant.outputs[1:]):
            raise VariantUnavailable(f"variant {variant.name}: h, c, h_out and c_out must have the same width")
        self._runner = runner
        self._lock = FairLock()
        self._pads_lock = threading.Lock()
        self._pads = None
        self._ids = np.zeros((1, 1), dtype=np.dtype(ids_spec.dtype))
        self._shapes = ((1, self.vocab_size), (1, self.units), (1, self.units))
        self.calls = 0   # interpreter calls made so far (all sessions)
        self.ranking = Ranking(self.tokenizer, self.vocab_size, f"step variant {variant.name} on {package}")
        self.mixer = Mixer(None, "lstm")   # the predictor that loads it sets its own (runtime/mix.py)

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def load(cls, bundle, variant, backend="auto", num_threads=1):
        """The named step variant of `bundle` (a Bundle or a folder) on `backend` (auto, a format or a
        package name)."""
        check_backend(backend)
        num_threads = check_threads(num_threads)
        bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
        v = step_variant(bundle.manifest, variant)
        packages = packages_for(backend, v.format)
        if not packages:
            raise BackendUnavailable(f"backend {backend!r} does not run {v.format} files ({v.name})")
        return _open_first(bundle, [(v, packages)], num_threads, strict=True)

    # -- stepping ----------------------------------------------------------------------------
    def zero_state(self):
        h = np.zeros((1, self.units), dtype=np.float32)   # the schema admits float32 states only
        return State(h, h.copy(), None)

    def _step(self, token, h, c):
        """One interpreter call; the caller holds the lock."""
        ids = self._ids
        ids[0, 0] = token
        self.calls += 1
        logits, h, c = run_checked(self._runner, [ids, h, c], self.variant, self.package, self._shapes)
        # the interpreters hand back fresh arrays (TFLite get_tensor copies), so no copy is made here
        return State(h, c, logits.reshape(-1))

    def advance(self, state, ids, past=None):
        """The state after stepping through `ids` from `state`. `past`, if given (a bounded deque),
        receives the state before each step, so a caller keeps its undo history without a list of
        every state. The lock is held for at most MAX_FEED_CHUNK steps at a time."""
        for i in range(0, len(ids), MAX_FEED_CHUNK):
            with self._lock:
                for token in ids[i:i + MAX_FEED_CHUNK]:
                    if past is not None:
                        past.append(state)
                    recent = (state.recent + (token,))[-(MAX_NGRAM_ORDER - 1):]
                    state = self._step(token, state.h, state.c)._replace(recent=recent)
        return state

    def run(self, ids, state=None):
        """The state after running `ids` from `state` (default: the zero state)."""
        return self.advance(self.zero_state() if state is None else state, ids)

    def pad_state(self, k):
        """The state after k padding steps (id 0) from the zero state, 0 <= k <= window; cached."""
        if self._pads is None:
            with self._pads_lock:
                if self._pads is None:
                    pads = collections.deque()
                    last = self.advance(self.zero_state(), [0] * self.window, pads)
                    self._pads = list(pads) + [last]
        return self._pads[k]

    def start_state(self):
        """Where a stream session starts: after a full window of padding."""
        return self.pad_state(self.window)

    def exact_state(self, ids):
        """The state after the window model's input for context `ids`: the last `window` ids,
        pre-padded with 0, from the zero state."""
        ids = list(ids)[-self.window:] if self.window else []
        n = len(ids)
        return self.run(ids, self.pad_state(self.window - n)) if n else self.pad_state(self.window)

    def check_ids(self, ids):
        """`ids` as a list of int: a sequence of Python ints or numpy integers, or a 1-D integer array.
        A str, floats (1.9 would silently become 1) and bools are refused with ArgumentTypeError."""
        if isinstance(ids, np.ndarray):
            if ids.dtype.kind not in "iu" or ids.ndim != 1:
                raise ArgumentTypeError(f"ids must be a 1-D array of integer token ids, got {ids.ndim}-D {ids.dtype}")
            ids = ids.tolist()
        elif isinstance(ids, (str, bytes, bytearray)) or not hasattr(ids, "__iter__"):
            raise ArgumentTypeError(f"ids must be a sequence of int token ids, got {type(ids).__name__}; "
                                    "feed text with feed()")
        else:
            ids = list(ids)
            for i in ids:
                if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
                    raise ArgumentTypeError(f"ids must be int token ids, got {type(i).__name__} {i!r}")
            ids = [int(i) for i in ids]
        if ids and (min(ids) < 0 or max(ids) >= self.vocab_size):
            raise InputError(f"ids must be in 0..{self.vocab_size - 1}")
        return ids


# -- choosing and loading a step variant -------------------------------------------------------
def _open_first(bundle, candidates, num_threads, strict=False):
    """The shared fallback chain (runtime.backends.open_first), for step variants."""
    v, runner, pkg, _ = open_first(bundle, candidates, num_threads, strict=strict, what="step variant")
    return StepModel(bundle, v, runner, pkg, num_threads)


def load_step_for(predictor, name=None):
    """The step model a Predictor's sessions use: `name`, or the step variant closest to the
    predictor's window variant (same format on the same package, then same quantization, then
    float32, then smaller), falling back to other formats."""
    m = predictor.bundle.manifest
    w = predictor.variant
    if name is not None:
        steps = [step_variant(m, name)]
    else:
        steps = sorted((v for v in m.variants.values() if v.kind == "step"),
                       key=lambda v: (v.format != w.format, v.quantization != w.quantization,
                                      v.quantization != "float32", v.size))
    if not steps:
        raise VariantUnavailable(f"{predictor.bundle.path} has no step variants, so it cannot stream; "
                                 "re-export it with a current nextword-export (step variants are in the default set)")
    candidates = [(v, (predictor.package,) if v.format == w.format else PACKAGES[v.format]) for v in steps]
    return _open_first(predictor.bundle, candidates, predictor.num_threads, strict=name is not None)
