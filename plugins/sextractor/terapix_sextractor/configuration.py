"""Configuration of an extraction: the SExtractor keywords (:func:`resolve_config`), the settings this
implementation refuses (:func:`check_supported`) and the catalogue columns (:func:`resolve_params`).

Part of :mod:`terapix_sextractor.extraction`, which re-exports these names."""
from __future__ import annotations

from pathlib import Path

from terapix_fw.errors import ConfigError

from .paramfile import CatalogParam

__all__ = ["resolve_config", "check_supported", "resolve_params"]


def resolve_config(config=None, **overrides):
    """A validated :class:`terapix_fw.params.Config` from a ``.sex`` path, a mapping, a Config, or None,
    with keyword overrides applied on top (command-line precedence).

    Parameters
    ----------
    config : str, Path, mapping, Config or None
    **overrides : Any
        SExtractor keywords.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        On an unknown keyword or bad value.
    """
    from terapix_fw.config import read_config_file
    from terapix_fw.params import Config

    from .tool import SExtractorTool

    params = SExtractorTool.parameter_set()
    layers = []
    if isinstance(config, Config) and not overrides:
        return config
    if isinstance(config, Config):
        layers.append([(k, v, "<api>") for k, v in config.items()])
    elif isinstance(config, (str, Path)):
        layers.append(read_config_file(config))
    elif isinstance(config, dict):
        layers.append([(k, v, "<api>") for k, v in config.items()])
    elif config is not None:
        raise TypeError(f"config must be a .sex path, a mapping or a Config, not {type(config).__name__}")
    if overrides:
        layers.append([(k, v, "<api>") for k, v in overrides.items()])
    return params.resolve(*layers)


def check_supported(cfg) -> None:
    """Refuse, before any work, the settings this implementation does not provide (rather than
    silently ignoring them)."""
    unsupported = {
        "DETECT_TYPE": ("PHOTO", "photographic-plate (PHOTO) detection"),
        "DGEO_TYPE": ("PIXEL", "differential geometry maps"),
        "CATALOG_TYPE": ("ASCII_SKYCAT", "the SkyCat catalogue format"),
    }
    for key, (value, what) in unsupported.items():
        if cfg[key] == value:
            where = cfg.sources.get(key) if hasattr(cfg, "sources") else None
            raise ConfigError(f"{key} {value}: {what} is not supported by terapix-fw sextractor", where, key)


def resolve_params(params, config) -> list[CatalogParam]:
    """The catalogue columns: a list of names (``"MAG_APER(2)"`` allowed), a ``.param`` path, or None
    (the file PARAMETERS_NAME if it exists, else :data:`paramfile.DEFAULT_PARAMS`).

    Parameters
    ----------
    params : list of str, str, Path or None
    config : Config

    Returns
    -------
    list of CatalogParam

    Raises
    ------
    ConfigError
        On an unknown catalogue parameter.
    """
    from .paramfile import DEFAULT_PARAMS, parse_param_text, read_param_file

    if params is None:
        name = config["PARAMETERS_NAME"]
        if Path(name).exists():
            return read_param_file(name)
        if name != "default.param":
            raise ConfigError(f"cannot open catalogue parameter file {name}", "PARAMETERS_NAME", "PARAMETERS_NAME")
        return parse_param_text("\n".join(DEFAULT_PARAMS), "<default parameters>")
    if isinstance(params, (str, Path)) and not isinstance(params, str) or (
            isinstance(params, str) and "\n" not in params and Path(params).exists()):
        return read_param_file(params)
    if isinstance(params, str):
        return parse_param_text(params, "<params>")
    if params and isinstance(params[0], CatalogParam):
        return list(params)
    return parse_param_text("\n".join(params), "<params>")
