"""Which window variant on which interpreter package to try, in what order, and why the one that
loaded was chosen.

Order: a variant the caller named (on its packages, the bundle's measured preference first); else
the bundle's measured preference (`preference` in the manifest: window variant x package, best
first, measured by nextword-export on every interpreter) restricted to the requested backend, then
as fallback (and for bundles without a preference) the default variant and the other window
variants, smallest file first."""

from .backends.packages import packages_for


def _rank(manifest):
    """(variant, package) -> position in the measured preference."""
    return {(e.variant, e.package): i for i, e in enumerate(manifest.preference)}


def candidates(manifest, backend, variant=None):
    """[(Variant, packages)] in the order open_first should try them."""
    rank = _rank(manifest)
    if variant is not None:
        v = manifest.variants[variant]
        pkgs = packages_for(backend, v.format)
        return [(v, tuple(sorted(pkgs, key=lambda p: (rank.get((v.name, p), len(rank)), pkgs.index(p)))))]
    out = []
    for e in manifest.preference:
        v = manifest.variants[e.variant]
        if e.package in packages_for(backend, v.format):
            out.append((v, (e.package,)))
    default = manifest.variants[manifest.default_variant]
    rest = sorted((v for v in manifest.variants.values() if v.kind == "window" and v is not default), key=lambda v: v.size)
    for v in [default] + rest:
        allowed = packages_for(backend, v.format)
        untried = tuple(p for p in allowed if (v.name, p) not in rank)
        if untried or not allowed:   # not allowed at all: open_first records why it is skipped
            out.append((v, untried))
    return out


def cost_text(cost):
    """One line from a variant's measured cost on one package."""
    return (f"cold start {cost['cold_start_ms']:.0f} ms, peak RSS {cost['peak_rss_mib']:.1f} MiB, "
            f"{cost['call_us']:.0f} us a call (measured at export, {cost['runs']} runs)")


def reason(manifest, backend, requested, variant, package):
    """Why (variant, package) was chosen, in words."""
    on = "" if backend == "auto" else f" with backend={backend}"
    cost = variant.cost.get(package)
    measured = f": {cost_text(cost)}" if cost else ""
    if requested is not None:
        return f"requested with variant={requested}{on}{measured}"
    rank = _rank(manifest)
    if (variant.name, package) in rank:
        i = rank[(variant.name, package)]
        allowed = [e for e in manifest.preference[:i] if e.package in packages_for(backend, manifest.variants[e.variant].format)]
        which = "first entry" if not allowed else f"entry {i + 1}"
        tried = f" (the {len(allowed)} tried before it did not load here)" if allowed else ""
        return (f"{which} of the bundle's measured preference{tried} on the installed interpreters{on}, "
                f"score {manifest.preference[i].score:g}{measured}")
    why = ("no entry of the bundle's measured preference loads here" + on if manifest.preference
           else "the bundle has no measured preference")
    if variant.name == manifest.default_variant:
        return f"fallback: {why}; the bundle's default variant{measured}"
    return f"fallback: {why} and the default variant does not load; the smallest window variant that does{measured}"
