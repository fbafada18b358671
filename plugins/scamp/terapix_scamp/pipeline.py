"""SCAMP's flow (``makeit.c``): read catalogues, group fields, pattern-match, solve astrometry and
photometry globally, compute statistics.  Writing products is left to :mod:`.output` so that nothing is
written when any step fails.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from terapix_fw.errors import ToolError

from .astrom import AstromModel, AstromSolution, Detections, solve_astrometry
from .catalogs import Field, load_fields
from .match import MatchError, MatchResult, apply_correction, match_field
from .photom import PhotSolution, solve_photometry
from .sky import angular_sep, mean_position, project

__all__ = ["ScampRun", "run_scamp"]


@dataclass
class ScampRun:
    """Everything computed by one run, consumed by the output writers."""

    config: object
    fields: list[Field]
    field_tp: np.ndarray  # (nfield, 2) tangent point of each field (deg)
    field_radius: np.ndarray  # deg
    group_of: np.ndarray  # (nfield,) field group index
    group_tp: np.ndarray  # (ngroup, 2)
    astr_inst: list[str]
    phot_inst: list[str]
    det: Detections
    matches: list[MatchResult | None]
    astrom: AstromSolution | None
    photom: PhotSolution | None
    refs: list
    chip_wcs: list = field(default_factory=list)  # per field, per chip: first-guess astropy WCS
    stats: dict = field(default_factory=dict)


def _first_guess(f: Field, log):
    """Sky positions of the detections through each chip's header WCS (``all_pix2world``, 1-based)."""
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    ra = np.empty(f.ndet)
    dec = np.empty(f.ndet)
    wcs_list, centers, scales = [], [], []
    for chip in f.chips:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            w = WCS(chip.header, relax=True)
        if not w.has_celestial:
            raise ToolError(f"{f.path}: extension {chip.index + 1} has no celestial WCS (CTYPE1 = "
                            f"{chip.header.get('CTYPE1')!r}); SCAMP needs a first-guess RA/Dec WCS in the "
                            "catalogue header or an .ahead file")
        w = w.celestial
        wcs_list.append(w)
        sel = f.chip == chip.index
        if sel.any():
            ra[sel], dec[sel] = w.all_pix2world(f.x[sel], f.y[sel], 1)
        c = w.all_pix2world([[0.5 * (chip.nx + 1), 0.5 * (chip.ny + 1)]], 1)[0]
        centers.append(c)
        scales.append(float(np.sqrt(abs(np.linalg.det(w.pixel_scale_matrix)))))
    return ra, dec, wcs_list, np.array(centers), np.array(scales)


def _chip_corners(chip):
    return np.array([[0.5, 0.5], [chip.nx + 0.5, 0.5], [0.5, chip.ny + 0.5], [chip.nx + 0.5, chip.ny + 0.5]])


def _group_fields(centers, radii):
    """Fields whose footprints overlap belong to the same group (union-find on centre distances)."""
    n = len(centers)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        sep = angular_sep(centers[i, 0], centers[i, 1], centers[i + 1:, 0], centers[i + 1:, 1])
        for j in np.nonzero(sep < radii[i] + radii[i + 1:])[0] + i + 1:
            parent[find(j)] = find(i)
    roots = [find(i) for i in range(n)]
    order = {r: k for k, r in enumerate(dict.fromkeys(roots))}
    return np.array([order[r] for r in roots])


def _fix_focal_plane(fields, xi0, eta0, chip_lin, inst_of, config, log):
    """MOSAIC_TYPE FIX_FOCALPLANE: give every chip the median layout of its instrument.

    ``chip_lin[f][c]`` is the first-guess affine map of chip c (centre xi, eta and 2x2 Jacobian, field
    plane).  Each field's global affine F_f is fitted between the median layout and its chips, then each
    chip's first guess is replaced by F_f applied to the median layout.
    """
    for inst in sorted(set(inst_of)):
        members = [k for k in range(len(fields)) if inst_of[k] == inst]
        nchip = max(len(fields[k].chips) for k in members)
        F = {k: (np.eye(2), np.zeros(2)) for k in members}
        for _ in range(2):
            median = {}
            for c in range(nchip):
                samples = []
                for k in members:
                    if c < len(chip_lin[k]) and (fields[k].chip == c).sum() >= config["FIXFOCALPLANE_NMIN"]:
                        A, t = F[k]
                        Ai = np.linalg.inv(A)
                        center, jac = chip_lin[k][c]
                        samples.append(np.concatenate([Ai @ (center - t), (Ai @ jac).ravel()]))
                if samples:
                    median[c] = np.median(np.array(samples), axis=0)
            for k in members:
                src, dst = [], []
                for c, med in median.items():
                    if c < len(chip_lin[k]):
                        src.append(med[:2])
                        dst.append(chip_lin[k][c][0])
                src, dst = np.array(src), np.array(dst)
                if len(src) >= 2:  # similarity (shift, rotation, scale): an affine would absorb jitter
                    zs = src[:, 0] + 1j * src[:, 1]
                    zd = dst[:, 0] + 1j * dst[:, 1]
                    ms, md = zs.mean(), zd.mean()
                    a = np.vdot(zs - ms, zd - md) / max(np.vdot(zs - ms, zs - ms).real, 1e-30)
                    b = md - a * ms
                    F[k] = (np.array([[a.real, -a.imag], [a.imag, a.real]]), np.array([b.real, b.imag]))
                elif len(src):
                    F[k] = (np.eye(2), np.mean(dst - src, 0))
        for k in members:
            A, t = F[k]
            f = fields[k]
            for c, med in median.items():
                sel = f.chip == c
                if not sel.any() or c >= len(f.chips):
                    continue
                chip = f.chips[c]
                dp = np.column_stack([f.x[sel] - 0.5 * (chip.nx + 1), f.y[sel] - 0.5 * (chip.ny + 1)])
                local = med[:2] + dp @ med[2:].reshape(2, 2).T
                moved = local @ A.T + t
                xi0[k][sel], eta0[k][sel] = moved[:, 0], moved[:, 1]
        log.info("FIX_FOCALPLANE: instrument %s, %d field(s) set on the median focal plane", inst, len(members))


def run_scamp(paths, config, log, nthreads: int = 1, sparse_above: int | None = None) -> ScampRun:
    """The whole computation; ``sparse_above`` overrides :data:`.astrom.SPARSE_ABOVE` (tests, benchmarks)."""
    from .refcat import read_reference

    fields = load_fields(paths, config, log)
    if not fields:
        raise ToolError("no input catalogue")
    nfield = len(fields)
    # ---- first guess, field tangent points, groups
    xi0, eta0, chip_lin, field_tp, field_radius, chip_wcs, pixscale = [], [], [], [], [], [], []
    for f in fields:
        ra, dec, wcs_list, centers, scales = _first_guess(f, log)
        tp = mean_position(centers[:, 0], centers[:, 1])
        corners = np.concatenate([w.all_pix2world(_chip_corners(c), 1) for w, c in zip(wcs_list, f.chips)])
        radius = float(np.max(angular_sep(tp[0], tp[1], corners[:, 0], corners[:, 1])))
        x, y = project(ra, dec, *tp)
        xi0.append(x)
        eta0.append(y)
        lin = []
        for w, c in zip(wcs_list, f.chips):
            pts = np.array([[0.5 * (c.nx + 1), 0.5 * (c.ny + 1)], [0.5 * (c.nx + 1) + 1, 0.5 * (c.ny + 1)],
                            [0.5 * (c.nx + 1), 0.5 * (c.ny + 1) + 1]])
            sky = w.all_pix2world(pts, 1)
            px, py = project(sky[:, 0], sky[:, 1], *tp)
            lin.append((np.array([px[0], py[0]]), np.array([[px[1] - px[0], px[2] - px[0]],
                                                            [py[1] - py[0], py[2] - py[0]]])))
        chip_lin.append(lin)
        field_tp.append(tp)
        field_radius.append(radius)
        chip_wcs.append(wcs_list)
        pixscale.append(scales)
    field_tp = np.array(field_tp)
    field_radius = np.array(field_radius)
    group_of = _group_fields(field_tp, field_radius)
    ngroup = int(group_of.max()) + 1
    group_tp = np.array([mean_position(field_tp[group_of == g, 0], field_tp[group_of == g, 1])
                         for g in range(ngroup)])
    astr_inst = sorted({f.astr_key for f in fields})
    phot_inst = sorted({f.phot_key for f in fields})
    stability = config["STABILITY_TYPE"]
    inst_of = [f.astr_key if stability == "INSTRUMENT" else f"field{f.index}" for f in fields]
    log.info("%d field(s) in %d group(s); %d astrometric and %d photometric instrument(s)", nfield, ngroup,
             len(astr_inst), len(phot_inst))
    mosaic = config["MOSAIC_TYPE"]
    if mosaic == "FIX_FOCALPLANE":
        _fix_focal_plane(fields, xi0, eta0, chip_lin, [f.astr_key for f in fields], config, log)
    # ---- reference catalogue and pattern matching
    use_ref = config["ASTREF_CATALOG"] != "NONE"
    if use_ref and config["ASTREF_CATALOG"] != "FILE":
        raise ToolError(f"ASTREF_CATALOG {config['ASTREF_CATALOG']}: network catalogue servers are not "
                        "available here; set ASTREF_CATALOG FILE and ASTREFCAT_NAME to a local reference "
                        "catalogue (FITS_LDAC, FITS table, VOTable or CSV)")
    ref = read_reference(config, log) if use_ref else None
    matches: list = [None] * nfield
    if use_ref and config["MATCH"]:
        maxerr = config["POSITION_MAXERR"] / 60.0
        for k, f in enumerate(fields):
            rra, rdec = ref.at_epoch(f.epoch)
            near = angular_sep(field_tp[k, 0], field_tp[k, 1], rra, rdec) < field_radius[k] + 2 * maxerr
            rx, ry = project(rra[near], rdec[near], *field_tp[k])
            rxy = np.column_stack([rx, ry])
            rmag = ref.mag[near]
            units = [np.ones(f.ndet, bool)] if mosaic != "LOOSE" else [f.chip == c.index for c in f.chips]
            for u_index, unit in enumerate(units):
                sel = unit & f.astr_ok
                label = f"{f.path}" + (f" extension {u_index + 1}" if mosaic == "LOOSE" else "")
                try:
                    result = match_field(np.column_stack([xi0[k][sel], eta0[k][sel]]), f.flux[sel], rxy, rmag,
                                         config, log, label=label)
                except MatchError as exc:
                    raise ToolError(f"pattern matching failed for {exc}; no header written") from None
                xi0[k][unit], eta0[k][unit] = apply_correction(result, xi0[k][unit], eta0[k][unit])
                matches[k] = result if matches[k] is None else matches[k]
    # ---- detections and the astrometric model
    accuracy = config["ASTR_ACCURACY"][0]
    sig = []
    for k, f in enumerate(fields):
        scale = pixscale[k][f.chip]
        if config["ASTRACCURACY_TYPE"] == "SIGMA-PIXEL":
            sig.append(np.hypot(f.sig, accuracy) * scale)
        else:
            sig.append(np.hypot(f.sig * scale, accuracy / 3600.0))
    det = Detections(field=np.concatenate([np.full(f.ndet, k) for k, f in enumerate(fields)]),
                     chip=np.concatenate([f.chip for f in fields]).astype(np.int64),
                     x=np.concatenate([f.x for f in fields]), y=np.concatenate([f.y for f in fields]),
                     sig=np.concatenate(sig), snr=np.concatenate([f.snr for f in fields]),
                     astr_ok=np.concatenate([f.astr_ok for f in fields]),
                     phot_ok=np.concatenate([f.phot_ok for f in fields]),
                     flux=np.concatenate([f.flux for f in fields]),
                     fluxerr=np.concatenate([f.fluxerr for f in fields]),
                     xi0=np.concatenate(xi0), eta0=np.concatenate(eta0),
                     group=np.concatenate([np.full(f.ndet, group_of[k]) for k, f in enumerate(fields)]))
    del xi0, eta0, sig
    for f in fields:
        f.release()
    model = _build_model(fields, inst_of, det, config)
    refs = [None] * ngroup
    if use_ref:
        for g in range(ngroup):
            members = np.nonzero(group_of == g)[0]
            epochs = [fields[k].epoch for k in members if fields[k].epoch is not None]
            rra, rdec = ref.at_epoch(float(np.mean(epochs)) if epochs else None)
            gr = float(np.max(angular_sep(group_tp[g, 0], group_tp[g, 1], field_tp[members, 0],
                                          field_tp[members, 1]) + field_radius[members]))
            near = angular_sep(group_tp[g, 0], group_tp[g, 1], rra, rdec) < gr + 0.05
            gx, gy = project(rra[near], rdec[near], *group_tp[g])
            refs[g] = (gx, gy, ref.sig[near])
    niter = 3 if config["SOLVE_ASTROM"] else 0
    astrom = solve_astrometry(det, model, field_tp, group_tp, refs, config, log, niter=niter, nthreads=nthreads,
                              sparse_above=sparse_above)
    if niter == 0:
        log.info("SOLVE_ASTROM N: the first guess (after pattern matching) is kept")
    photom = solve_photometry(det, astrom.labels, fields, config, log) if config["SOLVE_PHOTOM"] else None
    run = ScampRun(config, fields, field_tp, field_radius, group_of, group_tp, astr_inst, phot_inst, det,
                   matches, astrom, photom, refs, chip_wcs)
    from .stats import compute_stats

    run.stats = compute_stats(run)
    run.stats["warnings"] = _warnings(run)
    for text in run.stats["warnings"]:
        log.warning("%s", text)
    _log_residuals(run, log)
    if config["SOLVE_ASTROM"]:
        _check_solution(run)
    return run


#: a field's (or chip's) high-S/N residuals may exceed the errors expected from its detections and
#: reference stars by this factor before the solution is declared bad; SCAMP's chi2 on good solutions
#: is 1-10 (sigma ratio 1-3), a wrong solution's residuals are those of chance coincidences within
#: CROSSID_RADIUS (~CROSSID_RADIUS/2 per axis, 20-50x the expected errors)
BAD_SIGMA_FACTOR = 5.0
#: ... and the absolute level below which residuals are never called bad (arcsec): 100 mas is 3-10x what
#: ground-based wide-field astrometry of bright stars reaches
BAD_SIGMA_FLOOR = 0.1
#: a chip with fewer reference (or overlap) matches than this fraction of the median of the same
#: chip in the other fields of its group lost its stars to a wrong solution
BAD_COUNT_FRACTION = 0.3
#: a field matched to fewer reference stars than this fraction of those within its radius lost them to a
#: wrong solution, whatever the other fields did (when most fields of a group lost theirs, the median above
#: no longer shows it); good solutions match 0.4-0.6 of them (the circle also holds the gaps and the
#: corners beyond the chips), wrong ones 0.01-0.02 (GalSim surveys of issue 14)
REF_LOST_FRACTION = 0.1


def _too_few(n: int, typical: float) -> bool:
    """n matches where ``typical`` are usual: below BAD_COUNT_FRACTION of it and 4 Poisson sigma under it."""
    return n < BAD_COUNT_FRACTION * typical and n < typical - 4.0 * np.sqrt(typical)


def _log_residuals(run, log) -> None:
    """Internal and external residuals and matched counts per group, field and chip (arcsec), as SCAMP's
    tables; the per-chip figures are in the XML's Fields_Chips table as well."""
    st = run.stats
    for g, s in enumerate(st["groups"]):
        log.info("group %d: internal %.3f\"/%.3f\" (%d, high S/N %.3f\"/%.3f\" %d), reference %.3f\"/%.3f\" (%d, "
                 "high S/N %.3f\"/%.3f\" %d)", g + 1, *s["internal"]["sigma"], s["internal"]["ndets"],
                 *s["internal_high"]["sigma"], s["internal_high"]["ndets"], *s["reference"]["sigma"],
                 s["reference"]["ndets"], *s["reference_high"]["sigma"], s["reference_high"]["ndets"])
    for k, f in enumerate(run.fields):
        s = st["fields"][k]
        chips = " ".join(f"{c['extension']}:{c['reference_high']['ndets']}/"
                         f"{1000 * max(c['reference_high']['sigma']):.0f}" for c in st["chips"][k])
        log.info("%s: internal high S/N %.3f\"/%.3f\" (%d), reference high S/N %.3f\"/%.3f\" (%d); per "
                 "extension reference matches/sigma(mas) %s", f.name, *s["internal_high"]["sigma"],
                 s["internal_high"]["ndets"], *s["reference_high"]["sigma"], s["reference_high"]["ndets"], chips)


def _refs_within_radius(run, k: int) -> int:
    """Reference stars of field ``k``'s group within the field's radius of its centre."""
    g = run.group_of[k]
    if run.refs[g] is None:
        return 0
    gx, gy, _ = run.refs[g]
    fx, fy = project(run.field_tp[k, 0], run.field_tp[k, 1], *run.group_tp[g])
    return int(np.count_nonzero(np.hypot(gx - fx, gy - fy) < run.field_radius[k]))


def _check_solution(run) -> None:
    """A solution whose residuals against the reference or between overlaps are far above the expected
    errors, or whose fields or chips lost their matches, is an error naming the fields and extensions."""
    st = run.stats
    exp_int = st["expected"]["internal"]
    exp_ref = st["expected"]["reference"]
    lim_int = max(BAD_SIGMA_FACTOR * exp_int, BAD_SIGMA_FLOOR)
    lim_ref = max(BAD_SIGMA_FACTOR * exp_ref, BAD_SIGMA_FLOOR)
    bad = []
    for k, f in enumerate(run.fields):
        s = st["fields"][k]
        why = []
        for key, lim, what in (("reference_high", lim_ref, "reference"), ("internal_high", lim_int, "overlap")):
            if s[key]["ndets"] >= 5 and max(s[key]["sigma"]) > lim:
                why.append(f"{what} residuals {max(s[key]['sigma']):.3f}\" rms (expected {lim / BAD_SIGMA_FACTOR:.3f}"
                           f"\", limit {lim:.3f}\", {s[key]['ndets']} matches)")
        g = run.group_of[k]
        peers = [j for j in np.nonzero(run.group_of == g)[0] if j != k]
        # counts: reference matches only (reference stars cover every chip alike; overlaps depend on dithers)
        for key, what in (("reference", "reference"),):
            counts = [st["fields"][j][key]["ndets"] for j in peers]
            if counts and _too_few(s[key]["ndets"], np.median(counts)):
                why.append(f"{s[key]['ndets']} {what} matches where the other fields have a median of "
                           f"{np.median(counts):.0f}")
        within = _refs_within_radius(run, k)
        if within * REF_LOST_FRACTION >= 3 and s["reference"]["ndets"] < REF_LOST_FRACTION * within:
            why.append(f"{s['reference']['ndets']} reference matches for {within} reference stars within its radius")
        for c in st["chips"][k]:
            e = c["extension"] - 1
            for key, lim, what in (("reference_high", lim_ref, "reference"), ("internal_high", lim_int, "overlap")):
                n = c[key]["ndets"]
                if n >= 5 and max(c[key]["sigma"]) > 2 * lim:
                    why.append(f"extension {e + 1}: {what} residuals {max(c[key]['sigma']):.3f}\" rms ({n} matches)")
                counts = [st["chips"][j][e][key]["ndets"] for j in peers if e < len(st["chips"][j])]
                if key == "reference_high" and counts and _too_few(n, np.median(counts)):
                    why.append(f"extension {e + 1}: {n} {what} matches where the other fields have a median of "
                               f"{np.median(counts):.0f}")
        if why:
            bad.append(f"{f.name}: " + "; ".join(why))
    if bad:
        raise ToolError("astrometric solution rejected, far above the expected errors: " + " | ".join(bad)
                        + "; check the first-guess WCS (MATCH Y, POSITION_MAXERR, POSANGLE_MAXERR), MOSAIC_TYPE "
                        "(FIX_FOCALPLANE or LOOSE for misplaced chips) and CROSSID_RADIUS; no header written")


def _warnings(run) -> list[str]:
    """What SCAMP would warn about: weak matches, fields without photometric anchor, few matches."""
    out = []
    for k, f in enumerate(run.fields):
        m = run.matches[k]
        if m is not None and min(m.as_contrast, m.xy_contrast) < 8.0:
            out.append(f"{f.name}: low pattern-matching contrast ({m.as_contrast:.1f}/{m.xy_contrast:.1f}); check it")
        s = run.stats["fields"][k]
        if run.refs[run.group_of[k]] is not None and s["reference"]["ndets"] < 20:
            out.append(f"{f.name}: only {s['reference']['ndets']} reference matches")
        if run.photom is not None and not run.photom.linked[k]:
            out.append(f"{f.name}: not linked to any photometric field (PHOTLINK F)")
    model = run.astrom.model if run.astrom is not None else None
    if model is not None:
        for b in np.nonzero(model.block_degree < model.degree)[0]:
            out.append(f"{model.block_name(b)}: distortion degree lowered from {model.degree} to "
                       f"{model.block_degree[b]} (not enough well-distributed matched detections)")
    return out


def _build_model(fields, inst_of, det, config) -> AstromModel:
    nchip = max(len(f.chips) for f in fields)
    keys = {}
    names = []
    block_of = np.full((len(fields), nchip), -1, np.int64)
    sizes = []
    for k, f in enumerate(fields):
        for c in f.chips:
            key = (inst_of[k], c.index)
            if key not in keys:
                keys[key] = len(sizes)
                sizes.append((c.nx, c.ny))
                names.append(key)
            block_of[k, c.index] = keys[key]
    focdeg = config["FOCDISTORT_DEGREE"] if config["STABILITY_TYPE"] == "INSTRUMENT" else -1
    lin_of = np.full(len(fields), -1, np.int64)
    seen = set()
    nlin = 0
    for k in range(len(fields)):
        if inst_of[k] in seen and focdeg >= 0:
            lin_of[k] = nlin
            nlin += 1
        seen.add(inst_of[k])
    # per-field centre and radius, and per-chip affine first guess, by grouped sums (no per-field scan of
    # all detections: 2000 fields x 60 M detections must stay linear)
    nf = len(fields)
    f = det.field
    count = np.bincount(f, minlength=nf).astype(float)
    safe = np.maximum(count, 1)
    centers = np.column_stack([np.bincount(f, det.xi0, nf) / safe, np.bincount(f, det.eta0, nf) / safe])
    dist = np.hypot(det.xi0 - centers[f, 0], det.eta0 - centers[f, 1])
    norms = np.zeros(nf)
    np.maximum.at(norms, f, dist)
    norms = np.where(norms > 1e-6, norms, 1e-6)
    # focal-plane coordinates of the per-exposure terms: an affine fit of the corrected first guess per
    # chip, so that the basis is a function of pixel coordinates only (needed to write headers)
    key = f * nchip + det.chip
    nk = nf * nchip
    x = det.x
    y = det.y
    sums = {name: np.bincount(key, w, nk) for name, w in
            (("1", None), ("x", x), ("y", y), ("xx", x * x), ("xy", x * y), ("yy", y * y),
             ("a", det.xi0), ("ax", det.xi0 * x), ("ay", det.xi0 * y),
             ("b", det.eta0), ("bx", det.eta0 * x), ("by", det.eta0 * y))}
    M = np.empty((nk, 3, 3))
    M[:, 0] = np.column_stack([sums["xx"], sums["xy"], sums["x"]])
    M[:, 1] = np.column_stack([sums["xy"], sums["yy"], sums["y"]])
    M[:, 2] = np.column_stack([sums["x"], sums["y"], sums["1"]])
    R = np.stack([np.column_stack([sums["ax"], sums["ay"], sums["a"]]),
                  np.column_stack([sums["bx"], sums["by"], sums["b"]])], axis=2)  # (nk, 3, 2)
    good = sums["1"] >= 3
    if good.any():
        det_m = np.abs(np.linalg.det(M[good]))
        good[good] = det_m > 1e-12 * np.abs(M[good, 0, 0] * M[good, 1, 1] * M[good, 2, 2])
    affine = np.zeros((nk, 2, 3))
    if good.any():
        affine[good] = np.transpose(np.linalg.solve(M[good], R[good]), (0, 2, 1))
    fallback = np.repeat(np.arange(nf), nchip)[~good]
    affine[~good, :, 2] = centers[fallback]
    affine = affine.reshape(nf, nchip, 2, 3)
    degree = config["DISTORT_DEGREES"][0]
    if config["STABILITY_TYPE"] == "PRE-DISTORTED":
        degree = 1
    block_ndet = np.bincount(block_of[det.field[det.astr_ok], det.chip[det.astr_ok]], minlength=len(sizes))
    return AstromModel(degree, focdeg, block_of, np.array(sizes, float), lin_of, centers, norms, affine, block_ndet,
                       block_keys=names)
