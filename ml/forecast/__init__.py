"""Revenue forecasting: candidates (seasonal naive, damped ETS, Theta, ARIMA, their
combination, Prophet) compared by a rolling-origin backtest on the series itself; the best by
sMAPE and MASE forecasts with intervals calibrated on its backtest errors.

Input: a DataFrame with ``ds`` (date) and ``y`` (numeric), daily or monthly. Output frame:
``ds, yhat, yhat_lower, yhat_upper, model``. ``horizon`` counts periods of the series.
"""

from ml.forecast.candidates import CANDIDATES, COMBINATION, seasonal_naive
from ml.forecast.evaluate import backtest, summarize
from ml.forecast.metrics import mase, smape
from ml.forecast.series import DAILY, MONTHLY, ForecastInputError
from ml.forecast.train import (
    BASELINE,
    DEFAULT_CANDIDATES,
    ForecastResult,
    fit_forecast,
    holdout_predictions,
)

__all__ = [
    "BASELINE",
    "CANDIDATES",
    "COMBINATION",
    "DAILY",
    "DEFAULT_CANDIDATES",
    "MONTHLY",
    "ForecastInputError",
    "ForecastResult",
    "backtest",
    "fit_forecast",
    "holdout_predictions",
    "mase",
    "seasonal_naive",
    "smape",
    "summarize",
]
