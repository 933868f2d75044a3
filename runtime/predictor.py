"""The device-side predictor: text -> window of ids -> interpreter -> probabilities -> words.

Everything a model needs beyond the interpreter lives here: the window (runtime/windowing.py),
softmax in numpy over the logits every variant emits, top-k (runtime/ranking.py), generation,
batches, word completion (runtime/complete.py), the blocklist (runtime/blocklist.py) and a lock for
threads. Which variant runs where is runtime/choice.py's job.
"""

import logging
import math
import numbers
import os
import threading

import numpy as np

from .choice import candidates, reason as choice_reason
from .backends import check_backend, open_first, package_version
from .blocklist import Blocklist, check_words, read_file as read_blocklist
from .bundle import Bundle
from .bundle_files import folder_identity
from .complete import Completer, check_k as check_complete_k
from .errors import ArgumentTypeError, BundleError, InputError, check_int as _check_int, check_threads
from .guarded import run_checked
from .limits import MAX_GENERATE_WORDS
from .mix import Mixer, check_mix
from .ranking import Ranking, softmax
from .session import Session, check_session_args
from .step import load_step_for, step_variant as check_step_variant
from .windowing import pad_window, pad_windows

log = logging.getLogger(__name__)


def _check_name(what, value):
    """A variant, step variant or backend name: a str or None, else ArgumentTypeError (a list would
    otherwise fail deep inside as an unhashable dict key)."""
    if value is None or isinstance(value, str):
        return value
    raise ArgumentTypeError(f"{what} must be a str or None, got {type(value).__name__} {value!r}")


def _first(best):
    if not best:
        raise InputError("every word of the vocabulary is blocked: nothing to suggest")
    return best[0][0]


def _blocklist_words(blocklist):
    """Predictor.load's blocklist= as a list of words: None, a file path (str or os.PathLike), or an iterable."""
    if blocklist is None:
        return []
    if isinstance(blocklist, (str, bytes, os.PathLike)):
        return read_blocklist(blocklist)
    return check_words(blocklist)


def _mixer(bundle, mix):
    """The bundle's mixture for `mix` (runtime/mix.py); its n-gram is read and verified here."""
    entry = bundle.manifest.ngram
    if mix == "ngram" and entry is None:
        raise InputError("mix='ngram' needs a bundle with an n-gram model (ngram.npz); this one has none: "
                         "re-export it with nextword-export (which builds one by default)")
    ngram = bundle.ngram() if mix != "lstm" else None
    return Mixer(ngram, mix, entry and entry["lstm_weight"], entry and entry["mix"])


def _check_text(text):
    if not isinstance(text, str):
        raise ArgumentTypeError(f"text must be str, got {type(text).__name__}")
    return text


class Predictor:
    """Next-word suggestions from a verified bundle. Safe to share between threads."""

    def __init__(self, bundle, variant, runner, package, skipped, num_threads, reason=""):
        self.bundle = bundle
        self.variant = variant
        self.package = package
        self.skipped = skipped
        self.reason = reason      # why this variant on this package (runtime/choice.py)
        self.num_threads = num_threads
        self.tokenizer = bundle.tokenizer
        m = bundle.manifest
        self.window = m.window
        self.vocab_size = m.vocab_size
        self._runner = runner
        self._lock = threading.Lock()
        self.blocklist = Blocklist(self.tokenizer, self.vocab_size)   # shared by every ranking of this predictor
        self.ranking = Ranking(self.tokenizer, self.vocab_size, f"variant {variant.name} on {package}", self.blocklist)
        self.completer = Completer(bundle, self.vocab_size, self.blocklist)
        self.mixer = Mixer(None, "lstm")   # Predictor.load sets the bundle's mixture (runtime/mix.py)
        spec_in = variant.inputs[0]
        self._in_dtype = np.dtype(spec_in.dtype)
        # Dynamic-range quantization picks activation scales from the whole input tensor, so a batched
        # call would make one text's answer depend on the others: such variants run row by row.
        self._batched = spec_in.shape[0] == -1 and variant.quantization != "dynamic-int8"
        self._in = np.zeros((1, self.window), dtype=self._in_dtype)
        self._one = ((1, self.vocab_size),)   # the output shape of a one-row call
        self._step, self._step_name, self._step_lock = None, None, threading.Lock()   # streaming: runtime/session.py

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def load(cls, path, backend="auto", variant=None, num_threads=1, step_variant=None, blocklist=None,
             mix="both"):
        """Verify the bundle, then pick a variant and an interpreter package.

        backend: auto (or None) | tflite | onnx | ai-edge-litert | tflite-runtime | onnxruntime.
        variant: a name from the manifest, or None: the bundle's measured preference (window variant
        x package, best first) on the installed interpreters, then its default variant and the other
        window variants, smallest first; the first that loads wins (see describe()).
        step_variant: the step variant sessions use (loaded on first use), or None to pick the one
        closest to the window variant.
        blocklist: words never suggested: a file path (one word a line, runtime/blocklist.py) or an
        iterable of words; change it later with block() / unblock().
        mix: what suggestions are made of (runtime/mix.py): "both" (the LSTM mixed with the bundle's
        n-gram, with the share export fitted; the LSTM alone when the bundle has none), "lstm", "ngram"
        (InputError when the bundle has no n-gram).
        A bundle replaced while it is read (nextword-export --force swaps the folder) is read again:
        the error is raised only if the folder did not change meanwhile (a damaged bundle)."""
        backend = "auto" if _check_name("backend", backend) is None else backend
        _check_name("variant", variant)
        _check_name("step_variant", step_variant)
        check_mix(mix)
        blocked = _blocklist_words(blocklist)   # before the bundle: a bad file is the cheaper error
        for attempt in range(3):
            before = folder_identity(path)
            try:
                predictor = cls._load(path, backend, variant, num_threads, step_variant)
                predictor.mixer = _mixer(predictor.bundle, mix)
                break
            except BundleError:
                if attempt == 2 or folder_identity(path) == before:
                    raise
        if blocked:
            predictor.block(blocked)
        return predictor

    @classmethod
    def _load(cls, path, backend, variant, num_threads, step_variant):
        check_backend(backend)
        num_threads = check_threads(num_threads)
        bundle = Bundle.open(path)
        m = bundle.manifest
        windows = [v for v in m.variants.values() if v.kind == "window"]
        if step_variant is not None:
            check_step_variant(m, step_variant)
        if variant is not None and (variant not in m.variants or m.variants[variant].kind != "window"):
            raise InputError(f"unknown variant {variant!r}; this bundle has {', '.join(v.name for v in windows)}")
        v, runner, pkg, skipped = open_first(bundle, candidates(m, backend, variant), num_threads,
                                             strict=variant is not None)
        reason = choice_reason(m, backend, variant, v, pkg)
        log.info("%s: %s on %s: %s", bundle.path, v.name, pkg, reason)
        predictor = cls(bundle, v, runner, pkg, skipped, num_threads, reason)
        predictor._step_name = step_variant
        return predictor

    # -- windows and raw outputs -------------------------------------------------------------
    def ids(self, text):
        """The token ids the model sees for `text` (before windowing)."""
        return self.tokenizer.text_to_ids(_check_text(text))

    def _tail(self, text):
        """The last `window` ids of `text`: only the end of a long text is tokenized (Tokenizer.tail_ids)."""
        return self.tokenizer.tail_ids(_check_text(text), self.window)

    def window_for(self, text):
        """The (window,) id array for `text`: its last `window` ids, pre-padded with 0."""
        return pad_window(self._tail(text), self.window, dtype=self._in_dtype)

    def _run(self, x, rows=1):
        """One interpreter call; outputs checked against the manifest (runtime/guarded.py)."""
        shapes = self._one if rows == 1 else ((rows, self.vocab_size),)
        return run_checked(self._runner, [x], self.variant, self.package, shapes)[0]

    def logits(self, windows):
        """Raw scores (log-probabilities up to a constant) for a (B, window) id array."""
        windows = np.asarray(windows)
        if windows.ndim != 2 or windows.shape[1] != self.window:
            raise InputError(f"windows must have shape (batch, {self.window}), got {windows.shape}")
        if windows.dtype.kind not in "iu" and windows.size:
            raise ArgumentTypeError(f"windows must hold integer token ids, got dtype {windows.dtype}")
        if windows.size and (windows.min() < 0 or windows.max() >= self.vocab_size):
            raise InputError(f"window ids must be in 0..{self.vocab_size - 1}")
        x = windows.astype(self._in_dtype, copy=False)
        with self._lock:
            if self._batched:
                out = np.array(self._run(x, len(x)), dtype=np.float32)
            else:
                out = np.empty((len(x), self.vocab_size), dtype=np.float32)
                buf = self._in
                for i in range(len(x)):
                    buf[0] = x[i]
                    out[i] = self._run(buf)[0]
        return self.ranking.check(out)

    def probabilities(self, windows):
        """Softmax over the vocabulary (id 0 included, as the Keras model has it) for (B, window) ids."""
        return softmax(self.logits(windows))

    def _logits_ids(self, ids):
        with self._lock:
            pad_window(ids, self.window, out=self._in[0])
            return self._run(self._in)[0]

    # -- suggestions -------------------------------------------------------------------------
    def _best(self, z, k, owned=False):
        """Top-k (word, probability) from one row of logits (runtime/ranking.py)."""
        return self.ranking.best(z, k, owned)

    def top_k(self, text, k=5):
        """The k most likely next words with their probabilities, best first.
        k larger than the vocabulary returns every suggestible word."""
        k = _check_int("k", k, 1)
        ids = self._tail(text)
        z = self._logits_ids(ids)
        return self.mixer.best(self.ranking, z, ids, k) if self.mixer.active else self._best(z, k, owned=True)

    def predict_next(self, text):
        """The single most likely next word (InputError if every word is blocked)."""
        return _first(self.top_k(text, 1))

    def top_k_batch(self, texts, k=5):
        """top_k for many texts in one interpreter pass where the variant takes a batch."""
        if isinstance(texts, str) or not hasattr(texts, "__iter__"):
            raise ArgumentTypeError(f"texts must be a list of str, got {type(texts).__name__}")
        k = _check_int("k", k, 1)
        texts = list(texts)
        if not texts:
            return []
        windows = np.stack([self.window_for(t) for t in texts])
        if self.mixer.active:
            return [self.mixer.best(self.ranking, z, w, k) for z, w in zip(self.logits(windows), windows)]
        return [self._best(z, k, owned=True) for z in self.logits(windows)]

    def generate(self, text, n_words=4, strategy="greedy", temperature=1.0, top_k=None, seed=None):
        """Continue `text` by n_words words; returns the new words as a list.
        greedy: the most likely word each step. sample: draw from softmax(logits / temperature),
        restricted to the top_k words when top_k is given; `seed` (None or an int >= 0) makes it
        repeatable. At most MAX_GENERATE_WORDS words a call. Any finite temperature > 0 works: scores
        are shifted to max 0 before dividing, so a tiny one is greedy sampling, never an overflow."""
        n_words = _check_int("n_words", n_words, 0)
        if n_words > MAX_GENERATE_WORDS:
            raise InputError(f"n_words must be at most {MAX_GENERATE_WORDS}, got {n_words}")
        if strategy not in ("greedy", "sample"):
            raise InputError(f"strategy must be 'greedy' or 'sample', got {strategy!r}")
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
            raise ArgumentTypeError(f"temperature must be a number, got {type(temperature).__name__} {temperature!r}")
        try:
            t = float(temperature)
        except OverflowError:   # an int beyond float range
            t = math.inf
        if not (math.isfinite(t) and t > 0):
            raise InputError(f"temperature must be a finite number > 0, got {temperature!r}")
        if top_k is not None:
            top_k = _check_int("top_k", top_k, 1)
        if seed is not None:
            seed = _check_int("seed", seed, 0)
        rng = np.random.default_rng(seed)
        context = self._tail(text)
        words = []
        for _ in range(n_words):
            z = self.logits(pad_windows([context], self.window, dtype=self._in_dtype))[0]
            z = self.mixer.scores(z, context).astype(np.float64)
            self.ranking.mask(z, -np.inf)
            available = int(np.isfinite(z).sum())
            if not available:
                raise InputError("every word of the vocabulary is blocked: nothing to generate")
            if strategy == "greedy":
                nxt = int(np.argmax(z))
            else:
                with np.errstate(over="ignore", under="ignore"):
                    z = (z - z.max()) / t   # <= 0 everywhere: overflow can only reach -inf
                if top_k is not None and top_k < available:
                    cut = np.partition(z, -top_k)[-top_k]
                    z[z < cut] = -np.inf
                p = np.exp(z - z.max())
                p /= p.sum()
                nxt = int(rng.choice(len(p), p=p))
            words.append(self.ranking.words[nxt])
            context = (context + [nxt])[-self.window:]
        return words

    # -- completion (runtime/complete.py) and the blocklist (runtime/blocklist.py) ----------------
    def complete(self, text_before_cursor, k=6):
        """The k most probable words that complete the word the text ends in (case-insensitive
        prefix), or the next words when it ends with a space or punctuation: a list of
        Suggestion(word, display, probability, source), best first; [] when no word matches.
        The next-word distribution is cached per context, so typing inside a word costs a lookup."""
        text = _check_text(text_before_cursor)
        k = check_complete_k(k)
        completer = self.completer
        parts = completer.split(text)
        if parts is None:   # the last word is longer than any word
            return []
        context, prefix = parts

        def distribution():
            ids = tuple(self._tail(context))
            return completer.distribution(
                ids, lambda: self.mixer.scores(self.ranking.check(self._logits_ids(list(ids))), ids))
        return completer.suggest(prefix, k, distribution, completer.sentence_start(context))

    def block(self, words):
        """Never suggest `words` (a str or an iterable of str), by any method, sessions included.
        Returns how many were newly blocked."""
        return self.blocklist.block(words)

    def unblock(self, words):
        """Suggest `words` again. Returns how many had been blocked."""
        return self.blocklist.unblock(words)

    # -- streaming (runtime/session.py, runtime/step.py) -------------------------------------------------------
    def step_model(self):
        """The step variant sessions run on, loaded once, on first use; it ranks with this
        predictor's blocklist."""
        if self._step is None:
            with self._step_lock:
                if self._step is None:
                    step = load_step_for(self, self._step_name)
                    step.ranking.blocklist = self.blocklist
                    step.mixer = self.mixer
                    self._step = step
        return self._step

    def session(self, mode="stream", history=20, learn=False, user_file=None):
        """A streaming session: feed words, get suggestions, one LSTM step per word (mode "stream") or
        the window model's exact answer (mode "exact"); `history` bounds undo. learn=True: the session
        learns what it is fed; user_file: where it keeps it (read now, written by save_user()).
        See runtime/session.py."""
        check_session_args(mode, history)   # before loading anything (history <= limits.MAX_HISTORY)
        return Session(self.step_model(), mode=mode, history=history, completer=self.completer,
                       learn=learn, user_file=user_file)

    # -- description -------------------------------------------------------------------------
    def describe(self):
        """A few lines for people: which variant runs on which package, why, and what was skipped."""
        v = self.variant
        threads = f"{self.num_threads} thread" + ("s" if self.num_threads != 1 else "")
        lines = [f"variant {v.name} on {self.package} {package_version(self.package)} "
                 f"({v.format}, {v.quantization}, {v.size} bytes, {threads})",
                 f"why: {self.reason}", self.mixer.describe()]
        if self.skipped:
            lines.append("skipped:")
            lines += [f"  - {s}" for s in self.skipped]
        return "\n".join(lines)

    def info(self):
        m, v = self.bundle.manifest, self.variant
        return {"bundle": self.bundle.path, "backend": self.package, "backend_version": package_version(self.package),
                "variant": v.name, "file": v.file, "format": v.format, "quantization": v.quantization,
                "size_bytes": v.size, "num_threads": self.num_threads, "vocab_size": m.vocab_size,
                "window": m.window, "oov_token": self.tokenizer.oov_token, "output": m.output,
                "default_variant": m.default_variant,
                "variants": {n: {"file": x.file, "size_bytes": x.size, "kind": x.kind} for n, x in m.variants.items()},
                "parity": v.parity, "skipped": list(self.skipped), "reason": self.reason,
                "lexicon": m.lexicon, "tokenizer_words": len(self.tokenizer.word_counts),
                "blocked_words": len(self.blocklist), "mix": self.mixer.info(),
                "cost": v.cost.get(self.package),
                "preference": [{"variant": e.variant, "package": e.package, "score": e.score} for e in m.preference]}
