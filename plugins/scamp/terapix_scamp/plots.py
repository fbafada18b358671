"""SCAMP check-plots with matplotlib (Agg): ``<CHECKPLOT_NAME>_<n>.<ext>``, ``n`` the field group (or the
instrument for DISTORTION and PHOT_ERROR), as SCAMP numbers them.
"""
from __future__ import annotations

import numpy as np

__all__ = ["write_checkplots"]

_EXT = {"PNG": "png", "PS": "ps", "PSC": "ps", "PDF": "pdf", "SVG": "svg", "JPEG": "jpg"}


def write_checkplots(run, ctx) -> None:
    import matplotlib

    matplotlib.use("Agg")
    config = run.config
    types = config["CHECKPLOT_TYPE"]
    names = config["CHECKPLOT_NAME"]
    devices = [d for d in config["CHECKPLOT_DEV"] if d in _EXT]
    if not devices:
        ctx.log.warning("CHECKPLOT_DEV %s: no file device among them; no check-plot written",
                        ",".join(config["CHECKPLOT_DEV"]))
        return
    if len(names) < len(types):
        ctx.log.warning("CHECKPLOT_NAME has %d name(s) for %d type(s); the last types are skipped", len(names),
                        len(types))
    makers = {"FGROUPS": _fgroups, "DISTORTION": _distortion, "ASTR_INTERROR2D": _interror2d,
              "ASTR_INTERROR1D": _interror1d, "ASTR_REFERROR2D": _referror2d, "ASTR_REFERROR1D": _referror1d,
              "ASTR_CHI2": _chi2, "PHOT_ERROR": _phot_error, "PHOT_ZPCORR": _zpcorr, "PHOT_ZPCORR3D": _zpcorr3d}
    for ptype, name in zip(types, names):
        maker = makers.get(ptype)
        if maker is None:
            ctx.log.warning("CHECKPLOT_TYPE %s is not produced by this implementation", ptype)
            continue
        if ptype.startswith("PHOT") and run.photom is None:
            continue
        for index, fig in maker(run):
            for dev in devices:
                with ctx.product(f"{name}_{index}.{_EXT[dev]}", kind="checkplot", plot=ptype) as tmp:
                    fig.savefig(tmp, format=_EXT[dev] if _EXT[dev] != "jpg" else "jpeg", dpi=90)
            import matplotlib.pyplot as plt

            plt.close(fig)


def _figure(title, ncols=1, nrows=1, size=(7, 6), **kw):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, **kw)
    fig.suptitle(title)
    return fig, axes


def _fgroups(run):
    from .output import chip_solution_grid
    from .sky import project

    for g in range(len(run.group_tp)):
        fig, ax = _figure(f"Group {g + 1}: {int((run.group_of == g).sum())} fields")
        ax = ax[0, 0]
        cmap = __import__("matplotlib").colormaps["tab10"]
        for k in np.nonzero(run.group_of == g)[0]:
            for c in range(len(run.fields[k].chips)):
                px, py, ra, dec = chip_solution_grid(run, k, c, n=2)
                x, y = project(ra, dec, *run.group_tp[g])
                order = [0, 1, 3, 2, 0]
                ax.plot(-x[order] * 60, y[order] * 60, color=cmap(k % 10), lw=0.8)
        if run.refs[g] is not None:
            sel = run.det.group[run.astrom.ref_ok] == g
            ax.plot(-run.astrom.gx[run.astrom.ref_ok][sel] * 60, run.astrom.gy[run.astrom.ref_ok][sel] * 60, ",",
                    color="green")
        ax.set_xlabel("-xi (arcmin, east to the left)")
        ax.set_ylabel("eta (arcmin)")
        ax.set_aspect("equal")
        yield g + 1, fig


def _distortion(run):
    from .output import chip_solution_grid

    for a, inst in enumerate(run.astr_inst):
        k = next(i for i, f in enumerate(run.fields) if f.astr_key == inst)
        fig, ax = _figure(f"Instrument A{a + 1} ({inst}): pixel scale")
        ax = ax[0, 0]
        vals, xs, ys = [], [], []
        from .sky import project

        for c in range(len(run.fields[k].chips)):
            px, py, ra, dec = chip_solution_grid(run, k, c, n=8)
            x, y = project(ra, dec, *run.field_tp[k])
            x, y = x.reshape(8, 8), y.reshape(8, 8)
            dx = np.gradient(x, axis=1) / np.gradient(px.reshape(8, 8), axis=1)
            dy = np.gradient(y, axis=0) / np.gradient(py.reshape(8, 8), axis=0)
            dxy = np.gradient(x, axis=0) / np.gradient(py.reshape(8, 8), axis=0)
            dyx = np.gradient(y, axis=1) / np.gradient(px.reshape(8, 8), axis=1)
            scale = np.sqrt(np.abs(dx * dy - dxy * dyx)) * 3600
            vals.append(scale.ravel())
            xs.append(-x.ravel() * 60)
            ys.append(y.ravel() * 60)
        sc = ax.scatter(np.concatenate(xs), np.concatenate(ys), c=np.concatenate(vals), s=12, cmap="viridis")
        fig.colorbar(sc, ax=ax, label="pixel scale (arcsec)")
        ax.set_aspect("equal")
        ax.set_xlabel("-xi (arcmin)")
        ax.set_ylabel("eta (arcmin)")
        yield a + 1, fig


def _link_residuals(run, g):
    a = run.astrom
    li, lj = a.link_i[a.link_ok], a.link_j[a.link_ok]
    sel = run.det.group[li] == g
    li, lj = li[sel], lj[sel]
    return (a.gx[li] - a.gx[lj]) * 3600, (a.gy[li] - a.gy[lj]) * 3600, a.gx[li], a.gy[li], run.det.snr[li]


def _ref_residuals(run, g):
    a = run.astrom
    ri = np.nonzero(a.ref_ok & (run.det.group == g))[0]
    return a.ref_res[ri, 0] * 3600, a.ref_res[ri, 1] * 3600, a.gx[ri], a.gy[ri], run.det.snr[ri]


def _scatter2d(run, getter, title):
    high = run.config["SN_THRESHOLDS"][1]
    for g in range(len(run.group_tp)):
        dx, dy, _, _, snr = getter(run, g)
        fig, ax = _figure(f"Group {g + 1}: {title}")
        ax = ax[0, 0]
        ax.plot(dx, dy, ",", color="gray", label="all")
        hi = snr > high
        ax.plot(dx[hi], dy[hi], ".", ms=2, color="red", label=f"S/N > {high:g}")
        lim = max(5 * np.sqrt(np.mean(dx ** 2 + dy ** 2)) if len(dx) else 1.0, 0.05)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_xlabel("delta xi (arcsec)")
        ax.set_ylabel("delta eta (arcsec)")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=8)
        yield g + 1, fig


def _scatter1d(run, getter, title):
    for g in range(len(run.group_tp)):
        dx, dy, gx, gy, _ = getter(run, g)
        fig, axes = _figure(f"Group {g + 1}: {title}", ncols=2, nrows=2, size=(9, 7))
        for (r, c), (pos, res, lx, ly) in zip([(0, 0), (0, 1), (1, 0), (1, 1)],
                                              [(gx, dx, "xi", "d xi"), (gy, dx, "eta", "d xi"),
                                               (gx, dy, "xi", "d eta"), (gy, dy, "eta", "d eta")]):
            ax = axes[r, c]
            ax.plot(pos * 60, res, ",", color="black")
            lim = max(5 * np.sqrt(np.mean(res ** 2)) if len(res) else 1.0, 0.05)
            ax.set_ylim(-lim, lim)
            ax.set_xlabel(f"{lx} (arcmin)")
            ax.set_ylabel(f"{ly} (arcsec)")
        yield g + 1, fig


def _interror2d(run):
    return _scatter2d(run, _link_residuals, "internal residuals")


def _interror1d(run):
    return _scatter1d(run, _link_residuals, "internal residuals")


def _referror2d(run):
    return _scatter2d(run, _ref_residuals, "residuals against the reference")


def _referror1d(run):
    return _scatter1d(run, _ref_residuals, "residuals against the reference")


def _chi2(run):
    for g in range(len(run.group_tp)):
        members = np.nonzero(run.group_of == g)[0]
        fig, ax = _figure(f"Group {g + 1}: astrometric chi2/d.o.f. per field")
        ax = ax[0, 0]
        ax.bar(members + 1, [run.stats["fields"][k]["internal"]["chi2"] for k in members], color="steelblue",
               label="internal")
        ax.plot(members + 1, [run.stats["fields"][k]["reference"]["chi2"] for k in members], "o", color="red",
                label="reference")
        ax.set_xlabel("field")
        ax.set_ylabel("chi2 / d.o.f.")
        ax.legend()
        yield g + 1, fig


def _phot_error(run):
    p = run.photom
    det = run.det
    li, lj = p.link_i[p.link_ok], p.link_j[p.link_ok]
    res = p.mag[li] + p.dzp[det.field[li]] - p.mag[lj] - p.dzp[det.field[lj]]
    for a, inst in enumerate(run.phot_inst):
        members = np.array([f.phot_key == inst for f in run.fields])
        sel = members[det.field[li]]
        fig, axes = _figure(f"Photometric instrument P{a + 1} ({inst}): internal residuals", ncols=2,
                            size=(10, 5))
        axes[0, 0].hist(res[sel], bins=60, range=(-0.3, 0.3), color="gray")
        axes[0, 0].set_xlabel("delta mag")
        axes[0, 1].plot(p.mag[li][sel], res[sel], ",", color="black")
        axes[0, 1].set_ylim(-0.3, 0.3)
        axes[0, 1].set_xlabel("mag")
        axes[0, 1].set_ylabel("delta mag")
        yield a + 1, fig


def _zpcorr(run):
    p = run.photom
    for g in range(len(run.group_tp)):
        members = np.nonzero(run.group_of == g)[0]
        fig, ax = _figure(f"Group {g + 1}: zero-point corrections")
        ax = ax[0, 0]
        flags = np.array([run.fields[k].photflag for k in members])
        ax.errorbar(members + 1, p.dzp[members], yerr=p.dzp_err[members], fmt="o", color="black")
        ax.plot(members[flags] + 1, p.dzp[members[flags]], "s", mfc="none", color="red", ms=10,
                label="PHOTFLAG T")
        ax.axhline(0, color="gray", lw=0.5)
        ax.set_xlabel("field")
        ax.set_ylabel("dZP (mag)")
        ax.legend()
        yield g + 1, fig


def _zpcorr3d(run):
    p = run.photom
    for g in range(len(run.group_tp)):
        members = np.nonzero(run.group_of == g)[0]
        from .sky import project

        x, y = project(run.field_tp[members, 0], run.field_tp[members, 1], *run.group_tp[g])
        fig, _ = _figure(f"Group {g + 1}: zero-point corrections on the sky")
        fig.clf()
        ax = fig.add_subplot(projection="3d")
        ax.bar3d(-x * 60, y * 60, np.zeros(len(members)), 1.0, 1.0, p.dzp[members], shade=True)
        ax.set_xlabel("-xi (arcmin)")
        ax.set_ylabel("eta (arcmin)")
        ax.set_zlabel("dZP (mag)")
        yield g + 1, fig
