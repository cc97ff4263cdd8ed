"""The tool-calling corpus: programs a model writes in code mode, and the host tools they call.

``programs/*.py.txt`` are Python programs of the kind models write when their
tools are functions (Code Mode, programmatic tool calling): look up several
records, fetch and aggregate, search then summarise, loops over literal lists,
calls inside functions, a side effect at the end. They are stored as text
(top-level ``await``, names defined only by the tools) and replayed as token
streams by ``bench/test_bench_tools.py``.

The tools are simulated services: each answer is a pure function of the
arguments (sha256-derived), and each call waits a deterministic latency
between 0.2 and 2 s, also derived from the arguments, so every run of a
program makes the same calls with the same results in the same time, whatever
the schedule. :data:`TOOLS` declares them for eager_rt: most are async (an
HTTP client), ``fetch_page`` and ``query_db`` are sync (a blocking client);
the read-only ones say so, the three that act (``send_email``,
``create_ticket``, ``update_record``) do not, so they are never speculated.
:func:`calls_log` lists every call the tools received (name and arguments),
to count side effects per run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eager_rt.tools import Tool, tool

__all__ = [
    "LATENCY",
    "PROGRAMS_DIR",
    "SIDE_EFFECTS",
    "TOOLS",
    "TOOL_FUNCTIONS",
    "TOOL_NAMES",
    "LoggedCall",
    "calls_log",
    "latency",
    "program_names",
    "program_text",
]

PROGRAMS_DIR = Path(__file__).resolve().parent / "programs"

#: (low, high) seconds per tool; a call's latency is fixed by its arguments
LATENCY: dict[str, tuple[float, float]] = {
    "get_weather": (0.3, 0.8),
    "search_web": (0.6, 1.2),
    "fetch_page": (0.4, 1.0),
    "get_user": (0.2, 0.5),
    "get_orders": (0.3, 0.7),
    "get_product": (0.2, 0.4),
    "get_stock_price": (0.2, 0.6),
    "exchange_rate": (0.2, 0.4),
    "query_db": (0.5, 1.5),
    "summarize": (1.0, 2.0),
    "translate": (0.5, 1.0),
    "get_flight": (0.3, 0.9),
    "send_email": (0.3, 0.3),
    "create_ticket": (0.3, 0.3),
    "update_record": (0.3, 0.3),
}
SIDE_EFFECTS = frozenset({"send_email", "create_ticket", "update_record"})


@dataclass(slots=True)
class LoggedCall:
    """One call a tool received: its arguments and when it ran (``time.monotonic``)."""

    name: str
    arguments: dict[str, Any]
    started: float
    ended: float | None = None


_LOG: list[LoggedCall] = []


def calls_log() -> list[LoggedCall]:
    """Every call the tools received since the process started (append-only)."""
    return _LOG


def _digest(*parts: Any) -> int:
    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def latency(name: str, **arguments: Any) -> float:
    """The call's fixed latency (s)."""
    low, high = LATENCY[name]
    return round(low + (high - low) * (_digest(name, arguments) % 1000) / 999, 3)


async def _wait(name: str, **arguments: Any) -> None:
    entry = LoggedCall(name, arguments, time.monotonic())
    _LOG.append(entry)
    try:
        await asyncio.sleep(latency(name, **arguments))
    finally:
        entry.ended = time.monotonic()


def _block(name: str, **arguments: Any) -> None:
    entry = LoggedCall(name, arguments, time.monotonic())
    _LOG.append(entry)
    time.sleep(latency(name, **arguments))
    entry.ended = time.monotonic()


_CONDITIONS = ["sunny", "cloudy", "rain", "snow", "windy", "fog"]
_WORDS = [
    "market",
    "growth",
    "energy",
    "battery",
    "solar",
    "policy",
    "chip",
    "demand",
    "supply",
    "model",
    "data",
    "cloud",
    "security",
    "privacy",
    "rates",
    "inflation",
    "travel",
    "climate",
    "health",
    "retail",
]


async def get_weather(city: str, units: str = "metric") -> dict[str, Any]:
    """Current weather for a city: temperature, condition, humidity."""
    await _wait("get_weather", city=city, units=units)
    d = _digest("weather", city)
    temp_c = (d % 400) / 10 - 5
    temp = round(temp_c if units == "metric" else temp_c * 9 / 5 + 32, 1)
    return {
        "city": city,
        "temp": temp,
        "units": units,
        "condition": _CONDITIONS[d % len(_CONDITIONS)],
        "humidity": 30 + d % 60,
    }


async def search_web(query: str, limit: int = 3) -> list[dict[str, Any]]:
    """Search the web; each result has title, url and snippet."""
    await _wait("search_web", query=query, limit=limit)
    out = []
    for i in range(limit):
        d = _digest("search", query, i)
        slug = "-".join(_WORDS[(d >> (4 * k)) % len(_WORDS)] for k in range(3))
        out.append(
            {
                "title": f"{query.title()}: {slug.replace('-', ' ')}",
                "url": f"https://news.example.com/{d % 9973}/{slug}",
                "snippet": " ".join(_WORDS[(d >> k) % len(_WORDS)] for k in range(12)),
            }
        )
    return out


def fetch_page(url: str) -> str:
    """The text of a web page (a blocking HTTP client)."""
    _block("fetch_page", url=url)
    d = _digest("page", url)
    return " ".join(_WORDS[(d >> (k % 50)) % len(_WORDS)] for k in range(40 + d % 80))


async def get_user(user_id: int) -> dict[str, Any]:
    """A customer record."""
    await _wait("get_user", user_id=user_id)
    d = _digest("user", user_id)
    first = ["Ada", "Lin", "Omar", "Ines", "Kai", "Noor", "Sven", "Mia"][d % 8]
    return {
        "id": user_id,
        "name": f"{first} {chr(65 + d % 26)}.",
        "email": f"{first.lower()}{user_id}@example.com",
        "tier": ["free", "pro", "enterprise"][d % 3],
        "country": ["NO", "FR", "US", "JP", "BR"][d % 5],
    }


async def get_orders(user_id: int, status: str = "all") -> list[dict[str, Any]]:
    """A customer's orders (``status``: all, open, shipped, late)."""
    await _wait("get_orders", user_id=user_id, status=status)
    d = _digest("orders", user_id)
    orders = []
    for i in range(1 + d % 4):
        o = _digest("order", user_id, i)
        orders.append(
            {
                "order_id": 1000 * user_id + i,
                "sku": f"SKU-{100 + o % 12}",
                "amount": round(5 + (o % 50000) / 100, 2),
                "status": ["open", "shipped", "late"][o % 3],
            }
        )
    return orders if status == "all" else [o for o in orders if o["status"] == status]


async def get_product(sku: str) -> dict[str, Any]:
    """A product: name, price, stock. Unknown SKUs raise KeyError."""
    await _wait("get_product", sku=sku)
    if not sku.startswith("SKU-"):
        raise KeyError(f"unknown sku {sku}")
    d = _digest("product", sku)
    return {
        "sku": sku,
        "name": f"{_WORDS[d % len(_WORDS)].title()} {['Kit', 'Pro', 'Lite', 'Max'][d % 4]}",
        "price": round(10 + (d % 9000) / 100, 2),
        "stock": d % 40,
    }


async def get_stock_price(symbol: str) -> float:
    """Last traded price of a stock symbol."""
    await _wait("get_stock_price", symbol=symbol)
    return round(20 + (_digest("stock", symbol) % 50000) / 100, 2)


async def exchange_rate(base: str, quote: str) -> float:
    """How many ``quote`` one ``base`` buys."""
    await _wait("exchange_rate", base=base, quote=quote)
    if base == quote:
        return 1.0
    return round(0.2 + (_digest("fx", base, quote) % 2000) / 1000, 4)


def query_db(sql: str) -> list[dict[str, Any]]:
    """Run a read-only SQL query on the analytics warehouse (a blocking driver)."""
    _block("query_db", sql=sql)
    d = _digest("sql", sql)
    return [
        {"key": f"k{(d >> i) % 50}", "value": round(((d >> (2 * i)) % 100000) / 100, 2)}
        for i in range(2 + d % 5)
    ]


async def summarize(text: str, max_words: int = 50) -> str:
    """A sub-agent's summary of ``text``, at most ``max_words`` words."""
    await _wait("summarize", text=text, max_words=max_words)
    words = text.split()
    d = _digest("summary", text)
    picked = [words[(d >> i) % len(words)] for i in range(min(max_words, 12))] if words else []
    return "Summary: " + " ".join(picked)


async def translate(text: str, target: str) -> str:
    """Translate ``text`` into the language code ``target``."""
    await _wait("translate", text=text, target=target)
    return f"[{target}] " + " ".join(w[::-1] for w in text.split())


async def get_flight(code: str) -> dict[str, Any]:
    """Status of a flight by its code."""
    await _wait("get_flight", code=code)
    d = _digest("flight", code)
    return {
        "code": code,
        "status": ["on time", "delayed", "boarding", "landed"][d % 4],
        "delay_min": (d % 5) * 15 if d % 4 == 1 else 0,
        "gate": f"{chr(65 + d % 6)}{d % 30}",
    }


async def send_email(to: str, subject: str, body: str) -> str:
    """Send an email; returns the message id."""
    await _wait("send_email", to=to, subject=subject, body=body)
    return f"msg-{_digest('mail', to, subject, body) % 100000}"


def _ticket(title: str, priority: str) -> int:
    return 5000 + _digest("ticket", title, priority) % 1000


async def create_ticket(title: str, priority: str = "normal") -> int:
    """Open a support ticket; returns its number."""
    await _wait("create_ticket", title=title, priority=priority)
    return _ticket(title, priority)


async def update_record(table: str, key: str, fields: dict[str, Any]) -> bool:
    """Update one row of a table."""
    await _wait("update_record", table=table, key=key, fields=fields)
    return True


TOOL_FUNCTIONS: dict[str, Callable[..., Any]] = {
    f.__name__: f
    for f in (
        get_weather,
        search_web,
        fetch_page,
        get_user,
        get_orders,
        get_product,
        get_stock_price,
        exchange_rate,
        query_db,
        summarize,
        translate,
        get_flight,
        send_email,
        create_ticket,
        update_record,
    )
}
TOOL_NAMES = frozenset(TOOL_FUNCTIONS)
#: the tools as eager_rt declares them: read-only unless they act
TOOLS: list[Tool] = [
    tool(f, read_only=name not in SIDE_EFFECTS) for name, f in TOOL_FUNCTIONS.items()
]


def program_names() -> list[str]:
    """Every program, by name (file name without ``.py.txt``), in a stable order."""
    return sorted(p.name.removesuffix(".py.txt") for p in PROGRAMS_DIR.glob("*.py.txt"))


def program_text(name: str) -> str:
    return (PROGRAMS_DIR / f"{name}.py.txt").read_text()
