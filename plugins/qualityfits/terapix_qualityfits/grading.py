"""Automatic grading from a rules file (``data/grading.rules`` by default; see its header for the syntax).

>>> rules = read_rules()                                                 # doctest: +SKIP
>>> suggest_grade({"n_ccd_misplaced": 1, "fwhm_arcsec": 0.8}, rules)     # doctest: +SKIP
('D', ['CCD(s) placed away from their focal-plane position by the WCS header (n_ccd_misplaced = 1 > 0)'])
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from pathlib import Path

from terapix_fw.errors import ConfigError

__all__ = ["Rule", "read_rules", "suggest_grade", "default_rules_path", "GRADES"]

GRADES = ("A", "B", "C", "D")
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq,
        "!=": operator.ne}


@dataclass(frozen=True)
class Rule:
    grade: str
    metric: str
    op: str
    value: float
    reason: str

    def holds(self, metrics: dict) -> bool:
        v = metrics.get(self.metric)
        if self.op == "missing":  # a metric that could not be measured (absent, NaN, inf, not a number)
            try:
                return v is None or not math.isfinite(float(v))
            except (TypeError, ValueError):
                return True
        if v is None:
            return False
        try:
            v = float(v)
        except (TypeError, ValueError):
            return False
        return not math.isnan(v) and _OPS[self.op](v, self.value)


def default_rules_path() -> Path:
    return Path(__file__).with_name("data") / "grading.rules"


def read_rules(path: str | Path | None = None) -> list[Rule]:
    """Parse a rules file; a bad line is an error naming the file, the line and what was expected."""
    path = Path(path) if path else default_rules_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read grading rules {path}: {exc.strerror}", str(path), "GRADING_RULES") from None
    rules = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 4)
        where = f"{path}:{lineno}"
        if len(parts) >= 3 and parts[2] == "missing":  # GRADE METRIC missing [reason]
            if parts[0].upper() not in GRADES:
                raise ConfigError(f"grading rule {line!r}: grade {parts[0]!r} is not one of A, B, C, D", where)
            reason = line.split(None, 3)[3] if len(line.split(None, 3)) > 3 else f"{parts[1]} not measured"
            rules.append(Rule(parts[0].upper(), parts[1], "missing", float("nan"), reason))
            continue
        if len(parts) < 4:
            raise ConfigError(f"grading rule {line!r}: expected GRADE METRIC OPERATOR VALUE [reason]", where)
        grade, metric, op, value = parts[:4]
        if grade.upper() not in GRADES:
            raise ConfigError(f"grading rule {line!r}: grade {grade!r} is not one of A, B, C, D", where)
        if op not in _OPS:
            raise ConfigError(f"grading rule {line!r}: operator {op!r} is not one of {' '.join(_OPS)}", where)
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"grading rule {line!r}: value {value!r} is not a number", where) from None
        reason = parts[4] if len(parts) > 4 else f"{metric} {op} {value}"
        rules.append(Rule(grade.upper(), metric, op, number, reason))
    return rules


def suggest_grade(metrics: dict, rules: list[Rule]) -> tuple[str, list[str]]:
    """(worst grade among the rules that hold, or A; the reasons with the measured values)."""
    grade = "A"
    reasons = []
    for rule in rules:
        if rule.holds(metrics):
            if rule.op == "missing":
                reasons.append(f"{rule.grade}: {rule.reason} ({rule.metric} = {metrics.get(rule.metric)!r}: "
                               "could not be measured)")
            else:
                reasons.append(f"{rule.grade}: {rule.reason} ({rule.metric} = {float(metrics[rule.metric]):.4g} "
                               f"{rule.op} {rule.value:g})")
            if GRADES.index(rule.grade) > GRADES.index(grade):
                grade = rule.grade
    return grade, reasons
