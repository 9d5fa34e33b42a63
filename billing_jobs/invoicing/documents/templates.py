"""Versioned template registry with per-brand overrides (files under `templates/`).

Layout: `templates/<document>/v<N>.typ` are the shared templates; `templates/brands/<brand>/`
holds `brand.yaml` (colours, footer, logo file, optional pinned version) and may override a
template with its own `<document>/v<N>.typ`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

TEMPLATE_ROOT = Path(__file__).resolve().parent / "templates"
FONT_DIR = Path(__file__).resolve().parent / "fonts"
DEFAULT_BRAND = "default"
_VERSION_RE = re.compile(r"^v(\d+)\.typ$")
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class TemplateError(LookupError):
    """A template, version or brand does not exist or is misconfigured."""


@dataclass(frozen=True, slots=True)
class Brand:
    name: str
    display_name: str
    primary_colour: str
    accent_colour: str
    footer: str
    logo_svg: str | None
    template_version: int | None
    footers: tuple[tuple[str, str], ...] = ()  # (language, footer) beside the default

    def footer_for(self, lang: str) -> str:
        """The footer in `lang` when the brand has one, else its default footer."""
        return dict(self.footers).get(lang, self.footer)


@dataclass(frozen=True, slots=True)
class ResolvedTemplate:
    document: str
    version: int
    path: Path
    brand: Brand

    @property
    def source(self) -> str:
        return _read(self.path)


@lru_cache(maxsize=64)
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _versions(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        return {}
    found = {}
    for p in folder.iterdir():
        m = _VERSION_RE.match(p.name)
        if m:
            found[int(m.group(1))] = p
    return found


def available_versions(document: str = "invoice", brand: str | None = None) -> list[int]:
    """All versions usable for `document` (shared ones plus the brand's own)."""
    versions = set(_versions(TEMPLATE_ROOT / document))
    if brand:
        versions |= set(_versions(TEMPLATE_ROOT / "brands" / brand / document))
    return sorted(versions)


@lru_cache(maxsize=32)
def load_brand(name: str | None = None) -> Brand:
    """Load `templates/brands/<name>/brand.yaml`; unknown names raise TemplateError."""
    name = name or DEFAULT_BRAND
    if not _NAME.match(name):
        raise TemplateError(f"brand name {name!r} must be lower-case letters, digits, - or _")
    folder = TEMPLATE_ROOT / "brands" / name
    cfg_path = folder / "brand.yaml"
    if not cfg_path.is_file():
        raise TemplateError(f"unknown brand {name!r}: no {cfg_path}")
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    base = load_brand(DEFAULT_BRAND) if name != DEFAULT_BRAND else None

    def pick(key: str, fallback: str | None) -> str | None:
        return cfg.get(key, fallback)

    primary = pick("primary_colour", base.primary_colour if base else "#1f3a5f")
    accent = pick("accent_colour", base.accent_colour if base else "#e8eef5")
    for key, colour in (("primary_colour", primary), ("accent_colour", accent)):
        if not isinstance(colour, str) or not _HEX.match(colour):
            raise TemplateError(f"brand {name!r}: {key} must be #rrggbb, got {colour!r}")
    logo_svg = base.logo_svg if base else None
    if cfg.get("logo"):
        logo_path = (folder / cfg["logo"]).resolve()
        if folder.resolve() not in logo_path.parents or not logo_path.is_file():
            raise TemplateError(f"brand {name!r}: logo {cfg['logo']!r} not found in {folder}")
        logo_svg = logo_path.read_text(encoding="utf-8")
    footer = pick("footer", base.footer if base else "")
    footers = dict(base.footers) if base and "footer" not in cfg else {}
    if isinstance(footer, dict):
        # `footer: {en: ..., hi: ..., mr: ...}`: one per document language, English default.
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in footer.items()):
            raise TemplateError(f"brand {name!r}: footer must map languages to text")
        footers = dict(footer)
        footer = footers.get("en") or next(iter(footers.values()), "")
    version = cfg.get("template_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise TemplateError(f"brand {name!r}: template_version must be an integer")
    return Brand(
        name=name,
        display_name=str(pick("display_name", base.display_name if base else name)),
        primary_colour=primary,
        accent_colour=accent,
        footer=str(footer),
        logo_svg=logo_svg,
        template_version=version,
        footers=tuple(sorted(footers.items())),
    )


def resolve_template(
    document: str = "invoice", *, brand: str | None = None, version: int | None = None
) -> ResolvedTemplate:
    """Pick the template file: explicit version, else the brand's pinned one, else the latest.
    A brand's own file for that version wins over the shared one."""
    b = load_brand(brand)
    shared = _versions(TEMPLATE_ROOT / document)
    own = _versions(TEMPLATE_ROOT / "brands" / b.name / document)
    candidates = {**shared, **own}
    if not candidates:
        raise TemplateError(f"no templates for document {document!r}")
    wanted = version if version is not None else b.template_version
    if wanted is None:
        wanted = max(candidates)
    if wanted not in candidates:
        raise TemplateError(
            f"template {document!r} version {wanted} does not exist for brand {b.name!r}; "
            f"available: {sorted(candidates)}"
        )
    return ResolvedTemplate(document, wanted, candidates[wanted], b)
