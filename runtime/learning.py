"""A session that learns: its UserModel (runtime/user_model.py), its user file (runtime/user_file.py)
and the suggestions with the user model mixed in.

    p = (1 - mu) p_model + mu p_user        over the union of the model's words and the user's words

mu = user_model.USER_WEIGHT once anything is learnt (0 before). p_model is the session's next-word
softmax: a word of the model's vocabulary gets its probability, a word of the tokenizer beyond it
(lexicon-only) its share of the OOV probability as runtime/complete.py gives it, any other word 0:
a word only the user has typed (*user-only*) gets only the user part and comes with source "user" in
completions. The suggestions never include padding, the OOV token, a word of the predictor's
blocklist (the blocklist wins over learning) or a forgotten word.

Why the mixed top-k is exact without scoring every word: a word the user never typed scores
(1 - mu) p_model, so only the model's own best k of a prefix range can beat every learnt word of it;
the candidates are those k plus every learnt word of the range."""

import numpy as np

from . import user_file
from .complete import Suggestion
from .errors import InputError
from .limits import MAX_WORD_CHARS, TAIL_BLOCK_CHARS
from .user_model import USER_WEIGHT, UserModel


def iter_words(tokenizer, text, block=TAIL_BLOCK_CHARS):
    """tokenizer.words(text) in pieces (cut where the words cannot change, as Tokenizer.iter_ids)."""
    start, total = 0, len(text)
    while start < total:
        cut = tokenizer._cut_after(text, start + block - 1, total) if start + block < total else None
        cut = total if cut is None else cut
        yield from tokenizer.words(text[start:cut])
        start = cut


class Learning:
    """The learning half of one Session: what it learnt, from which file, and the previous word."""

    def __init__(self, step, completer, learn, path, bundle_path):
        self.tokenizer = step.tokenizer
        self.vocab_size = step.vocab_size
        self.ranking = step.ranking
        self.completer = completer
        self.learn_on_feed = bool(learn)
        self.model = UserModel(self.tokenizer)
        self.path = None if path is None else user_file.check_path(path, bundle_path)
        if self.path is not None:
            user_file.load(self.path, self.model)   # UserFileInvalid before any session exists
        self.prev = None          # the last word fed (a str, known to the tokenizer or not), None at a start
        self._vector = (None, None)
        self._forgotten = (None, None, None)

    # -- input -------------------------------------------------------------------------------
    def fed(self, text):
        """The session fed `text`: learn its words (when learning on feed) and move the context."""
        words = list(iter_words(self.tokenizer, text))
        if not words:
            return
        if self.learn_on_feed:
            self.model.learn(words, self.prev)
        self.prev = words[-1]

    def fed_ids(self, ids):
        index_word, oov = self.tokenizer.index_word, self.tokenizer.oov_id
        self.fed(" ".join(index_word[i] for i in ids if i and i != oov))

    def learn(self, text):
        """Learn the words of `text` (pairs within it only); the context does not move."""
        return self.model.learn(list(iter_words(self.tokenizer, text)))

    def active(self):
        return len(self.model) > 0 or bool(self.model.forgotten)

    def save(self):
        if self.path is None:
            raise InputError("this session has no user file: open it with p.session(learn=True, user_file=PATH)")
        return user_file.save(self.path, self.model)

    # -- shared pieces -------------------------------------------------------------------------
    def user_vector(self):
        """p_user(. | prev) by slot, cached until the model or the context changes."""
        key = (self.model.version, self.prev)
        if self._vector[0] != key:
            self._vector = (key, self.model.vector(self.prev))
        return self._vector[1]

    def forgotten_masks(self, index):
        """(model ids, bool mask over the completion index positions) of the forgotten words."""
        forgotten = self.model.forgotten
        if self._forgotten[0] is not forgotten or self._forgotten[1] is not index:
            word_index = self.tokenizer.word_index
            ids = [word_index.get(w, 0) for w in forgotten]
            ids = np.array([i for i in ids if 0 < i < self.vocab_size], dtype=np.int64)
            mask = np.zeros(len(index), dtype=bool)
            pos = [index.position[w] for w in forgotten if w in index.position]
            mask[pos] = True
            self._forgotten = (forgotten, index, (ids, mask))
        return self._forgotten[2]

    def _mu(self):
        return USER_WEIGHT if len(self.model) else 0.0

    def _refused(self, word):
        return word in self.ranking.blocklist.words if self.ranking.blocklist is not None else False

    # -- answers ---------------------------------------------------------------------------------
    def top_k(self, p, k):
        """The k best (word, probability) after mixing, from the model's softmax `p` (by id)."""
        index = self.completer.index()
        mu = self._mu()
        V = self.vocab_size
        s = (1.0 - mu) * np.asarray(p, dtype=np.float64)
        slots, words = self.model.slots()
        pu = self.user_vector()[slots] * mu if len(slots) else np.zeros(0)
        tid = self.model.token_ids(slots) if len(slots) else np.zeros(0, dtype=np.int64)
        inside = (tid > 0) & (tid < V)
        np.add.at(s, tid[inside], pu[inside])
        forgotten_ids, _ = self.forgotten_masks(index)
        s[self.ranking.never] = -1.0
        blocked = self.ranking.blocked()
        if blocked.size:
            s[blocked] = -1.0
        if forgotten_ids.size:
            s[forgotten_ids] = -1.0
        rows = []
        n = min(k, V)
        top = np.argpartition(-s, n - 1)[:n] if n < V else np.arange(V)
        rows = [(float(s[i]), int(i), self.ranking.words[i]) for i in top.tolist() if s[i] >= 0]
        oov_word = self.tokenizer.oov_token
        share_p = p[index.oov] if index.oov is not None else 0.0
        for j in np.flatnonzero(~inside).tolist():
            w = words[j]
            if w == oov_word or self._refused(w):
                continue
            pos = index.position.get(w)
            pm = share_p * index.share[pos] if pos is not None else 0.0
            rank = int(tid[j]) if tid[j] > 0 else V + len(self.tokenizer.word_index) + 1
            rows.append((float((1.0 - mu) * pm + pu[j]), rank, w))
        rows.sort(key=lambda r: (-r[0], r[1], r[2]))
        return [(w, score) for score, _, w in rows[:k]]

    def complete(self, prefix, k, distribution, sentence_start):
        """Session.complete with the user model mixed in (Suggestions, best first)."""
        completer = self.completer
        index = completer.index()
        if len(prefix) > MAX_WORD_CHARS:
            return []
        key = prefix.lower()
        lo, hi = index.range(key)
        user_slots = self.model.prefix_slots(key)
        if lo >= hi and not len(user_slots):
            return []
        p = distribution()
        mu = self._mu()
        _, forgotten = self.forgotten_masks(index)
        mask = index.blocked_mask(self.ranking.blocklist) | forgotten
        found = {}   # word -> index position or None
        if lo < hi:
            pos, _ = index.best(p, lo, hi, k, mask)
            found.update((index.words[j], j) for j in pos.tolist())
        vec = self.user_vector()
        oov_word = self.tokenizer.oov_token
        for s in user_slots.tolist():
            w = self.model.word_at(s)
            j = index.position.get(w)
            if j is None:
                if w != oov_word and not self._refused(w):
                    found[w] = None
            elif not mask[j]:
                found[w] = j
        if not found:
            return []
        words = list(found)
        pos = np.array([found[w] if found[w] is not None else 0 for w in words], dtype=np.int64)
        in_index = np.array([found[w] is not None for w in words], dtype=bool)
        pm = np.where(in_index, index._scores(p, pos), 0.0)
        pu = np.array([vec[self.model.slot(w)] if w in self.model else 0.0 for w in words])
        score = (1.0 - mu) * pm + mu * pu
        last = len(self.tokenizer.word_index) + 1
        rank = np.where(in_index, index.ids[pos], last)
        order = sorted(range(len(words)), key=lambda i: (-score[i], rank[i], words[i]))[:k]
        lexicon = completer.lexicon()
        out = []
        for i in order:
            w = words[i]
            display = lexicon.display(w)
            if sentence_start:
                display = display[:1].upper() + display[1:]
            source = ("model" if index.model[pos[i]] else "lexicon") if in_index[i] else "user"
            out.append(Suggestion(w, display, float(score[i]), source))
        return out
