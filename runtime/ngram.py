"""The bundle's n-gram model (ngram.npz): an interpolated modified Kneser-Ney model, read with numpy
alone. Export did all the counting (export/ngram.py); the file holds, per order, the discounted
probabilities and back-off weights, so a distribution is lookups: one dense unigram vector, then
for each higher order a searchsorted of the context key and a few sparse terms.

    p_k(w | h) = alpha_k(h, w) + gamma_k(h) * p_{k-1}(w | h')      h' = h without its first id
    p_1(w)     = unigram[w]                                          (already interpolated with uniform)

alpha_k(h, w) is stored for the (h, w) pairs the corpus (after pruning) holds, 0 elsewhere;
gamma_k(h) = 1 - sum_w alpha_k(h, w) for a stored context, 1 for any other (full back-off).

File format (an uncompressed .npz of plain little-endian numeric arrays, read with no pickle):
    meta       int64   (3,)          FORMAT_VERSION, order N (1..MAX_NGRAM_ORDER), vocab_size V
    discounts  float64 (N, 3)        D1, D2, D3+ per order (row 0: unigram level); informative
    pruned     int64   (N,)          entries dropped per order to fit the size budget; informative
    unigram    float32 (V,)          p_1; [0] == 0 (padding), sums to 1
    for k in 2..N:
    ctx{k}     int64   (C,)          context keys h = (h_1..h_{k-1}) in base V, strictly increasing
    ptr{k}     int64   (C + 1,)      context i owns entries ptr[i]:ptr[i+1] (at least one)
    gamma{k}   float32 (C,)          back-off weight of each context
    word{k}    int32   (E,)          next-word ids 1..V-1, strictly increasing within a context
    prob{k}    float32 (E,)          alpha_k(h, w)

Contexts are the ids before the next word exactly as the LSTM's pre-padded window holds them:
0 is padding / begin of document, and nothing before a 0 counts (each document starts from the
all-padding context). Every array is checked before use (dtype, shape, order, id ranges,
probabilities finite in [0, 1], each context's mass summing to 1): a damaged or crafted file is a
BundleInvalid that says what is wrong."""

import io
import zipfile

import numpy as np

from .errors import ArgumentTypeError, BundleInvalid, InputError
from .limits import MAX_NGRAM_BATCH_BYTES, MAX_NGRAM_BYTES, MAX_NGRAM_ENTRIES, MAX_NGRAM_ORDER, MAX_VOCAB_SIZE

FORMAT_VERSION = 1
FILE = "ngram.npz"
BOS = 0                  # padding: the begin-of-document context, as the LSTM sees it
SUM_TOLERANCE = 1e-4     # float32 storage: a context's stored mass must sum to 1 within this
KEY_LIMIT = 2 ** 63      # context keys are int64: V ** (N - 1) must stay below this
HEAD = {"meta": "<i8", "discounts": "<f8", "pruned": "<i8", "unigram": "<f4"}
LEVEL = {"ctx": "<i8", "ptr": "<i8", "gamma": "<f4", "word": "<i4", "prob": "<f4"}


def array_names(order):
    """{array name: dtype string} a file of this order holds, no more, no less."""
    names = dict(HEAD)
    for k in range(2, order + 1):
        names.update({f"{part}{k}": dtype for part, dtype in LEVEL.items()})
    return names


def _fail(where, what):
    raise BundleInvalid(f"{where}: {what}; the n-gram file is damaged or was crafted: re-export the bundle")


# -- reading the .npz ------------------------------------------------------------------------------
def _npy(raw, name, where):
    """One .npy member as a read-only array over `raw`, its header checked before any allocation."""
    fp = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            _fail(where, f"{name} is .npy version {version}, expected 1.0 or 2.0")
    except (ValueError, TypeError, SyntaxError, EOFError, OverflowError, RecursionError) as e:
        _fail(where, f"{name} has no valid .npy header ({e})")
    if dtype.kind not in "iuf" or dtype.itemsize == 0 or dtype.fields is not None or dtype.subdtype is not None:
        _fail(where, f"{name} holds {dtype} values (objects, records or text): only plain numbers are read")
    if fortran and len(shape) > 1:
        _fail(where, f"{name} is in Fortran order")
    count = 1
    for n in shape:
        if not isinstance(n, int) or n < 0:
            _fail(where, f"{name} declares the shape {shape}")
        count *= n
    offset = fp.tell()
    if count * dtype.itemsize != len(raw) - offset:
        _fail(where, f"{name} declares shape {shape} of {dtype} ({count * dtype.itemsize} bytes) "
                     f"but holds {len(raw) - offset} bytes")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape)


def read_npz(data, where=FILE):
    """{name: array} of an uncompressed .npz (bytes), every member a plain numeric array."""
    if len(data) > MAX_NGRAM_BYTES:
        _fail(where, f"the file is {len(data)} bytes, more than the {MAX_NGRAM_BYTES} allowed")
    # zipfile builds an object per central-directory entry before anything can count them: read the
    # count from the end record first (numpy writes it last, with no comment and no zip64 record)
    most = len(array_names(MAX_NGRAM_ORDER))
    end = data[-22:]
    if len(data) < 22 or end[:4] != b"PK\x05\x06" or data[-42:-38] == b"PK\x06\x07":
        _fail(where, "not an .npz file as numpy writes it (no plain zip end record at the end)")
    if int.from_bytes(end[10:12], "little") > most:
        _fail(where, f"{int.from_bytes(end[10:12], 'little')} members, at most {most} expected")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except Exception as e:   # hostile bytes: whatever zipfile raises means "not a readable zip"
        _fail(where, f"not a readable .npz (zip) file ({type(e).__name__}: {e})")
    if len(infos) > most:
        _fail(where, f"{len(infos)} members, at most {most} expected")
    arrays = {}
    for info in infos:
        name = info.filename[:-4] if info.filename.endswith(".npy") else None
        if name is None or name in arrays or info.filename.count("/"):
            _fail(where, f"unexpected member {info.filename[:60]!r}")
        if info.compress_type != zipfile.ZIP_STORED:
            _fail(where, f"{info.filename} is compressed (method {info.compress_type}); ngram.npz is written uncompressed")
        if info.file_size > len(data) or info.compress_size > len(data):
            _fail(where, f"{info.filename} claims {info.file_size} bytes in a file of {len(data)}")
        try:
            raw = zf.read(info)
        except Exception as e:   # as above: a damaged member, whatever zipfile makes of it
            _fail(where, f"cannot read {info.filename} ({type(e).__name__}: {e})")
        arrays[name] = _npy(raw, name, where)
    return arrays


# -- checks ------------------------------------------------------------------------------------------
def _probabilities(a, name, where):
    if not np.all((a >= 0) & (a <= 1)):   # NaN fails both comparisons
        _fail(where, f"{name} holds values outside [0, 1] (or NaN)")


def _check_level(arrays, k, V, where):
    ctx, ptr, gamma, word, prob = (arrays[f"{p}{k}"] for p in LEVEL)
    for name, a in zip(LEVEL, (ctx, ptr, gamma, word, prob)):
        if a.ndim != 1:
            _fail(where, f"{name}{k} must be 1-D, found shape {a.shape}")
    C, E = len(ctx), len(word)
    if C > MAX_NGRAM_ENTRIES or E > MAX_NGRAM_ENTRIES:
        _fail(where, f"order {k} holds {C} contexts and {E} entries, at most {MAX_NGRAM_ENTRIES} each")
    if len(ptr) != C + 1 or len(gamma) != C or len(prob) != E:
        _fail(where, f"order {k}: {C} contexts need ptr{k} of {C + 1} and gamma{k} of {C}, {E} entries prob{k} of "
                     f"{E}; found {len(ptr)}, {len(gamma)}, {len(prob)}")
    if C and (ctx[0] < 0 or ctx[-1] >= V ** (k - 1) or np.any(np.diff(ctx) <= 0)):
        _fail(where, f"ctx{k} must be strictly increasing keys in 0..{V}^{k - 1}-1")
    if ptr[0] != 0 or ptr[-1] != E or np.any(np.diff(ptr) <= 0):
        _fail(where, f"ptr{k} must rise strictly from 0 to {E} (every context holds an entry)")
    if E and (word.min() < 1 or word.max() >= V):
        _fail(where, f"word{k} holds ids outside 1..{V - 1}")
    if E > 1:
        step = np.diff(word) > 0
        step[ptr[1:-1] - 1] = True           # a new context may start anywhere
        if not np.all(step):
            _fail(where, f"word{k} is not strictly increasing within a context")
    _probabilities(gamma, f"gamma{k}", where)
    _probabilities(prob, f"prob{k}", where)
    if C:
        mass = np.add.reduceat(prob.astype(np.float64), ptr[:-1]) + gamma
        if np.max(np.abs(mass - 1)) > SUM_TOLERANCE:
            _fail(where, f"order {k}: a context's probabilities and back-off weight sum to "
                         f"{mass[np.argmax(np.abs(mass - 1))]:.6f}, not 1")


def check_arrays(arrays, where=FILE, vocab_size=None):
    """(order, vocab_size, {name: array}) of a complete, consistent set of arrays; BundleInvalid otherwise."""
    meta = arrays.get("meta")
    if not isinstance(meta, np.ndarray) or meta.dtype != np.dtype("<i8") or meta.shape != (3,):
        _fail(where, "meta must be 3 int64 values (format version, order, vocabulary size)")
    version, order, V = (int(x) for x in meta)
    if version != FORMAT_VERSION:
        _fail(where, f"format version {version}, this runtime reads {FORMAT_VERSION}")
    if not 1 <= order <= MAX_NGRAM_ORDER:
        _fail(where, f"order {order}, expected 1..{MAX_NGRAM_ORDER}")
    if not 2 <= V <= MAX_VOCAB_SIZE or V ** (order - 1) >= KEY_LIMIT:
        _fail(where, f"vocabulary size {V} (order {order}) out of range")
    if vocab_size is not None and V != vocab_size:
        _fail(where, f"built for {V} ids but the bundle's model has {vocab_size}")
    want = array_names(order)
    if set(arrays) != set(want):
        _fail(where, f"arrays {sorted(arrays)[:12]} do not match an order-{order} file ({sorted(want)[:12]})")
    plain = {}
    for name, dtype in want.items():
        a = arrays[name]
        if not isinstance(a, np.ndarray) or a.dtype != np.dtype(dtype):
            found = a.dtype.str if isinstance(a, np.ndarray) else type(a).__name__
            _fail(where, f"{name} is {found}, expected {dtype}")
        plain[name] = a
    if plain["discounts"].shape != (order, 3) or not np.all(np.isfinite(plain["discounts"])):
        _fail(where, f"discounts must be ({order}, 3) finite values")
    if plain["pruned"].shape != (order,) or np.any(plain["pruned"] < 0):
        _fail(where, f"pruned must be {order} counts >= 0")
    uni = plain["unigram"]
    if uni.shape != (V,):
        _fail(where, f"unigram must hold {V} values, found shape {uni.shape}")
    _probabilities(uni, "unigram", where)
    if uni[BOS] != 0 or abs(float(uni.sum(dtype=np.float64)) - 1) > SUM_TOLERANCE:
        _fail(where, "unigram must give padding 0 and sum to 1")
    for k in range(2, order + 1):
        _check_level(plain, k, V, where)
    return order, V, plain


# -- the model ---------------------------------------------------------------------------------------
def _ranges(starts, ends):
    """(row, k) pairs for row i and every k in starts[i]:ends[i], vectorized."""
    lens = ends - starts
    rows = np.repeat(np.arange(len(starts)), lens)
    first = np.repeat(np.cumsum(lens) - lens, lens)
    return rows, np.repeat(starts, lens) + (np.arange(int(lens.sum())) - first)


class NgramModel:
    """A verified n-gram model: `probs(context_ids)` -> (V,) float64, p[0] == 0, sums to 1.

        lm = NgramModel.from_bytes(open("ngram.npz", "rb").read())
        lm.probs([12, 7])          # the last order-1 ids count; [] is the start of a document
    """

    def __init__(self, arrays, where=FILE, vocab_size=None):
        """`arrays`: {name: ndarray} as export/ngram.py builds them (checked exactly like a file's)."""
        self.order, self.vocab_size, plain = check_arrays(arrays, where, vocab_size)
        self.discounts = plain["discounts"]
        self.pruned = plain["pruned"]
        self._unigram = plain["unigram"].astype(np.float64)
        self._unigram32 = plain["unigram"].astype(np.float32)
        self._levels = {k: tuple(plain[f"{p}{k}"] for p in LEVEL) for k in range(2, self.order + 1)}
        self._unisum = float(self._unigram.sum())
        self._rowsums = {}   # per level, each context's stored probabilities summed (add_into's total)
        for k, (_, ptr, _, _, prob) in self._levels.items():
            cum = np.concatenate([[0.0], np.cumsum(prob, dtype=np.float64)])
            self._rowsums[k] = cum[ptr[1:]] - cum[ptr[:-1]]

    @classmethod
    def from_bytes(cls, data, where=FILE, vocab_size=None):
        return cls(read_npz(data, where), where, vocab_size)

    def entries(self):
        """{order: stored (context, word) entries}; order 1 counts the words with mass."""
        out = {1: int(np.count_nonzero(self._unigram))}
        out.update({k: int(len(lvl[3])) for k, lvl in self._levels.items()})
        return out

    def _contexts(self, contexts):
        """(B, order-1) int64: the last order-1 ids of each context, pre-padded with 0, with
        everything before a 0 set to 0 (nothing before the begin of a document counts)."""
        n = self.order - 1
        if isinstance(contexts, np.ndarray):
            if contexts.ndim != 2 or contexts.dtype.kind not in "iu":
                raise ArgumentTypeError(f"contexts must be a 2-D integer array or a list of id sequences, "
                                        f"got {contexts.dtype} of shape {contexts.shape}")
            rows = contexts[:, contexts.shape[1] - min(n, contexts.shape[1]):].astype(np.int64)
            arr = np.zeros((len(contexts), n), np.int64)
            if rows.shape[1]:
                arr[:, n - rows.shape[1]:] = rows
        else:
            if isinstance(contexts, (str, bytes)) or not hasattr(contexts, "__len__"):
                raise ArgumentTypeError(f"contexts must be a list of id sequences, got {type(contexts).__name__}")
            arr = np.zeros((len(contexts), n), np.int64)
            for i, c in enumerate(contexts):
                if isinstance(c, (str, bytes)) or not hasattr(c, "__len__"):
                    raise ArgumentTypeError(f"a context must be a sequence of ids, got {type(c).__name__}")
                tail = np.asarray(c[len(c) - min(n, len(c)):] if n else [])
                if tail.size and (tail.ndim != 1 or tail.dtype.kind not in "iu"):
                    raise ArgumentTypeError(f"context ids must be integers, got {tail.dtype} {short_repr(c)}")
                if tail.size:
                    arr[i, n - len(tail):] = tail
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            raise InputError(f"context ids must be in 0..{self.vocab_size - 1} (0 is padding)")
        if n:
            padded = np.flip(np.logical_or.accumulate(np.flip(arr == BOS, 1), axis=1), 1)
            arr[padded] = BOS
        return arr

    def probs_batch(self, contexts):
        """(B, V) float64 next-word distributions, one row per context: a 2-D id array (B, T) such as
        LSTM windows, or a list of id sequences of any length. Rows sum to 1 over 1..V-1; column 0 is 0."""
        V = self.vocab_size
        if len(contexts) * V * 8 > MAX_NGRAM_BATCH_BYTES:
            raise InputError(f"{len(contexts)} contexts x {V} ids is more than {MAX_NGRAM_BATCH_BYTES} bytes of "
                             "probabilities; ask in smaller batches")
        ctx = self._contexts(contexts)
        if len(ctx) == 0:
            return np.zeros((0, V))
        uniq, inverse = np.unique(ctx, axis=0, return_inverse=True) if ctx.shape[1] else (ctx[:1], np.zeros(len(ctx), np.int64))
        inverse = np.asarray(inverse).ravel()
        out = np.zeros((len(uniq), V))
        weight = np.ones(len(uniq))
        n = self.order - 1
        for k in range(self.order, 1, -1):
            keys, ptr, gamma, word, prob = self._levels[k]
            if not len(keys):
                continue
            h = np.zeros(len(uniq), np.int64)
            for col in range(n - (k - 1), n):
                h = h * V + uniq[:, col]
            slot = np.minimum(np.searchsorted(keys, h), len(keys) - 1)
            hit = np.flatnonzero(keys[slot] == h)
            rows, idx = _ranges(ptr[slot[hit]], ptr[slot[hit] + 1])
            out[hit[rows], word[idx]] += weight[hit[rows]] * prob[idx]   # (row, word) unique per order
            weight[hit] *= gamma[slot[hit]]
        out += weight[:, None] * self._unigram[None, :]
        out[:, BOS] = 0.0
        out /= out.sum(axis=1, keepdims=True)      # float32 storage: make each row sum to 1 exactly
        return out[inverse]

    def _context_one(self, context_ids):
        """The last order-1 ids of one context as ints, pre-padded with 0, nothing before a 0 kept: the
        rule of _contexts, without its batch machinery for the plain cases (a list, tuple or 1-D
        integer array); anything else goes through _contexts and its type errors."""
        n = self.order - 1
        plain = isinstance(context_ids, (list, tuple)) or (
            isinstance(context_ids, np.ndarray) and context_ids.ndim == 1 and context_ids.dtype.kind in "iu")
        if not plain:
            return [int(i) for i in self._contexts([context_ids])[0]]
        tail = list(context_ids[len(context_ids) - min(n, len(context_ids)):]) if n else []
        if any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) for i in tail):
            return [int(i) for i in self._contexts([context_ids])[0]]
        ctx = [0] * (n - len(tail)) + [int(i) for i in tail]
        if ctx and (min(ctx) < 0 or max(ctx) >= self.vocab_size):
            raise InputError(f"context ids must be in 0..{self.vocab_size - 1} (0 is padding)")
        if BOS in ctx:
            last = n - 1 - ctx[::-1].index(BOS)
            ctx[:last + 1] = [BOS] * (last + 1)
        return ctx

    def _matches(self, context_ids):
        """(terms, weight) after one context: for each order whose context was seen, highest first,
        (words, probs, the weight they get, the row's stored sum); `weight` is what is left for the
        unigram (the product of the back-off weights)."""
        ctx = self._context_one(context_ids)
        V, n = self.vocab_size, self.order - 1
        weight, terms = 1.0, []
        for k in range(self.order, 1, -1):
            keys, ptr, gamma, word, prob = self._levels[k]
            if not len(keys):
                continue
            h = 0
            for col in range(n - (k - 1), n):
                h = h * V + ctx[col]
            i = int(np.searchsorted(keys, h))
            if i < len(keys) and keys[i] == h:
                a, b = ptr[i], ptr[i + 1]
                terms.append((word[a:b], prob[a:b], weight, float(self._rowsums[k][i])))
                weight *= float(gamma[i])
        return terms, weight

    def mass(self, context_ids, dtype=np.float64):
        """(unnormalised distribution, its sum) after `context_ids`: the sums of probs without the final
        division, for a caller that folds 1/sum into its own arithmetic."""
        terms, weight = self._matches(context_ids)
        unigram = self._unigram if dtype == np.float64 else self._unigram32
        out = unigram * dtype(weight)
        for words, probs, w, _ in terms:
            out[words] += dtype(w) * probs.astype(dtype)
        out[BOS] = 0.0
        return out, float(out.sum())

    def add_into(self, e, context_ids, share):
        """e += share * probs(context_ids), in place, for a float32 row `e` (runtime/mix.py's ranking
        path): the sum that probs() divides by comes from per-context sums made at load, so the
        vocabulary is walked twice (one scaled unigram, one add) instead of five times."""
        terms, weight = self._matches(context_ids)
        total = weight * self._unisum + sum(w * rowsum for _, _, w, rowsum in terms)
        c = share / total
        e += self._unigram32 * np.float32(weight * c)
        for words, probs, w, _ in terms:
            e[words] += probs * np.float32(w * c)
        return e

    def probs(self, context_ids):
        """(V,) next-word distribution after `context_ids` (the last order-1 ids count; shorter ones
        are pre-padded with 0, so [] is the start of a document). The sums of probs_batch for one
        context without its batch machinery (the order of additions differs: equal to ~1e-15): this
        runs once per word a keyboard user types."""
        out, total = self.mass(context_ids)
        out /= total
        return out


def short_repr(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
