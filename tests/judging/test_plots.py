"""The plotting helpers write readable PNG and PDF files."""

import pytest

from prefkit.reports import plots


def _check(paths):
    import matplotlib.image as mpimg

    assert [p.suffix for p in paths] == [".png", ".pdf"]
    for p in paths:
        assert p.exists() and p.stat().st_size > 1000
    img = mpimg.imread(paths[0])
    assert img.shape[0] > 200 and img.shape[1] > 300
    assert paths[1].read_bytes()[:5] == b"%PDF-"


def test_all_plot_kinds(tmp_path):
    _check(plots.bar_chart(["a", "b", "c"], [0.6, 0.4, float("nan")], [(0.5, 0.7), 0.05, None],
                           path=tmp_path / "bar.png", reference=0.5, reference_label="parity", ylim=(0, 1)))
    _check(plots.grouped_bars(["x", "y"], {"s1": [1, 2], "s2": [2, 3]}, {"s1": [0.1, 0.2]},
                              path=tmp_path / "grouped", annotate=True))
    _check(plots.stacked_bars(["r1", "a very long label__with_underscores vs another-long-label"],
                              {"A": [1, 2], "tie": [1, 0], "B": [3, 1]}, path=tmp_path / "stacked", horizontal=True))
    _check(plots.stacked_bars(["r1", "r2"], {"A": [1, 2], "B": [3, 1]}, path=tmp_path / "stacked_v"))
    _check(plots.line_plot([0, 1, 3, 5, 10], {"np": [0.76, 0.85, 0.94, 0.97, 0.985], "btl": [0.76] * 5},
                           {"np": [(0.75, 0.77)] * 5}, path=tmp_path / "line", xlabel="context pairs"))
    _check(plots.line_plot(["turn 1", "turn 2"], {"s": [1, None]}, {"s": [0.1, 0.1]}, path=tmp_path / "cat"))
    _check(plots.loss_curve(list(range(20)), [1 / (i + 1) for i in range(20)], eval_steps=[5, 10],
                            eval_losses=[0.3, 0.2], smooth=3, path=tmp_path / "loss"))


def test_formats_and_errors(tmp_path):
    out = plots.bar_chart(["a"], [1.0], path=tmp_path / "only.png", formats=("png",))
    assert [p.name for p in out] == ["only.png"]
    with pytest.raises(ValueError):
        plots.bar_chart(["a", "b"], [1.0], path=tmp_path / "x")
    with pytest.raises(ValueError):
        plots.line_plot([1, 2], {"s": [1]}, path=tmp_path / "y")


def test_wrap_label():
    assert plots.wrap_label("short") == "short"
    wrapped = plots.wrap_label("dpo__train-chosen__infer-gold-chosen vs dpo__train-none__infer-none", 30)
    assert all(len(line) <= 31 for line in wrapped.split("\n"))
    assert wrapped.replace("\n", "").replace(" ", "") == "dpo__train-chosen__infer-gold-chosenvsdpo__train-none__infer-none"
