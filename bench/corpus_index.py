"""The benchmark corpus: which scripts exist, where their data lives, and their error variants.

``bench/corpus/`` holds data-analysis and plotting scripts written the way a
model writes them in a code interpreter. Two tracks:

* ``da_*.py`` answer DABench dev questions. They read the CSV tables at run
  time from ``$EAGER_RT_DABENCH/tables`` (default ``../shared/dabench``, i.e.
  the shared folder next to the repository). The data is CC BY-NC 4.0, so it is
  never copied into the repository; where the folder is absent the track is
  skipped with a message saying so.
* every other script makes its own data (fixed seeds), sometimes writing and
  re-reading files in its working directory.

Error variants are not stored as files: each :class:`ErrorVariant` names a
script, one literal snippet that occurs exactly once in it, the snippet that
replaces it, and the exception the changed program must raise there. The
mistakes are the ones models make: a wrong column name (KeyError), a renamed
variable (NameError), ``str + int`` (TypeError), a division by an empty count
(ZeroDivisionError), a wrong unpacking (ValueError), a method that does not
exist (AttributeError), an index one past the end (IndexError).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CORPUS_DIR",
    "DABENCH_ENV",
    "ERROR_VARIANTS",
    "ErrorVariant",
    "dabench_dir",
    "dabench_missing_reason",
    "is_dabench",
    "script_names",
    "script_text",
    "session_env",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
DABENCH_ENV = "EAGER_RT_DABENCH"
_DABENCH_DEFAULT = REPO_ROOT.parent / "shared" / "dabench"


def script_names() -> list[str]:
    """Every corpus script, by file name, in a stable order."""
    return sorted(p.name for p in CORPUS_DIR.glob("*.py") if not p.name.startswith("_"))


def script_text(name: str) -> str:
    return (CORPUS_DIR / name).read_text(encoding="utf-8")


def is_dabench(name: str) -> bool:
    return name.startswith("da_")


def dabench_dir() -> Path:
    """Absolute DABench folder: ``$EAGER_RT_DABENCH`` if set, else the shared folder."""
    configured = os.environ.get(DABENCH_ENV)
    return Path(configured).resolve() if configured else _DABENCH_DEFAULT


def dabench_missing_reason() -> str | None:
    """Why the DABench track cannot run here, or None when its tables are present."""
    tables = dabench_dir() / "tables"
    if tables.is_dir():
        return None
    return (
        f"DABench tables not found at {tables}: the DABench track is skipped. "
        f"Set {DABENCH_ENV} to a folder holding InfiAgent-DABench's `tables/` "
        "(CC BY-NC 4.0, not redistributed with eager_rt)."
    )


def session_env() -> dict[str, str]:
    """Variables every corpus run gets, so scripts work from any working directory."""
    return {DABENCH_ENV: str(dabench_dir()), "MPLBACKEND": "Agg"}


@dataclass(frozen=True, slots=True)
class ErrorVariant:
    """A corpus script with one realistic runtime mistake injected."""

    script: str
    old: str  #: occurs exactly once in the script
    new: str  #: replaces it; the changed statement raises ``ename``
    ename: str

    @property
    def name(self) -> str:
        return f"{self.script[:-3]}__{self.ename}"

    def text(self) -> str:
        source = script_text(self.script)
        count = source.count(self.old)
        if count != 1:
            raise ValueError(f"{self.script}: the snippet to replace occurs {count} times")
        return source.replace(self.old, self.new)

    def error_line(self) -> int:
        """1-based line of the changed statement in the variant."""
        source = script_text(self.script)
        return source[: source.index(self.old)].count("\n") + 1


ERROR_VARIANTS: tuple[ErrorVariant, ...] = (
    ErrorVariant(
        "da_titanic_fare.py",
        'std_fare = df["Fare"].std()',
        'std_fare = df["fare"].std()',
        "KeyError",
    ),
    ErrorVariant(
        "da_insurance.py",
        "outliers = data[z.abs() > 3]",
        "outliers = data[z_score.abs() > 3]",
        "NameError",
    ),
    ErrorVariant(
        "da_microsoft.py",
        "print(f\"Mean daily return: {msft['Daily Return'].mean():.4f}%\")",
        "print(f\"Mean daily return: {msft['Daily_Return'].mean():.4f}%\")",
        "KeyError",
    ),
    ErrorVariant(
        "da_autompg.py",
        'print(f"Acceleration outliers: {len(outliers)}")',
        'print("Acceleration outliers: " + len(outliers))',
        "TypeError",
    ),
    ErrorVariant(
        "da_tree.py",
        "if len(subset):\n    print(f\"Median HT_M there: {subset['HT_M'].median():.3f}\")",
        "print(f\"Mean HT_M there: {sum(subset['HT_M']) / len(subset):.3f}\")",
        "ZeroDivisionError",
    ),
    ErrorVariant(
        "da_credit.py",
        'print(credit.groupby(col)["Balance"].mean().round(2))',
        'print(credit.groupby(col)["balance"].mean().round(2))',
        "KeyError",
    ),
    ErrorVariant(
        "sales_dashboard.py",
        'by_region = sales.groupby("region")["revenue"].sum()',
        'by_region = sales.groupby("Region")["revenue"].sum()',
        "KeyError",
    ),
    ErrorVariant(
        "sensor_anomalies.py",
        "longest_run_above(wide[sensor], 24.0)",
        "longest_run_above(wide[sensor])",
        "TypeError",
    ),
    ErrorVariant(
        "kmeans_customers.py",
        "labels, cent, _ = kmeans(data, 4)",
        "labels, cent = kmeans(data, 4)",
        "ValueError",
    ),
    ErrorVariant(
        "seasonal_forecast.py",
        'print(f"Seasonal naive MAPE: {mape(test, naive):.2f}%")',
        'print(f"Seasonal naive MAPE: {mape(test, naive_forecast):.2f}%")',
        "NameError",
    ),
    ErrorVariant(
        "employee_salaries.py",
        "adjusted['gender_M']",
        "adjusted['gender_F']",
        "KeyError",
    ),
    ErrorVariant(
        "ma_crossover_backtest.py",
        'yearly = equity.resample("YE").last()',
        'yearly = equity.resample("YE").final()',
        "AttributeError",
    ),
    ErrorVariant(
        "portfolio_montecarlo.py",
        "np.round(percentiles[:, 125], 4)",
        "np.round(percentiles[:, n_days], 4)",
        "IndexError",
    ),
)
