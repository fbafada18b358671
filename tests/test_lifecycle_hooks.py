"""Lifecycle hooks as an observer plugin sees them."""
from __future__ import annotations

from pathlib import Path


def test_lifecycle_hooks_fire_in_order(tmp_path, fits_files, demo_tools):
    """An observer plugin sees run_started, step_started, unit_finished, product_recorded,
    record_emitted, step_finished and run_finished."""
    import textwrap

    from terapix_fw import plugins
    from terapix_fw.hookspecs import hookimpl
    from terapix_fw.runner import run_instructions

    events = []

    class Observer:
        @hookimpl
        def run_started(self, run):
            events.append(("run_started", run.name))

        @hookimpl
        def step_started(self, run, step):
            events.append(("step_started", step.id))

        @hookimpl
        def unit_finished(self, run, step, unit, result):
            events.append(("unit_finished", f"{step.id}/{unit.id}", result.status))

        @hookimpl
        def product_recorded(self, run, step, unit, product):
            events.append(("product_recorded", Path(product.path).name, product.kind, len(product.checksum)))

        @hookimpl
        def record_emitted(self, run, step, unit, kind, data):
            events.append(("record_emitted", kind))

        @hookimpl
        def step_finished(self, run, step, summary):
            events.append(("step_finished", step.id, summary))

        @hookimpl
        def step_failed(self, run, step, summary):
            events.append(("step_failed", step.id, summary))

        @hookimpl
        def run_finished(self, run, summary):
            events.append(("run_finished", summary["done"]))

    xml = tmp_path / "run.xml"
    xml.write_text(textwrap.dedent("""\
        <instructions name="obs" version="1">
          <inputs><inputset id="raw"><files pattern="raw/exp0.fits"/></inputset></inputs>
          <steps><step id="s" tool="scale"><input set="raw"/></step></steps>
        </instructions>"""))
    observer = Observer()
    plugins.get_plugin_manager().register(observer)
    try:
        run_instructions(xml, tmp_path / "work", jobs=1, progress=False)
    finally:
        plugins.get_plugin_manager().unregister(observer)
    assert events == [("run_started", "obs"), ("step_started", "s"), ("unit_finished", "s/exp0", "done"),
                      ("product_recorded", "exp0_scaled.fits", "image", 64), ("record_emitted", "catalog"),
                      ("step_finished", "s", {"done": 1}), ("run_finished", 1)]
    # a failing unit: step_failed instead of step_finished, and no product
    events.clear()
    plugins.get_plugin_manager().register(observer)
    try:
        xml.write_text(xml.read_text().replace('tool="scale">', 'tool="scale"><config><param name="FAIL_ON">exp</param></config>'))
        run_instructions(xml, tmp_path / "work", jobs=1, progress=False)
    finally:
        plugins.get_plugin_manager().unregister(observer)
    assert events == [("run_started", "obs"), ("step_started", "s"), ("unit_finished", "s/exp0", "failed"),
                      ("record_emitted", "refusal"), ("step_failed", "s", {"failed": 1}), ("run_finished", 0)]
