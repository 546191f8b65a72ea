"""The paper's Table 2 layout: `--methods=table2` and its report."""

from wgimask.evaluation.config import TABLE2_METHODS, EvaluationConfig
from wgimask.evaluation.reports import table2_report


def test_table2_stands_for_its_methods_and_asks_for_the_layout():
    config = EvaluationConfig(methods=("random+hd", "table2", "mg"))
    assert config.table2
    assert config.methods == ("random+hd", *TABLE2_METHODS)  # mg only once
    assert not EvaluationConfig(methods=("random+hd",)).table2
    for method in ("random+nete", "netm+bpfa", "ps+nlpe+ms", "densify+cdd", "mg"):
        assert method in config.methods


def test_table2_report_groups_the_evaluated_methods():
    rows = [
        {
            "method": "random+nete",
            "density": 0.1,
            "psnr": 21.584,
            "seconds_per_image": 0.012,
        },
        {"method": "mg", "density": 0.1, "psnr": 32.13, "seconds_per_image": 0.5},
        {
            "method": "mg",
            "density": 0.1,
            "psnr": 99.0,
            "seconds_per_image": 1.0,
            "upscaled": True,
        },
    ]
    text = table2_report(rows, (0.05, 0.1))
    assert "**(a) random masks**" in text and "**(b) NetM masks**" in text
    assert "densification masks" not in text  # nothing of that group was run
    assert "| 10% | 21.58 (0.012 s) |  |" in text  # WGAN not evaluated: empty
    assert "32.13 (0.5 s)" in text and "99.00" not in text  # upscaled rows apart
    assert "| 5% |  |  |" in text
    assert table2_report(rows[:0], (0.1,)) == ""
