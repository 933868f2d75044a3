"""The one parity metric module: how close a variant's probabilities are to the Keras model's, and
whether that passes its gate."""

import numpy as np

from nextword.train.metrics import top_ids, topk_accuracy

from .variants import ACCURACY_SLACK, GATES

LOWER_IS_BETTER = {"max_abs_diff", "mean_kl"}


def compare(reference, candidate, y=None):
    """Figures for one variant: top-1 agreement, mean top-5 overlap, max |dp|, mean KL(ref || cand),
    and top-1/top-3 accuracy of both against the true next ids `y` when given (train.metrics: ties by
    id, no id excluded, like the agreement figures' top ids)."""
    p = np.asarray(reference, dtype=np.float64)
    q = np.asarray(candidate, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"shapes differ: reference {p.shape}, candidate {q.shape}")
    k = min(5, p.shape[1])
    tp, tq = top_ids(p, k), top_ids(q, k)
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(tp.tolist(), tq.tolist())])
    eps = 1e-12
    kl = np.sum(p * (np.log(np.maximum(p, eps)) - np.log(np.maximum(q, eps))), axis=1)
    out = {"windows": int(len(p)), "top1_agreement": float(np.mean(tp[:, 0] == tq[:, 0])),
           "top5_overlap": float(overlap), "max_abs_diff": float(np.max(np.abs(p - q))),
           "mean_kl": float(np.mean(kl))}
    if y is not None:
        mine, keras = topk_accuracy(q, y, ks=(1, 3)), topk_accuracy(p, y, ks=(1, 3))
        out.update({"top1_accuracy": mine[1], "top3_accuracy": mine[3],
                    "keras_top1_accuracy": keras[1], "keras_top3_accuracy": keras[3]})
    return out


def gate_for(family, overrides=None):
    gate = dict(GATES[family])
    gate.update((overrides or {}).get(family, {}))
    return gate


def check(family, figures, overrides=None):
    """List of failures (empty = passed) of `figures` against the family's gate."""
    failures = []
    for metric, limit in gate_for(family, overrides).items():
        value = figures[metric]
        ok = value <= limit if metric in LOWER_IS_BETTER else value >= limit
        if not ok:
            failures.append(f"{metric} {value:.6g} {'>' if metric in LOWER_IS_BETTER else '<'} {limit:g}")
    if family != "float32" and "top1_accuracy" in figures:
        slack = (overrides or {}).get("accuracy_slack", ACCURACY_SLACK)
        for k in ("top1", "top3"):
            mine, keras = figures[f"{k}_accuracy"], figures[f"keras_{k}_accuracy"]
            if mine < keras - slack - 1e-12:
                failures.append(f"{k} accuracy {mine:.2%} is more than {slack:.0%} below Keras' {keras:.2%}")
    return failures
