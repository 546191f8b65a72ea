"""Tests for wgimask.devices."""

import os

from wgimask.devices import cpu_description, usable_cpu_count


def test_cpu_description_names_model_and_threads():
    text = cpu_description()
    count = usable_cpu_count()
    assert 1 <= count <= (os.cpu_count() or count)
    assert f"{count} usable threads" in text
    assert text.split(",")[0].strip()
