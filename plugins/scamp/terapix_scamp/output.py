"""Products of a run: ``.head`` files (one block per extension, END-terminated), the XML summary.

The ``.head`` keywords and comments follow SCAMP's (``header.c``): EQUINOX, RADESYS, CTYPE, CUNIT, CRVAL,
CRPIX, CD, PV (non-zero), FGROUPNO, ASTIRMS1/2, ASTRRMS1/2, ASTINST, FLXSCALE, MAGZEROP, PHOTIRMS, PHOTINST,
PHOTLINK.  ASTIRMS/ASTRRMS are in degrees, PHOTIRMS in magnitudes, as SCAMP writes them.
"""
from __future__ import annotations

import numpy as np

from .photom import flxscale
from .sky import deproject, project
from .tpv import fit_tpv

__all__ = ["field_headers", "chip_solution_grid", "write_xml", "head_path"]

GRID = 12  # pixels per side of the grid the TPV terms are fitted on


def head_path(run, k: int, ctx):
    """``name.cat`` -> ``name.head`` beside the catalogue (HEADER_NAME overrides, as in SCAMP)."""
    from pathlib import Path

    config = run.config
    names = list(config["HEADER_NAME"])
    f = run.fields[k]
    if names:
        if len(names) != len(run.fields):
            from terapix_fw.errors import ToolError

            raise ToolError(f"HEADER_NAME lists {len(names)} file(s) for {len(run.fields)} catalogue(s); "
                            "expected one per catalogue")
        return Path(names[k])
    target = f.path.with_suffix(config["HEADER_SUFFIX"])
    if ctx.confine_outputs:  # pipeline run: outputs stay in the step's directory
        return Path(target.name)
    return target


def chip_solution_grid(run, k: int, c: int, n: int = GRID):
    """Pixels of a grid over chip ``c`` of field ``k`` and their solved sky positions (deg)."""
    chip = run.fields[k].chips[c]
    gx, gy = np.meshgrid(np.linspace(0.5, chip.nx + 0.5, n), np.linspace(0.5, chip.ny + 0.5, n))
    px, py = gx.ravel(), gy.ravel()
    model = run.astrom.model
    if model.block_ndet[model.block_of[k, c]] < 3:
        # no (usable) detection on this chip in any exposure of its instrument: the polynomial is
        # undetermined, keep the first-guess WCS of the header
        ra, dec = run.chip_wcs[k][c].all_pix2world(px, py, 1)
        return px, py, ra, dec
    xi, eta = model.evaluate_at(run.astrom.theta, np.full(px.size, k), np.full(px.size, c), px, py)
    ra, dec = deproject(xi, eta, *run.field_tp[k])
    return px, py, ra, dec


def _projection(config, header) -> str:
    ptype = config["PROJECTION_TYPE"]
    if ptype in ("TPV", "TAN"):
        return ptype
    code = str(header.get("CTYPE1", "RA---TAN"))[-3:].upper()
    return code if code in ("TAN", "TPV") else "TPV"


def field_headers(run, k: int, log) -> list:
    """The header blocks of field ``k``, one per extension."""
    from astropy.io import fits

    config = run.config
    f = run.fields[k]
    stats = run.stats["fields"][k]
    mosaic = config["MOSAIC_TYPE"]
    degree = run.astrom.model.degree
    headers = []
    worst = 0.0
    for c, chip in enumerate(f.chips):
        proj = _projection(config, chip.header)
        crpix = (float(chip.header.get("CRPIX1", 0.5 * (chip.nx + 1))),
                 float(chip.header.get("CRPIX2", 0.5 * (chip.ny + 1))))
        plain_tan = proj == "TAN" and config["PROJECTION_TYPE"] == "TAN"
        if mosaic in ("SAME_CRVAL", "SHARE_PROJAXIS") and not plain_tan:
            crval = tuple(run.field_tp[k])
        else:  # as SCAMP: CRPIX kept, CRVAL moved to the solved sky position of CRPIX
            xi0, eta0 = run.astrom.model.evaluate_at(run.astrom.theta, np.array([k]), np.array([c]),
                                                      np.array([crpix[0]]), np.array([crpix[1]]))
            cra, cdec = deproject(xi0, eta0, *run.field_tp[k])
            crval = (float(cra[0]), float(cdec[0]))
        px, py, ra, dec = chip_solution_grid(run, k, c)
        xi, eta = project(ra, dec, *crval)
        if plain_tan:
            fit_degree = 1
            cd, pv1, pv2, err = fit_tpv(px, py, xi, eta, crpix, 1)
        else:
            # the solution is exactly a polynomial of DISTORT_DEGREES on the field's tangent plane; another
            # tangent point (a CCD's own CRVAL) needs a degree more when the fit would lose > 0.1 mas
            fit_degree = degree
            while True:
                cd, pv1, pv2, err = fit_tpv(px, py, xi, eta, crpix, fit_degree)
                if err * 3.6e6 < 0.1 or fit_degree >= 7:
                    break
                fit_degree += 1
            if fit_degree == 1 and max(abs(pv1.get(0, 0.0)), abs(pv2.get(0, 0.0))) > 1e-10:
                # wcslib reads TAN + PV as TPV only when a term of degree >= 2 is present
                fit_degree = 2
                cd, pv1, pv2, err = fit_tpv(px, py, xi, eta, crpix, fit_degree)
            plain_tan = fit_degree == 1 and proj == "TAN"
        worst = max(worst, err)
        h = fits.Header()
        h.add_comment("Astrometric and photometric calibration by terapix-fw scamp (SCAMP 2.10 conventions)")
        h["EQUINOX"] = (2000.0, "Mean equinox")
        h["RADESYS"] = ("ICRS", "Astrometric system")
        h["CTYPE1"] = (f"RA---{proj}", "WCS projection type for this axis")
        h["CTYPE2"] = (f"DEC--{proj}", "WCS projection type for this axis")
        h["CUNIT1"] = ("deg", "Axis unit")
        h["CUNIT2"] = ("deg", "Axis unit")
        h["CRVAL1"] = (crval[0], "World coordinate on this axis")
        h["CRVAL2"] = (crval[1], "World coordinate on this axis")
        h["CRPIX1"] = (crpix[0], "Reference pixel on this axis")
        h["CRPIX2"] = (crpix[1], "Reference pixel on this axis")
        h["CD1_1"] = (cd[0, 0], "Linear projection matrix")
        h["CD1_2"] = (cd[0, 1], "Linear projection matrix")
        h["CD2_1"] = (cd[1, 0], "Linear projection matrix")
        h["CD2_2"] = (cd[1, 1], "Linear projection matrix")
        if not plain_tan:
            for axis, pv in ((1, pv1), (2, pv2)):
                for m in sorted(pv):
                    if pv[m] != 0.0:
                        h[f"PV{axis}_{m}"] = (pv[m], "Projection distortion parameter")
        h["FGROUPNO"] = (int(run.group_of[k]) + 1, "SCAMP field group label")
        h["ASTIRMS1"] = (stats["internal_high"]["sigma"][0] / 3600.0, "Astrom. dispersion RMS (intern., high S/N)")
        h["ASTIRMS2"] = (stats["internal_high"]["sigma"][1] / 3600.0, "Astrom. dispersion RMS (intern., high S/N)")
        h["ASTRRMS1"] = (stats["reference_high"]["sigma"][0] / 3600.0, "Astrom. dispersion RMS (ref., high S/N)")
        h["ASTRRMS2"] = (stats["reference_high"]["sigma"][1] / 3600.0, "Astrom. dispersion RMS (ref., high S/N)")
        h["ASTINST"] = (run.astr_inst.index(f.astr_key) + 1, "SCAMP astrometric instrument label")
        p = run.photom
        mzo = _magzero_out(config, run.phot_inst.index(f.phot_key))
        dzp = float(p.dzp[k]) if p is not None else 0.0
        h["FLXSCALE"] = (flxscale(mzo, f.phot_c, dzp, f.phot_k, f.airmass, f.exptime), "SCAMP relative flux scale")
        h["MAGZEROP"] = (mzo, "SCAMP zero-point")
        h["PHOTIRMS"] = (stats.get("phot_high", {}).get("sigma", 0.0), "mag dispersion RMS (internal, high S/N)")
        h["PHOTINST"] = (run.phot_inst.index(f.phot_key) + 1, "SCAMP photometric instrument label")
        h["PHOTLINK"] = (bool(p.linked[k]) if p is not None else False, "True if linked to a photometric field")
        headers.append(h)
    log.info("%s: TPV fit of the solution accurate to %.3f mas", f.name, worst * 3.6e6)
    return headers


def _magzero_out(config, inst: int) -> float:
    values = config["MAGZERO_OUT"]
    return float(values[min(inst, len(values) - 1)])


def write_xml(run, path, elapsed: float) -> None:
    """A VOTable summary like SCAMP's ``scamp.xml``: Fields, FGroups, Astrometric_Instruments,
    Astrometric_Chips (the distortion degree solved for on each chip), Fields_Extensions (residuals and
    matched counts per field and extension), Photometric_Instruments, Warnings and Config tables."""
    from astropy.io.votable.tree import Info, Resource, TableElement, VOTableFile
    from astropy.table import Table

    config = run.config
    st = run.stats
    fields = run.fields
    p = run.photom
    ft = Table()
    ft["Catalog_Number"] = np.arange(1, len(fields) + 1, dtype=np.int32)
    ft["Catalog_Name"] = [f.name for f in fields]
    ft["Image_Ident"] = [str(f.chips[0].header.get("OBJECT", "")) for f in fields]
    ft["NExtensions"] = np.array([len(f.chips) for f in fields], np.int32)
    ft["NAxis"] = np.full(len(fields), 2, np.int32)
    ft["NDetect"] = np.array([f.ndet for f in fields], np.int32)
    ft["Group"] = (run.group_of + 1).astype(np.int32)
    ft["Astr_Instrum"] = [f"A{run.astr_inst.index(f.astr_key) + 1}" for f in fields]
    ft["Phot_Instrum"] = [f"P{run.phot_inst.index(f.phot_key) + 1}" for f in fields]
    ft["Photom_Flag"] = np.array([f.photflag for f in fields])
    ft["Photom_Link"] = np.array([bool(p.linked[k]) if p is not None else False for k in range(len(fields))])
    ft["Observation_Date"] = np.array([f.epoch if f.epoch is not None else np.nan for f in fields])
    ft["Exposure_Time"] = np.array([f.exptime for f in fields])
    ft["Air_Mass"] = np.array([f.airmass for f in fields])
    ft["Field_Coordinates"] = run.field_tp
    ft["Max_Radius"] = run.field_radius
    ft["ZeroPoint_Corr"] = p.dzp if p is not None else np.zeros(len(fields))
    ft["FlxScale"] = [flxscale(_magzero_out(config, run.phot_inst.index(f.phot_key)), f.phot_c,
                               float(p.dzp[k]) if p is not None else 0.0, f.phot_k, f.airmass, f.exptime)
                      for k, f in enumerate(fields)]
    m = run.matches
    ft["DPixelScale"] = [mm.scale if mm else 1.0 for mm in m]
    ft["DPosAngle"] = [mm.angle if mm else 0.0 for mm in m]
    ft["AS_Contrast"] = [mm.as_contrast if mm else 0.0 for mm in m]
    ft["DX"] = [mm.shift[0] if mm else 0.0 for mm in m]
    ft["DY"] = [mm.shift[1] if mm else 0.0 for mm in m]
    ft["XY_Contrast"] = [mm.xy_contrast if mm else 0.0 for mm in m]
    ft["Flipped"] = np.array([bool(mm.flip) if mm else False for mm in m])
    for prefix, key in (("Internal", "internal"), ("Internal_HighSN", "internal_high"),
                        ("Reference", "reference"), ("Reference_HighSN", "reference_high")):
        if key.startswith("reference"):
            ft[f"AstromOffset_{prefix}"] = np.array([s[key]["offset"] for s in st["fields"]])
        ft[f"AstromSigma_{prefix}"] = np.array([s[key]["sigma"] for s in st["fields"]])
        ft[f"Chi2_{prefix}"] = np.array([s[key]["chi2"] for s in st["fields"]])
        ft[f"NDeg_{prefix}"] = np.array([s[key]["ndets"] for s in st["fields"]], np.int32)
    if p is not None:
        ft["PhotomSigma_Internal"] = np.array([s["phot"]["sigma"] for s in st["fields"]])
        ft["PhotomSigma_Internal_HighSN"] = np.array([s["phot_high"]["sigma"] for s in st["fields"]])
        ft["PhotomNDets_Internal"] = np.array([s["phot"]["ndets"] for s in st["fields"]], np.int32)
    gt = Table()
    ng = len(run.group_tp)
    gt["Name"] = [f"G{g + 1}" for g in range(ng)]
    gt["Index"] = np.arange(1, ng + 1, dtype=np.int32)
    gt["NFields"] = np.array([(run.group_of == g).sum() for g in range(ng)], np.int32)
    gt["Field_Coordinates"] = run.group_tp
    gt["AstRef_Catalog"] = [config["ASTREF_CATALOG"]] * ng
    for prefix, key in (("Internal", "internal"), ("Internal_HighSN", "internal_high"),
                        ("Reference", "reference"), ("Reference_HighSN", "reference_high")):
        if key.startswith("reference"):
            gt[f"AstromOffset_{prefix}"] = np.array([s[key]["offset"] for s in st["groups"]])
        gt[f"AstromSigma_{prefix}"] = np.array([s[key]["sigma"] for s in st["groups"]])
        gt[f"AstromChi2_{prefix}"] = np.array([s[key]["chi2"] for s in st["groups"]])
        gt[f"AstromNDets_{prefix}"] = np.array([s[key]["ndets"] for s in st["groups"]], np.int32)
    if p is not None:
        for prefix, key in (("Internal", "phot"), ("Internal_HighSN", "phot_high")):
            gt[f"PhotomSigma_{prefix}"] = np.array([s[key]["sigma"] for s in st["groups"]])
            gt[f"PhotomChi2_{prefix}"] = np.array([s[key]["chi2"] for s in st["groups"]])
            gt[f"PhotomNDets_{prefix}"] = np.array([s[key]["ndets"] for s in st["groups"]], np.int32)
    at = Table()
    at["Name"] = [f"A{i + 1}" for i in range(len(run.astr_inst))]
    at["Index"] = np.arange(1, len(run.astr_inst) + 1, dtype=np.int32)
    at["NFields"] = np.array([sum(f.astr_key == a for f in fields) for a in run.astr_inst], np.int32)
    at["Keys"] = list(run.astr_inst)
    model = run.astrom.model
    at["Distort_Degree"] = np.full(len(run.astr_inst), model.degree, np.int32)
    # per chip: the degree actually solved for (lowered where the matched detections cannot support
    # DISTORT_DEGREES over the chip, or where the solution folded), with its constraints
    keys = model.block_keys or [("", b) for b in range(len(model.chip_size))]
    dt = Table()
    dt["Astr_Instrum"] = [f"A{run.astr_inst.index(i) + 1}" if i in run.astr_inst else str(i) for i, _ in keys]
    dt["Extension"] = np.array([e + 1 for _, e in keys], np.int32)
    dt["NDets_Matched"] = (np.asarray(model.block_nmatch, np.int32) if model.block_nmatch is not None
                           else np.asarray(model.block_ndet, np.int32))
    dt["Distort_Degree"] = np.asarray(model.block_degree, np.int32)
    dt["Max_Leverage"] = (np.asarray(model.block_lever, float) if model.block_lever is not None
                          else np.full(len(keys), np.nan))
    # per field and extension: residuals and matched counts (a misplaced chip shows here first)
    xt = Table()
    rows = [(k, c) for k in range(len(fields)) for c in st.get("chips", [[]] * len(fields))[k]]
    xt["Catalog_Name"] = [fields[k].name for k, _ in rows]
    xt["Extension"] = np.array([c["extension"] for _, c in rows], np.int32)
    xt["NDetect"] = np.array([c["ndets"] for _, c in rows], np.int32)
    for prefix, key in (("Internal_HighSN", "internal_high"), ("Reference_HighSN", "reference_high"),
                        ("Reference", "reference")):
        xt[f"AstromSigma_{prefix}"] = np.array([c[key]["sigma"] for _, c in rows]).reshape(len(rows), 2)
        xt[f"AstromNDets_{prefix}"] = np.array([c[key]["ndets"] for _, c in rows], np.int32)
    pt = Table()
    pt["Name"] = [f"P{i + 1}" for i in range(len(run.phot_inst))]
    pt["Index"] = np.arange(1, len(run.phot_inst) + 1, dtype=np.int32)
    pt["NFields"] = np.array([sum(f.phot_key == a for f in fields) for a in run.phot_inst], np.int32)
    pt["MagZeroPoint_Output"] = [_magzero_out(config, i) for i in range(len(run.phot_inst))]
    pt["Keys"] = list(run.phot_inst)
    if p is not None:
        pt["PhotomSigma_Internal"] = [st["phot_inst"][a]["phot"]["sigma"] for a in run.phot_inst]
        pt["PhotomSigma_Internal_HighSN"] = [st["phot_inst"][a]["phot_high"]["sigma"] for a in run.phot_inst]
        pt["PhotomNDets_Internal"] = np.array([st["phot_inst"][a]["phot"]["ndets"] for a in run.phot_inst],
                                              np.int32)
    ct = Table()
    strings = config.as_strings()
    ct["Keyword"] = list(strings)
    ct["Value"] = [strings[k] for k in strings]
    wt = Table()
    warnings = run.stats.get("warnings", []) or ["none"]
    wt["Text"] = warnings
    votable = VOTableFile()
    resource = Resource(name="SCAMP")
    votable.resources.append(resource)
    resource.infos.append(Info(name="Software", value="terapix-fw scamp (SCAMP 2.10 conventions)"))
    resource.infos.append(Info(name="Elapsed", value=f"{elapsed:.2f}"))
    for name, table in (("Fields", ft), ("FGroups", gt), ("Astrometric_Instruments", at),
                        ("Astrometric_Chips", dt), ("Fields_Extensions", xt), ("Photometric_Instruments", pt), ("Warnings", wt), ("Config", ct)):
        element = TableElement.from_table(votable, table)
        element.name = name
        element.ID = name
        resource.tables.append(element)
    votable.to_xml(str(path))
