"""A session that learns: its UserModel (runtime/user_model.py), its user file (runtime/user_file.py)
and the suggestions with the user model mixed in.

    p = (1 - mu) p_model + mu p_user        over the union of the model's words and the user's words

mu is 0 while nothing is learnt, then starts at user_model.USER_WEIGHT and adapts to the user (adapt():
online EM on the words typed after their suggestions were shown, within USER_WEIGHT_RANGE): on a text
the bundle's model never saw (measured on a licence, docs/benchmarks.md) the user part earns most of
the weight, on the model's own kind of text little. It is not kept in the user file: a new session
starts from USER_WEIGHT again. p_model is the session's next-word distribution (the LSTM, mixed with
the bundle's n-gram when it has one): a word of the model's vocabulary gets its probability, a word of the tokenizer beyond it
(lexicon-only) its share of the OOV probability as runtime/complete.py gives it, any other word 0:
a word only the user has typed (*user-only*) gets only the user part and comes with source "user" in
completions. The suggestions never include padding, the OOV token, a word of the predictor's
blocklist (the blocklist wins over learning) or a forgotten word.

Why the mixed top-k is exact without scoring every word: a word the user never typed scores
(1 - mu) p_model, so only the model's own best k of a prefix range can beat every learnt word of it;
the candidates are those k plus every learnt word of the range."""

import numpy as np

from .user_file import check_path, load as load_user_file, save as save_user_file
from .complete import Suggestion
from .errors import InputError
from .limits import MAX_WORD_CHARS, TAIL_BLOCK_CHARS
from .user_model import USER_WEIGHT, USER_WEIGHT_RANGE, USER_WEIGHT_RATE, UserModel


def iter_words(tokenizer, text, block=TAIL_BLOCK_CHARS):
    """tokenizer.words(text) in lists of a block each (Tokenizer.iter_words): a book fed at once is
    never held as one list of words."""
    return tokenizer.iter_words(text, block)


class Learning:
    """The learning half of one Session: what it learnt, from which file, and the previous word."""

    def __init__(self, step, completer, learn, path, bundle_path):
        self.tokenizer = step.tokenizer
        self.vocab_size = step.vocab_size
        self.ranking = step.ranking
        self.completer = completer
        self.learn_on_feed = bool(learn)
        self.model = UserModel(self.tokenizer)
        self.path = None if path is None else check_path(path, bundle_path)
        if self.path is not None:
            load_user_file(self.path, self.model)   # UserFileInvalid before any session exists
        self.prev = None          # the last word fed (a str, known to the tokenizer or not), None at a start
        self.mu = USER_WEIGHT     # the user model's share, adapted to the words typed (adapt())
        self._vector = (None, None)
        self._forgotten = (None, None, None)
        self._positions = (None, None)

    # -- input -------------------------------------------------------------------------------
    def fed(self, text, p_before=None):
        """The session fed `text`: learn its words (when learning on feed) and move the context.
        p_before: the model's distribution (by id) the suggestions for the first word were made from,
        when the session had it: the user model's share adapts to that word."""
        for words in iter_words(self.tokenizer, text):
            if p_before is not None:
                self.adapt(p_before, words[0])
                p_before = None
            if self.learn_on_feed:
                self.model.learn(words, self.prev)
            self.prev = words[-1]

    def fed_ids(self, ids):
        index_word, oov = self.tokenizer.index_word, self.tokenizer.oov_id
        self.fed(" ".join(index_word[i] for i in ids if i and i != oov))

    def learn(self, text):
        """Learn the words of `text` (pairs within it only); the context does not move."""
        learnt, prev = 0, None
        for words in iter_words(self.tokenizer, text):
            learnt += self.model.learn(words, prev)
            prev = words[-1]
        return learnt

    def active(self):
        return len(self.model) > 0 or bool(self.model.forgotten)

    def save(self):
        if self.path is None:
            raise InputError("this session has no user file: open it with p.session(learn=True, user_file=PATH)")
        return save_user_file(self.path, self.model)

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
        return self.mu if len(self.model) else 0.0

    def adapt(self, p, word):
        """Online EM for the mixture's weight: after each word typed, mu moves USER_WEIGHT_RATE of the way
        towards the share of that word's mixed probability that came from the user model. A user whose
        text the bundle's model knows well keeps a small mu; one writing what it never saw (another
        domain, names, a language of their own) gets a large one, within USER_WEIGHT_RANGE."""
        if not len(self.model):
            return
        slot = self.model.slot(word)
        pu = float(self.user_vector()[slot]) if slot is not None else 0.0
        pm = self._model_part(p, word)
        mu = self.mu
        mixed = mu * pu + (1.0 - mu) * pm
        if mixed <= 0.0:
            return   # neither part gave the word anything: no evidence either way
        low, high = USER_WEIGHT_RANGE
        self.mu = min(high, max(low, mu + USER_WEIGHT_RATE * (mu * pu / mixed - mu)))

    def _model_part(self, p, word):
        """p_model(word): the model's probability by id, a lexicon-only word's share of the OOV
        probability, 0 for padding, the OOV token and words the tokenizer does not know."""
        wid = self.tokenizer.word_index.get(word, 0)
        if 0 < wid < self.vocab_size:
            return 0.0 if wid in self.ranking.never else float(p[wid])
        index = self.completer.index()
        pos = index.position.get(word) if wid else None
        if pos is not None and index.oov is not None:
            return float(p[index.oov] * index.share[pos])
        return 0.0

    def positions(self, index):
        """tokenizer id -> completion index position (-1: the OOV token, or no word), per index."""
        if self._positions[0] is not index:
            table = np.full(max(self.tokenizer.index_word, default=0) + 1, -1, dtype=np.int64)
            table[index.ids] = np.arange(len(index.ids))
            self._positions = (index, table)
        return self._positions[1]

    def _user_only(self, slots, scores, k):
        """The best k (score, word) of user-only words at `slots` (scores given), blocked ones skipped."""
        if not len(slots):
            return []
        blocked = self.ranking.blocklist.words if self.ranking.blocklist is not None else ()
        n = min(len(slots), k + len(blocked))
        top = np.argpartition(-scores, n - 1)[:n] if n < len(slots) else np.arange(len(slots))
        rows = [(float(scores[i]), self.model.word_at(int(slots[i]))) for i in top.tolist()]
        return [r for r in rows if r[1] not in blocked]

    # -- answers ---------------------------------------------------------------------------------
    def top_k(self, p, k):
        """The k best (word, probability) after mixing, from the model's softmax `p` (by id)."""
        index = self.completer.index()
        mu = self._mu()
        V = self.vocab_size
        s = (1.0 - mu) * np.asarray(p, dtype=np.float64)
        slots = self.model.slots()
        pu = self.user_vector()[slots] * mu
        tid = self.model.token_ids(slots)
        inside = (tid > 0) & (tid < V)
        np.add.at(s, tid[inside], pu[inside])
        forgotten_ids, _ = self.forgotten_masks(index)
        s[self.ranking.never] = -1.0
        blocked = self.ranking.blocked()
        if blocked.size:
            s[blocked] = -1.0
        if forgotten_ids.size:
            s[forgotten_ids] = -1.0
        n = min(k, V)
        top = np.argpartition(-s, n - 1)[:n] if n < V else np.arange(V)
        rows = [(float(s[i]), int(i), self.ranking.words[i]) for i in top.tolist() if s[i] >= 0]
        # learnt words beyond the model: lexicon-only ones (their OOV share too) and user-only ones
        pos = self.positions(index)[tid]
        lexical = (tid >= V) & (pos >= 0)
        if lexical.any():
            share = p[index.oov] * index.share[pos[lexical]] if index.oov is not None else 0.0
            scores = (1.0 - mu) * share + pu[lexical]
            word_index = self.tokenizer.word_index
            rows += [(sc, word_index[w], w) for sc, w in self._user_only(slots[lexical], scores, k)]
        alone = tid == 0
        last = len(self.tokenizer.word_index) + 1
        rows += [(sc, last, w) for sc, w in self._user_only(slots[alone], pu[alone], k)]
        rows.sort(key=lambda r: (-r[0], r[1], r[2]))
        return [(w, score) for score, _, w in rows[:k]]

    def probability(self, p, word):
        """The mixed probability top_k gives `word` (a word as the tokenizer writes it), from the
        model's distribution `p` (by id); 0.0 for a word that is never suggested."""
        if word in self.model.forgotten:
            return 0.0
        blocked = self.ranking.blocklist.words if self.ranking.blocklist is not None else ()
        if word in blocked:
            return 0.0
        mu = self._mu()
        slot = self.model.slot(word)
        pu = mu * float(self.user_vector()[slot]) if slot is not None else 0.0
        wid = self.tokenizer.word_index.get(word, 0)
        if not 0 < wid < self.vocab_size and slot is None:
            return 0.0   # beyond the model and never learnt: top_k does not list it
        return (1.0 - mu) * self._model_part(p, word) + pu

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
        vec = self.user_vector()
        tid = self.model.token_ids(user_slots)
        upos = self.positions(index)[tid]
        known = upos >= 0                      # learnt words of the completion index
        learnt_pos = upos[known]
        keep = ~mask[learnt_pos]
        learnt_pos, learnt_pu = learnt_pos[keep], vec[user_slots[known][keep]]
        model_pos = index.best(p, lo, hi, k, mask)[0] if lo < hi else np.zeros(0, dtype=np.int64)
        cand = np.unique(np.concatenate([model_pos, learnt_pos]))
        pu = np.zeros(len(cand))
        pu[np.searchsorted(cand, learnt_pos)] = learnt_pu
        score = (1.0 - mu) * index._scores(p, cand) + mu * pu
        order = np.lexsort((index.ids[cand], -score))[:k]
        rows = [(float(score[i]), int(index.ids[cand[i]]), index.words[cand[i]], int(cand[i])) for i in order.tolist()]
        alone = tid == 0                       # user-only words (never the OOV token: it has an id)
        last = len(self.tokenizer.word_index) + 1
        rows += [(sc, last, w, None) for sc, w in self._user_only(user_slots[alone], mu * vec[user_slots[alone]], k)]
        rows.sort(key=lambda r: (-r[0], r[1], r[2]))
        lexicon = completer.lexicon()
        out = []
        for score, _, w, j in rows[:k]:
            display = lexicon.display(w)
            if sentence_start:
                display = display[:1].upper() + display[1:]
            source = "user" if j is None else "model" if index.model[j] else "lexicon"
            out.append(Suggestion(w, display, score, source))
        return out
