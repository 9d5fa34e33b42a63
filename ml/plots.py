"""Small PNG plots for model reports (forecast against actuals, ROC and PR curves), as bytes
or as a markdown image with the PNG inline, so any UI that renders markdown shows them."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

_DPI = 72  # small images keep run metadata light
_SIZE = (6.0, 3.2)


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in tests
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=_SIZE, dpi=_DPI)


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def forecast_png(
    history: pd.DataFrame,
    forecast: pd.DataFrame,
    title: str,
    holdout: pd.DataFrame | None = None,
    tail: int = 120,
) -> bytes:
    """Actuals (``ds, y``; the last ``tail`` points), the forecast with its interval and,
    when given, ``holdout (ds, yhat)``: predictions of actuals the model did not see."""
    plt, fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    recent = history.tail(tail)
    ax.plot(pd.to_datetime(recent["ds"]), recent["y"], color="black", lw=1, label="actual")
    ds = pd.to_datetime(forecast["ds"])
    ax.plot(ds, forecast["yhat"], color="tab:blue", lw=1.5, label="forecast")
    ax.fill_between(ds, forecast["yhat_lower"], forecast["yhat_upper"], color="tab:blue", alpha=0.2)
    if holdout is not None and not holdout.empty:
        ax.plot(
            pd.to_datetime(holdout["ds"]),
            holdout["yhat"],
            color="tab:orange",
            lw=1.2,
            ls="--",
            label="fit without these actuals",
        )
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.tick_params(labelsize=7)
    return _png(plt, fig)


def roc_pr_png(labels: np.ndarray, scores: Mapping[str, np.ndarray], title: str) -> bytes:
    """ROC and precision-recall curves of several scorers on the same holdout labels."""
    labels = np.asarray(labels, dtype=int)
    plt, fig = _figure()
    roc_ax, pr_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(labels, s)
        precision, recall, _ = precision_recall_curve(labels, s)
        roc_ax.plot(fpr, tpr, lw=1.2, label=name)
        pr_ax.plot(recall, precision, lw=1.2, label=name)
    roc_ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    pr_ax.axhline(labels.mean(), color="grey", lw=0.8, ls="--")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate")
    pr_ax.set(xlabel="recall", ylabel="precision")
    roc_ax.set_title(f"{title}: ROC", fontsize=9)
    pr_ax.set_title(f"{title}: precision-recall", fontsize=9)
    roc_ax.legend(fontsize=6, loc="lower right")
    for ax in (roc_ax, pr_ax):
        ax.tick_params(labelsize=7)
        ax.xaxis.label.set_size(7)
        ax.yaxis.label.set_size(7)
    return _png(plt, fig)


def png_markdown(png: bytes, alt: str) -> str:
    """A markdown image with the PNG inline as a data URI."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
