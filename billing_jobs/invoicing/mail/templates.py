"""Message templates (subject, text and HTML bodies per language) kept as YAML files here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
DEFAULT_LANG = "en"
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class MailTemplateError(LookupError):
    """No such message template, or the context lacks a value the template needs."""


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    subject: str
    text: str
    html: str
    lang: str


_TEXT_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
# HTML bodies escape context values: customer names come from sign-up forms.
_HTML_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=True)


@lru_cache(maxsize=32)
def _load(key: str) -> dict[str, dict[str, str]]:
    if not _KEY.match(key):
        raise MailTemplateError(f"template key {key!r} must be lower_snake_case")
    path = TEMPLATE_DIR / f"{key}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in TEMPLATE_DIR.glob("*.yaml"))
        raise MailTemplateError(f"no mail template {key!r}; known: {', '.join(known)}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for lang, parts in data.items():
        missing = {"subject", "text", "html"} - set(parts)
        if missing:
            raise MailTemplateError(f"mail template {key}/{lang} lacks {sorted(missing)}")
    return data


@lru_cache(maxsize=256)
def _compiled(source: str, html: bool) -> jinja2.Template:
    # Compiling a Jinja template costs ~1 ms; an invoice run queues one mail per invoice.
    return (_HTML_ENV if html else _TEXT_ENV).from_string(source)


def template_keys() -> list[str]:
    return sorted(p.stem for p in TEMPLATE_DIR.glob("*.yaml"))


def render_message(key: str, context: dict[str, Any], lang: str = DEFAULT_LANG) -> RenderedMessage:
    """Render the template in `lang`, falling back to English when it has no such language."""
    data = _load(key)
    use = lang if lang in data else DEFAULT_LANG
    parts = data[use]
    try:
        subject = _compiled(parts["subject"], False).render(context)
        text = _compiled(parts["text"], False).render(context)
        html = _compiled(parts["html"], True).render(context)
    except jinja2.UndefinedError as exc:
        raise MailTemplateError(f"mail template {key}/{use}: {exc.message}") from exc
    # A subject is one header line: a newline smuggled in through the context must not
    # become a header injection.
    subject = " ".join(subject.split())
    return RenderedMessage(subject=subject, text=text, html=html, lang=use)
