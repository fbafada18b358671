"""The extraction is split by concern (issue 18): the entry points and every name callers import from
``terapix_sextractor.extraction`` still resolve there, each concern lives in its own module, and the
measurements take one typed :class:`MeasureInputs` instead of 30 positional arguments."""
import dataclasses
import importlib
import inspect

import numpy as np
import pytest

import terapix_sextractor
import terapix_sextractor.extraction as ex

# what the plugin's API, its own modules, qualityfits and the tests import from extraction
IMPORTED_FROM_EXTRACTION = ["extract", "extract_results", "extract_image", "resolve_config", "resolve_params",
                            "check_supported", "ImageSpec", "ExtractionResult", "BYTES_PER_PIXEL",
                            "MeasureInputs", "_every_nth", "_grown_labels_at", "_interpolate_bad",
                            "_variance_from_weight", "_vignets", "_overlapped_job"]

CONCERNS = {
    "configuration": ["resolve_config", "resolve_params", "check_supported"],
    "reading": ["ImageSpec", "ExtractionResult", "_read_spec", "_read_plane", "_strip_plan", "_available_memory",
                "_release_heap"],
    "detection": ["_detect", "_Detected", "_variance_from_weight", "_interpolate_bad", "_thresholds"],
    "measurement": ["_measure", "MeasureInputs", "_precompute", "_objwise", "_pos_errors", "_vignets"],
    "worldcoords": ["_wcs", "_pixel_scale", "_world_columns"],
    "checkimages": ["_check_images", "_draw_apertures"],
}


@pytest.mark.parametrize("name", IMPORTED_FROM_EXTRACTION)
def test_names_callers_import_from_extraction_still_resolve(name):
    assert getattr(ex, name) is not None


def test_public_api_of_the_package_is_the_extraction_one():
    for name in terapix_sextractor.__all__:
        assert getattr(terapix_sextractor, name) is getattr(ex, name)
    assert set(ex.__all__) <= set(dir(ex))


@pytest.mark.parametrize("module", sorted(CONCERNS))
def test_each_concern_lives_in_its_module(module):
    mod = importlib.import_module(f"terapix_sextractor.{module}")
    for name in CONCERNS[module]:
        obj = getattr(mod, name)
        assert obj.__module__ == mod.__name__, f"{name} is defined in {obj.__module__}, not {mod.__name__}"
        if hasattr(ex, name):  # re-exported, the same object (not a copy that could drift)
            assert getattr(ex, name) is obj


def test_extraction_keeps_only_entry_points_and_scheduling():
    """The module that was 1,800 lines with six concerns stays the entry points and the scheduling of
    extensions: no detection or measurement code defined there again."""
    own = [n for n, v in vars(ex).items() if (inspect.isfunction(v) or inspect.isclass(v))
           and v.__module__ == ex.__name__]
    assert set(own) == {"extract", "extract_results", "iter_results", "_pooled", "extract_image", "_warm_up",
                        "_run_job", "_run_rows",
                        "_read_and_detect", "_can_overlap", "_overlapped_job", "_run_strips", "_measure_detected",
                        "_card_image"}


def test_measure_takes_one_typed_object():
    from terapix_sextractor.measurement import MeasureInputs, _measure

    params = list(inspect.signature(_measure).parameters.values())
    assert [p.name for p in params] == ["m"] and params[0].annotation in (MeasureInputs, "MeasureInputs")
    fields = {f.name for f in dataclasses.fields(MeasureInputs)}
    assert {"objs", "seg", "sub", "var", "bad", "bkg", "spec", "cfg", "plist", "want", "gain", "satur", "zp",
            "pixscale", "wcs", "sub_d", "bkg_d", "kernel", "pre", "var_d"} <= fields
    # every field is documented by its one-line comment in the class body
    src = inspect.getsource(MeasureInputs)
    for name in fields:
        line = next(ln for ln in src.splitlines() if ln.strip().startswith(f"{name}:"))
        assert "#" in line, f"MeasureInputs.{name} has no comment"


def test_extraction_calls_measure_with_measure_inputs(monkeypatch):
    """extract_image hands _measure a MeasureInputs built from the detection, and the catalogue is the
    one _measure returns."""
    from terapix_sextractor.synth import gaussian_image

    calls = []
    real = ex._measure

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(ex, "_measure", spy)
    img = gaussian_image((120, 120), [(40, 40, 2e4, 2, 2, 0), (80, 90, 1e4, 3, 2, 30)], sky=100, noise=2, seed=1)
    cfg = ex.resolve_config(None)
    plist = ex.resolve_params(["NUMBER", "X_IMAGE", "FLUX_AUTO"], cfg)
    res = ex.extract_image(ex.ImageSpec(img, None), cfg, plist)
    assert len(calls) == 1
    args, kwargs = calls[0]
    assert not kwargs and len(args) == 1 and isinstance(args[0], ex.MeasureInputs)
    m = args[0]
    assert m.cfg is cfg and m.plist is plist and m.want == {"NUMBER", "X_IMAGE", "FLUX_AUTO"}
    assert len(m.objs) == len(res.table) == 2 and m.seg.shape == img.shape
    assert np.allclose(np.sort(res.table["X_IMAGE"]), [41, 81], atol=0.1)
