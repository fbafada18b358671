"""terapix_fw.sim: MegaCam-like simulated exposures with known truth (SkyMaker's role).

Stable API (other plugins' tests call it; arguments are only ever added, as optional keywords)::

    from terapix_fw.sim import simulate_exposure, small_focal_plane
    res = simulate_exposure(tmp_path, seed=1, focal_plane=small_focal_plane(nccd=4, nx=512, ny=512),
                            density=0.3, seeing=0.8, filter="r.MP9601")
    res.path                # MEF: primary + EXTNAME ccd00.. image HDUs, first-guess WCS (RA---TAN)
    res.truth               # astropy Table, one row per source centred on a CCD (see TRUTH_COLUMNS)
    res.truth_path          # the same table as FITS, truth/<name>.truth.fits (HDU TRUTH, true ZP in its header)
    res.true_wcs            # list of astropy Header (TPV), one per CCD
    res.true_wcs_path       # truth/<name>.wcs.truth: SCAMP/SWarp .head format under a name no tool reads
                            # (truth never sits beside the MEF, where HEADER_SUFFIX .head would find it)
    res.guess_wcs           # the first-guess headers written in the MEF (a few arcsec off, slightly rotated)
    res.zeropoint           # true ZP: mag = ZP - 2.5 log10(total ADU); res.header_zeropoint = MAGZP
    res.reference_catalog   # FITS_LDAC (LDAC_OBJECTS: X_WORLD Y_WORLD ERRA/B/THETA_WORLD MAG MAGERR),
                            # accepted by scamp -ASTREF_CATALOG FILE -ASTREFCAT_NAME <it>
    res.flat_path, res.bpm_path   # flat response (mean 1) and bad pixels (bit 1 column, bit 2 hot)
    res.meta                # dict: filter, qrunid, mjd, exptime, airmass, zeropoint, cloud, sky_adu...

Keywords of :class:`ExposureSpec` are accepted directly (``seeing=``, ``filter=``, ``exptime=``,
``photometric=``, ``cloud=``, ``wcs_offset_arcsec=``, ``wcs_rotation_deg=``, ``distortion_arcsec=``,
``density=``, ``star_density=``, ``maglim=``, ``cosmic_rays=``, ``defects=``, ``satellite=``,
``compress=``, ``ra=``, ``dec=``, ``name=``...), plus ``sky=``, ``nthreads=``, ``write_refcat=``,
``write_calibration=``.

    from terapix_fw.sim import SurveySpec, simulate_survey
    survey = SurveySpec.from_xml("instructions/survey_tiny.xml")   # validated against schemas/survey.xsd
    result = simulate_survey(survey, outdir, seed=1)  # .exposures, .reference_catalog, .zeropoints_path,
                                                      # .sky_truth_path (all sources, MAG_U..MAG_Z)

Command line: ``terapix simulate SURVEY.xml --outdir DIR [--seed N]``; in an instruction file, the tool
``simulate`` (fan-out ``all``; SURVEY_FILE, SEED, OUTPUT_DIR, EXPOSURES, COMPRESS, NTHREADS).

Conventions
-----------
* Pixel positions (truth ``X_IMAGE``/``Y_IMAGE``, CRPIX) are FITS 1-based: first pixel centre = 1.0.
* Truth columns: ID, RA, DEC (deg), CCD (number in EXTNAME ccdNN), EXT (HDU index), X_IMAGE, Y_IMAGE,
  MAG (true, exposure filter), FLUX (ADU), IS_STAR, SERSIC_N, RE_ARCSEC (major-axis half-light radius),
  AXIS_RATIO, THETA_WORLD (deg E of N), FWHM_PSF (arcsec), ELLIP_PSF, SATURATED.
* Images are detrended (flat-fielded, bias-subtracted) float32 ADU with the sky in; weight ~ flat.
  Saturated pixels equal SATURATE.  Photometric exposures: MAGZP == true ZP; others are off by the cloud
  extinction (0.05-0.3 mag).
* ``write_truth_ldac(res, path)``: an ideal SExtractor-like FITS_LDAC catalogue (XWIN_IMAGE... FLAGS)
  from the truth with the first-guess headers, to test SCAMP-like steps without detection.
* Known sources can be injected: ``sky=StaticSky(make_sources(ra, dec, mag_r, is_star=...))``.
* Same seed + same arguments = byte-identical files, whatever ``nthreads``.  ``density`` < 1 makes
  small fast test images (4 CCDs of 512x512 at density 1 hold ~350 sources and take about a second).
"""
# Every name is imported on first use, so that registering the simulator as a plugin (which imports
# this package) costs nothing at ``terapix`` start-up.
_LAZY = {
    "simulate_exposure": "exposure", "ExposureSpec": "exposure", "ExposureResult": "exposure",
    "FILTERS": "exposure", "TRUTH_COLUMNS": "exposure", "filter_info": "exposure",
    "FocalPlane": "focalplane", "CCD": "focalplane", "megacam_focal_plane": "focalplane",
    "small_focal_plane": "focalplane", "write_reference_catalog": "refcat", "SkyModel": "sky",
    "SourceList": "sky", "StaticSky": "sky", "make_sources": "sky", "write_truth_ldac": "catalogs",
    "SurveySpec": "survey", "SurveyResult": "survey", "simulate_survey": "survey",
}
__all__ = ["simulate_exposure", "ExposureSpec", "ExposureResult", "FocalPlane", "CCD",
           "megacam_focal_plane", "small_focal_plane", "SkyModel", "SourceList", "StaticSky", "make_sources",
           "FILTERS", "TRUTH_COLUMNS", "filter_info", "write_reference_catalog", "write_truth_ldac",
           "SurveySpec", "SurveyResult", "simulate_survey"]


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'terapix_fw.sim' has no attribute {name!r}")
