"""Multi-worker training of the sequence objective (tf.distribute.MultiWorkerMirroredStrategy, driven
by TF_CONFIG): every worker runs the same nextword-train command; each reads its shard of every global
batch; gradients are summed across workers; worker 0 (the chief) writes the model folder.

Why a custom loop: Keras 3 `model.fit` under MWMS fails on TF 2.21 / Keras 3.15 ("Attempt to convert
a value (PerReplica:...) with an unsupported type", keras-team/keras#20585, measured:
docs/scale.md); `strategy.run` + GradientTape over a distributed dataset works.

The loss of a step is sum(masked cross-entropy) / (GLOBAL batch x L) on every replica, and the
replicas' gradients are summed: one worker and N workers take the same step for the same global
batch. TF_CONFIG is read and checked before TensorFlow starts (a malformed one is one line, exit 2).
The backup (class Backup) lets a restarted job go on from its last saved step."""

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from nextword.runtime.errors import InputError
from nextword.runtime.tokenizer import Tokenizer

from . import sources, stream_data
from . import defaults, lexicon
from .atomic import check_target
from .corpus import corpus_name
from .fit import MAX_CALIB_WINDOWS, MAX_EVAL_WINDOWS, choose_settings, evaluate_windows, sample as _sample, shape_objective, write_model_folder
from .loop import LoopState, Rules, end_epoch
from .metrics import topk_accuracy
from .model import ModelConfig, SequenceConfig, build_sequence_model, window_model_from
from .quiet_tf import import_keras, import_tensorflow
from .windows import Windows

log = logging.getLogger(__name__)

ENV = "TF_CONFIG"
MAX_WORKERS = 256     # a bound on the cluster TF_CONFIG may describe


@dataclass(frozen=True)
class Cluster:
    workers: tuple     # "host:port" of every worker, in TF_CONFIG's order
    index: int         # this process' place in it; 0 is the chief (writes the model folder)

    @property
    def num_workers(self):
        return len(self.workers)

    @property
    def is_chief(self):
        return self.index == 0


def _bad(why):
    return InputError(f"{ENV} {why}; expected {{\"cluster\": {{\"worker\": [\"host:port\", ...]}}, "
                      "\"task\": {\"type\": \"worker\", \"index\": i}}")


def parse(text):
    """Cluster of a TF_CONFIG string. Only worker-only clusters (MultiWorkerMirroredStrategy's shape)."""
    try:
        cfg = json.loads(text)
    except ValueError as e:
        raise _bad(f"is not valid JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(cfg, dict):
        raise _bad(f"is a JSON {type(cfg).__name__}, not an object")
    cluster, task = cfg.get("cluster"), cfg.get("task")
    if not isinstance(cluster, dict) or not isinstance(cluster.get("worker"), list) or not cluster["worker"]:
        raise _bad("has no non-empty cluster.worker list")
    others = sorted(set(cluster) - {"worker"})
    if others:
        raise _bad(f"names job(s) {', '.join(others)}: only workers are supported (no chief/ps/evaluator jobs)")
    workers = cluster["worker"]
    if len(workers) > MAX_WORKERS:
        raise _bad(f"lists {len(workers)} workers, more than {MAX_WORKERS}")
    for w in workers:
        host, _, port = w.rpartition(":") if isinstance(w, str) else ("", "", "")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _bad(f"has worker address {w!r}, not host:port")
    if len(set(workers)) != len(workers):
        raise _bad("lists a worker address twice")
    if not isinstance(task, dict):
        raise _bad("has no task object")
    if task.get("type") != "worker":
        raise _bad(f"has task.type {task.get('type')!r}, not 'worker'")
    index = task.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(workers):
        raise _bad(f"has task.index {index!r}, not a whole number in 0..{len(workers) - 1}")
    return Cluster(tuple(workers), index)


def from_env(environ=None):
    """The Cluster of $TF_CONFIG, or None when it is unset or blank."""
    text = (environ if environ is not None else os.environ).get(ENV, "")
    return parse(text) if text.strip() else None


def config_for(addresses, index):
    """The TF_CONFIG string for worker `index` of `addresses`."""
    return json.dumps({"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}})


# -- the training run ---------------------------------------------------------------------------------

BACKUP_EVERY = 100          # steps between two backups (and one at every epoch end)
MAX_VAL_CHUNKS = 1024       # validation chunks scored after every epoch (x L targets each)
MAX_HELDOUT_DOCS = 2000     # test documents read for the held-out figures and windows.npz
MAX_CALIB_DOCS = 500        # training documents read for the calibration windows
MAX_STATS_DOCS = 10_000     # documents whose lengths choose the default window
MAX_TRAIN_IDS_TOKENS = 5_000_000   # train-ids.npz (export's n-gram) only up to this many tokens (~20 MB)
META_FILE = "meta.json"     # the run a backup belongs to, written before its first checkpoint
SPLITS = {"val_split": defaults.VAL_SPLIT, "test_split": defaults.TEST_SPLIT}


def backup_folder(out, given=None):
    return os.path.abspath(given) if given else os.path.abspath(out) + ".backup"


def _strategy(cluster):
    tf = import_tensorflow()
    if cluster is None or cluster.num_workers == 1:
        return tf.distribute.get_strategy()
    os.environ[ENV] = config_for(cluster.workers, cluster.index)
    return tf.distribute.MultiWorkerMirroredStrategy()


def _with_num_words(tokenizer, num_words):
    d = tokenizer.to_dict()
    d["config"] = dict(d["config"], num_words=num_words)
    d.pop("vocab_size", None)
    return Tokenizer.from_dict(d)


def settle(cfg, files):
    """(settings with every value filled in, the choices made, the fitted tokenizer, corpus stats):
    one pass over the corpus counts the vocabulary, train.defaults chooses the rest."""
    given = {k: getattr(cfg, k) for k in ("objective", "window", "embedding_dim", "units", "epochs", "batch_size",
                                          "learning_rate", "val_split", "test_split", "patience", "num_words",
                                          "oov_token", "chunk_length", "chunk_stride", "dropout", "tie", "lr_decay",
                                          "stop_on", "recurrent_dropout") if getattr(cfg, k) is not None}
    if given.get("objective", "sequence") != "sequence":
        raise InputError("multi-worker training trains the sequence objective only; drop --objective prefix")
    out = replace(cfg)
    chosen = {}
    for name, value in SPLITS.items():
        if name not in given:
            setattr(out, name, value)
            chosen[name] = {"value": value, "why": f"{value:.0%} of the documents, picked by a hash of their text"}
    tokenizer = Tokenizer(oov_token=cfg.oov_token or defaults.OOV_TOKEN, lower=cfg.lower, filters=cfg.filters)
    stats = sources.fit_vocabulary(files, cfg.unit, tokenizer, out.val_split, out.test_split)
    stats["sha256"] = _fingerprint(files, tokenizer)
    corpus_stats = _corpus_stats(files, cfg, out, tokenizer)
    chosen = choose_settings(out, {**given, "oov_token": tokenizer.oov_token}, corpus_stats, chosen)
    out.oov_token = tokenizer.oov_token
    shape_objective(out)
    if out.num_words:
        tokenizer = _with_num_words(tokenizer, out.num_words)
    return out, chosen, tokenizer, stats


def _documents(files, unit, splits, cfg, limit):
    """The first `limit` documents of `splits` (a bounded sample in corpus order)."""
    docs = []
    for _, _, d in sources.documents_in(files, unit, splits, cfg.val_split, cfg.test_split):
        if len(docs) >= limit:
            break
        docs.append(d)
    return docs


def _corpus_stats(files, cfg, out, tokenizer):
    """train.defaults' statistics: word counts from the fitted tokenizer (train + validation documents),
    the document-length percentile from the first MAX_STATS_DOCS of them."""
    counts = sorted(tokenizer.word_counts.values(), reverse=True)
    total, running, cover = sum(counts), 0, len(counts)
    for i, c in enumerate(counts):
        running += c
        if running >= defaults.VOCAB_COVERAGE * total:
            cover = i + 1
            break
    lengths = sorted(len(tokenizer.words(d)) for d in _documents(files, cfg.unit, ("train", "val"), out,
                                                                  MAX_STATS_DOCS))
    p90 = lengths[min(len(lengths) - 1, int(0.9 * len(lengths)))] if lengths else 0
    return defaults.CorpusStats(total, len(counts), tokenizer.document_count, cover, p90)


def _fingerprint(files, tokenizer):
    """What a backup must match: the files (names, sizes) and the words counted in them. Not a hash of
    every byte (that would be a second pass over a corpus of gigabytes)."""
    h = hashlib.sha256()
    for path in files:
        h.update(f"{os.path.basename(path)}\0{os.path.getsize(path)}\0".encode("utf-8", "surrogatepass"))
    h.update(json.dumps(sorted(tokenizer.word_counts.items()), ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _train_ids(files, cfg, tokenizer):
    """(train ids, validation ids) for export's n-gram, or None past MAX_TRAIN_IDS_TOKENS tokens."""
    parts, total = [], 0
    for split in ("train", "val"):
        ids = []
        for _, _, d in sources.documents_in(files, cfg.unit, (split,), cfg.val_split, cfg.test_split):
            ids.append(tokenizer.text_to_ids(d))
            total += len(ids[-1])
            if total > MAX_TRAIN_IDS_TOKENS:
                log.warning("more than %d training tokens: no %s (export builds no n-gram)", MAX_TRAIN_IDS_TOKENS,
                            "train-ids.npz")
                return None
        parts.append(ids)
    return tuple(parts)


def shard_chunks(files, cfg, tokenizer, workers):
    """Training chunks of each worker's shard (stream_data.shard_plan; no TensorFlow, no collective:
    every worker computes all of them in one pass over the corpus). Every worker then runs the steps
    the smallest shard allows, so none waits at an all-reduce for a peer that ran out of data."""
    return stream_data.shard_chunk_counts(files, cfg.unit, tokenizer, cfg.chunk_length, cfg.chunk_stride,
                                          split="train", val_split=cfg.val_split, test_split=cfg.test_split,
                                          num_shards=workers)


class Backup:
    """<out>.backup: tf.train.Checkpoint (model, optimizer, epoch, step in epoch, loop state, kept
    weights, the epoch's running sums) via a CheckpointManager keeping the last one. Its index file
    (`checkpoint`) is replaced last and atomically by TF, so a kill mid-save leaves the previous one
    current. meta.json (written first, atomically) says which run it belongs to. The chief writes
    here; MWMS needs every worker to save, so the others write into their own temporary folder,
    removed at once."""

    def __init__(self, folder, cluster, ckpt, meta):
        tf = import_tensorflow()
        self.folder, self.ckpt, self.meta = folder, ckpt, meta
        self.chief = cluster is None or cluster.is_chief
        self.target = folder if self.chief else os.path.join(folder, f".worker-{cluster.index}")
        self.manager = tf.train.CheckpointManager(ckpt, self.target, max_to_keep=1)

    def restore(self):
        """True if a backup of this run was restored; InputError if one of another run is there."""
        tf = import_tensorflow()
        path = os.path.join(self.folder, META_FILE)
        latest = tf.train.latest_checkpoint(self.folder)
        if not os.path.exists(path) or latest is None:
            return False
        try:
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
        except (OSError, ValueError) as e:
            raise InputError(f"backup {self.folder} has no readable {META_FILE} ({type(e).__name__}); remove the "
                             "folder to start over") from None
        for key, value in self.meta.items():
            if saved.get(key) != value:
                raise InputError(f"backup {self.folder} is of another run ({key} {saved.get(key)!r}, this run "
                                 f"{value!r}); give the same corpus and flags, or remove it to start over")
        self.ckpt.restore(latest).expect_partial()
        return True

    def start(self):
        if self.chief:
            os.makedirs(self.folder, exist_ok=True)
            tmp = os.path.join(self.folder, f".{META_FILE}.{os.getpid()}")
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.meta, f)
            os.replace(tmp, os.path.join(self.folder, META_FILE))

    def save(self, number):
        self.manager.save(checkpoint_number=number)
        if not self.chief:
            shutil.rmtree(self.target, ignore_errors=True)

    def remove(self):
        if self.chief:
            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            shutil.rmtree(self.target, ignore_errors=True)


@dataclass
class Plan:
    global_batch: int
    per_worker: int
    workers: int
    steps_per_epoch: int
    chunks: int


def _train_step(strategy, model, plan, length):
    tf = import_tensorflow()
    keras = import_keras()
    denom = float(plan.global_batch * length)

    def replica(x, y, w):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            ce = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            loss = tf.reduce_sum(ce * w) / denom
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32)
        return tf.stack([tf.reduce_sum(ce * w), tf.reduce_sum(hits * w), tf.reduce_sum(w)])

    @tf.function
    def step(iterator):
        x, y, w = next(iterator)
        return strategy.reduce("SUM", strategy.run(replica, args=(x, y, w)), axis=None)

    return step


def _agree(strategy, values):
    """The mean over workers of `values` (floats): every worker decides early stopping and the
    learning rate from the very same numbers."""
    tf = import_tensorflow()
    v = tf.constant(values, tf.float64)
    if strategy.num_replicas_in_sync == 1:
        return v.numpy().tolist()

    @tf.function   # in a graph: run eagerly, the collective costs more and TF warns on every call
    def mean(v):
        return strategy.reduce("MEAN", strategy.run(tf.identity, args=(v,)), axis=None)

    return mean(v).numpy().tolist()


def _validate(model, batches):
    """(per-token loss, top-1) over the validation batches, on this worker."""
    keras = import_keras()
    ce_sum = hit_sum = n = 0.0
    for x, y, w in batches:
        logits = model(x, training=False)
        ce = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        hits = keras.ops.convert_to_numpy(keras.ops.argmax(logits, -1)) == y
        ce_sum += float((ce * w).sum())
        hit_sum += float((hits * w).sum())
        n += float(w.sum())
    return (ce_sum / n, hit_sum / n) if n else (float("nan"), float("nan"))


def train(cfg, out, cluster=None, force=False, progress=True, on_defaults=None, backup_dir=None,
          backup_every=BACKUP_EVERY, restarts=0):
    """Train on this worker of `cluster` (None: one process). Returns (window model, tokenizer, report)
    on the chief, None on the others (they write nothing but their temporary backups)."""
    started = time.time()
    cfg.validate()
    if not cfg.corpus:
        raise InputError("multi-worker training needs --corpus (the seed lines train in one process)")
    if backup_every < 0:
        raise InputError(f"--backup-every must be >= 0 (0: only at epoch ends), got {backup_every}")
    chief = cluster is None or cluster.is_chief
    workers = cluster.num_workers if cluster else 1
    if chief:
        check_target(os.path.abspath(out), force)
    strategy = _strategy(cluster)   # before any TensorFlow op: collectives are configured at start-up
    files = sources.expand(cfg.corpus)
    cfg, chosen, tokenizer, stats = settle(cfg, files)
    if cfg.batch_size % workers:
        raise InputError(f"--batch-size {cfg.batch_size} (the global batch) must be a multiple of the {workers} "
                         "workers: each takes an equal share")
    per_shard = shard_chunks(files, cfg, tokenizer, workers)
    per_worker = cfg.batch_size // workers
    plan = Plan(cfg.batch_size, per_worker, workers, min(per_shard) // per_worker, sum(per_shard))
    if plan.steps_per_epoch == 0:
        raise InputError(f"the training documents give {min(per_shard)} chunks to the smallest of {workers} "
                         f"shard(s), fewer than one batch of {per_worker}: use more text or a smaller --batch-size")
    if plan.steps_per_epoch * plan.global_batch < 0.9 * plan.chunks:
        log.warning("the %d shards are uneven (%s chunks): an epoch trains %d of the %d chunks", workers,
                    ", ".join(map(str, per_shard)), plan.steps_per_epoch * plan.global_batch, plan.chunks)
    if on_defaults and chosen and chief:
        on_defaults(chosen)
    tf, keras = import_tensorflow(), import_keras()
    keras.utils.set_random_seed(cfg.seed)
    scfg = SequenceConfig(tokenizer.vocab_size, cfg.chunk_length, cfg.embedding_dim, cfg.units, cfg.dropout,
                          bool(cfg.tie), cfg.recurrent_dropout)
    with strategy.scope():
        trained = build_sequence_model(scfg, cfg.learning_rate)
        trained.optimizer.build(trained.trainable_variables)
    val_batches = list(stream_data.chunk_dataset(files, cfg.unit, tokenizer, cfg.chunk_length, cfg.chunk_stride,
                                          cfg.batch_size, split="val", val_split=cfg.val_split,
                                          test_split=cfg.test_split, max_chunks=MAX_VAL_CHUNKS).as_numpy_iterator())
    val = bool(val_batches)

    # what a backup holds besides the model and optimizer
    epoch_v, step_v = tf.Variable(0, dtype=tf.int64), tf.Variable(0, dtype=tf.int64)
    loop_v, sums_v = tf.Variable("", dtype=tf.string), tf.Variable(np.zeros(3), dtype=tf.float64)
    kept_v = [tf.Variable(w, trainable=False) for w in trained.get_weights()]
    ckpt = tf.train.Checkpoint(model=trained, optimizer=trained.optimizer, epoch=epoch_v, step=step_v, loop=loop_v,
                               sums=sums_v, kept=kept_v)
    meta = {"config": {k: v for k, v in asdict(cfg).items() if k not in ("epochs", "corpus")},
            "corpus_sha256": stats["sha256"], "vocab_size": tokenizer.vocab_size, "workers": workers}
    backup = Backup(backup_folder(out, backup_dir), cluster, ckpt, meta)
    state, kept, start_step, sums = LoopState(), None, 0, np.zeros(3)
    restored = backup.restore()
    if restored:
        state = LoopState.from_dict(json.loads(loop_v.numpy().decode("utf-8")))
        start_step, sums = int(step_v.numpy()), sums_v.numpy()
        kept = [v.numpy() for v in kept_v] if state.best_epoch and cfg.patience else None
        log.warning("resuming from %s: epoch %d, step %d of %d", backup.folder, state.epochs_done + 1, start_step,
                    plan.steps_per_epoch)
    else:
        backup.start()
    mine = [float(restored), float(state.epochs_done), float(start_step)]
    if _agree(strategy, mine) != mine:   # a worker that found no backup (or another one) would train apart
        raise InputError(f"the workers did not all find the same backup in {backup.folder} (this one: "
                         f"{'epoch %d, step %d' % (state.epochs_done + 1, start_step) if restored else 'none'}); "
                         "on several machines --backup-dir must be one shared folder every worker can read")
    resumed_at = (state.epochs_done, start_step) if start_step or state.epochs_done else None

    def keep(epoch, step, sums_now):
        epoch_v.assign(epoch)
        step_v.assign(step)
        sums_v.assign(sums_now)
        loop_v.assign(json.dumps(state.to_dict()))
        if kept is not None:
            for v, w in zip(kept_v, kept):
                v.assign(w)
        backup.save(epoch * plan.steps_per_epoch + step)

    def epoch_data(epoch, skip):
        def make(ctx):
            ds = stream_data.chunk_dataset(files, cfg.unit, tokenizer, cfg.chunk_length, cfg.chunk_stride,
                                    ctx.get_per_replica_batch_size(cfg.batch_size), split="train",
                                    val_split=cfg.val_split, test_split=cfg.test_split, seed=cfg.seed, epoch=epoch,
                                    num_shards=ctx.num_input_pipelines, shard_index=ctx.input_pipeline_id,
                                    max_chunks=plan.steps_per_epoch * plan.per_worker)
            return ds.skip(skip)
        return iter(strategy.distribute_datasets_from_function(make))

    rules = Rules(epochs=cfg.epochs, patience=cfg.patience, watch=("val_" if val else "") + (cfg.stop_on or "loss"),
                  mode="max" if cfg.stop_on == "accuracy" else "min", decay=cfg.lr_decay,
                  decay_on="val_loss" if val else "loss")
    step = _train_step(strategy, trained, plan, cfg.chunk_length)
    bar = _bar(cfg.epochs, state.epochs_done) if progress and chief else None
    train_seconds, targets = 0.0, 0.0
    try:
        while state.epochs_done < cfg.epochs and not state.stopped_early:
            epoch, skip = state.epochs_done, start_step
            start_step = 0
            if not skip:
                sums = np.zeros(3)
            it, t0 = epoch_data(epoch, skip), time.time()
            for s in range(skip, plan.steps_per_epoch):
                got = step(it).numpy()
                sums, targets = sums + got, targets + float(got[2])
                if backup_every and (s + 1) % backup_every == 0 and s + 1 < plan.steps_per_epoch:
                    keep(epoch, s + 1, sums)
            train_seconds += time.time() - t0
            logs = {"loss": sums[0] / sums[2], "accuracy": sums[1] / sums[2]}
            if val:
                logs["val_loss"], logs["val_accuracy"] = _agree(strategy, list(_validate(trained, val_batches)))
            logs["learning_rate"] = keras.ops.convert_to_numpy(trained.optimizer.learning_rate)
            logs = {k: float(v) for k, v in logs.items()}   # plain floats: the loop state is JSON
            kept = end_epoch(trained, state, rules, logs, kept)
            keep(epoch + 1, 0, np.zeros(3))
            if bar is not None:
                bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if rules.patience and kept is not None:
        trained.set_weights(kept)
    fit_seconds = time.time() - started
    if not chief:
        backup.remove()
        return None
    dist = {"workers": workers, "global_batch": plan.global_batch, "per_worker_batch": plan.per_worker,
            "steps_per_epoch": plan.steps_per_epoch, "train_chunks": plan.chunks,
            "tokens_per_second": float(targets / train_seconds) if train_seconds else None,
            "train_seconds": train_seconds, "restarts": restarts,
            "resumed_at": {"epoch": resumed_at[0] + 1, "step": resumed_at[1]} if resumed_at else None,
            "strategy": type(strategy).__name__, "backup_every": backup_every}
    model, report, ids, windows = _finish(cfg, files, tokenizer, trained, scfg, state, chosen, stats, dist,
                                          fit_seconds)
    forms = lexicon.build((d for _, _, d in sources.documents_in(files, cfg.unit, ("train", "val"), cfg.val_split,
                                                                cfg.test_split)), tokenizer)   # what it was fitted on
    write_model_folder(out, force, model, tokenizer, forms, ids, windows, state.history, report, started)
    backup.remove()
    return model, tokenizer, report


def _bar(epochs, done):
    from tqdm.auto import tqdm
    return tqdm(total=epochs, initial=done, unit="epoch", desc="training", leave=True)


def _finish(cfg, files, tokenizer, trained, scfg, state, chosen, stats, dist, fit_seconds):
    """The window model, the report, the n-gram's ids and windows.npz's arrays (bounded samples)."""
    tf, keras = import_tensorflow(), import_keras()
    window = cfg.window
    model = window_model_from(trained, scfg, window)
    calib = Windows(tokenizer.texts_to_sequences(_documents(files, cfg.unit, ("train",), cfg, MAX_CALIB_DOCS)), window)
    test_ids = tokenizer.texts_to_sequences(_documents(files, cfg.unit, ("test",), cfg, MAX_HELDOUT_DOCS))
    held = Windows(test_ids, window) if sum(map(len, test_ids)) > 1 else None
    x_calib, y_calib = calib.batch(_sample(len(calib), MAX_CALIB_WINDOWS, cfg.seed + 1))
    train_acc = topk_accuracy(model(x_calib, training=False).numpy(), y_calib)
    heldout = None
    if held is not None and len(held):
        heldout = dict(evaluate_windows(model, held), source="test")
        x_eval, y_eval = held.batch(_sample(len(held), MAX_EVAL_WINDOWS, cfg.seed))
    else:
        x_eval, y_eval = x_calib, y_calib
    best = state.best_epoch if cfg.patience and state.best_epoch else state.epochs_done
    report = {
        "format": "nextword-train-report", "format_version": 1,
        "config": asdict(cfg), "defaults": chosen, "distributed": dist,
        "model": dict(ModelConfig(tokenizer.vocab_size, window, cfg.embedding_dim, cfg.units).to_dict(),
                      objective="sequence", chunk_length=cfg.chunk_length, chunk_stride=cfg.chunk_stride,
                      dropout=cfg.dropout, tied=bool(cfg.tie), recurrent_dropout=cfg.recurrent_dropout),
        "corpus": {"name": corpus_name(cfg.corpus), "unit": cfg.unit, "sha256": stats["sha256"],
                   "fingerprint": "sha256 of the file names and sizes and of the word counts, not of every byte",
                   "bytes": stats["bytes"], "files": stats["files"], "documents": stats.get("documents"),
                   "train_tokens": stats["tokens"]},
        "split": {"test_split": cfg.test_split, "val_split": cfg.val_split,
                  "test": "documents whose text hashes into the test share: never trained on, never used to stop",
                  "validation": "documents hashing into the validation share: early stopping only"},
        "vocab_size": tokenizer.vocab_size, "words_seen": len(tokenizer.word_index), "windows": None,
        "examples": dist["train_chunks"], "window": window, "params": int(model.count_params()),
        "train_params": int(trained.count_params()),
        "history": {k: [float(x) for x in v] for k, v in state.history.items()},
        "epochs_run": state.epochs_done, "best_epoch": best, "interrupted": False, "stopped_by": None,
        "stopped_early": state.stopped_early, "resumed_from_epoch": None, "resume_folder": None,
        "train_accuracy": {"windows": int(len(x_calib)), "top1": train_acc[1], "top3": train_acc[3]},
        "heldout": heldout, "fit_seconds": fit_seconds, "wall_seconds": None, "peak_rss_mb": None,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__},
        "eval_windows": {"source": "heldout" if heldout else "train", "count": int(len(x_eval))},
    }
    return model, report, _train_ids(files, cfg, tokenizer), (x_eval, y_eval, x_calib)
