"""Rendering e-mail from the Jinja2 templates in ``templates/email/``: text and HTML, English and Spanish.

A template file is ``KIND.LANG.txt.j2`` (its first line is ``Subject: …``) beside ``KIND.LANG.html.j2``
(the body, HTML-escaped automatically). A contact with no language preference gets one bilingual message:
Spanish first, then English, through ``bilingual.txt.j2`` / ``bilingual.html.j2``. A file of the same name
in the ``SURVEYBOT_TEMPLATES`` folder overrides the built-in one. Undefined variables are errors
(``StrictUndefined``), so a typo fails the preview instead of a wave. Templates are compiled once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, Template, TemplateError
from markupsafe import Markup

from surveybot.errors import InvalidInput
from surveybot.resources import template_folder

BUILTIN = template_folder("email")  # in the installed package, or templates/email of a checkout
KINDS = ("invitation", "reminder", "final_reminder", "thank_you")
INTERVIEW_KINDS = (
    "interview_invite",
    "interview_nudge",
    "interview_confirmed",
    "interview_cancelled",
    "interview_soon",
)
LANGUAGES = ("en", "es")
HEADINGS = {"en": "English version", "es": "Versión en español"}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    languages: tuple[str, ...]


class Renderer:
    def __init__(self, override_dir: Path | None = None) -> None:
        folders = [str(p) for p in (override_dir, BUILTIN) if p is not None]
        loader = ChoiceLoader([FileSystemLoader(f) for f in folders])
        # auto_reload off: templates are read once per process, not checked on disk for every message
        self.text = Environment(
            loader=loader, undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, auto_reload=False
        )
        self.html = Environment(loader=loader, undefined=StrictUndefined, autoescape=True, auto_reload=False)

    def render(self, kind: str, language: str, context: dict[str, Any]) -> Rendered:
        """Render ``kind`` for a contact whose language is 'en', 'es' or '' (no preference: both).

        ``context`` maps each language to its variables. Raises InvalidInput naming the template on error.
        """
        if language in LANGUAGES:
            subject, text, html = self._one(kind, language, context[language], full_html=True)
            return Rendered(subject, text, html, (language,))
        parts = []
        for lang in ("es", "en"):
            subject, text, content = self._one(kind, lang, context[lang], full_html=False)
            parts.append(
                {
                    "language": lang,
                    "subject": subject,
                    "body": text,
                    "content": Markup(content),
                    "heading": HEADINGS[lang],
                }
            )
        subject = " / ".join(p["subject"] for p in parts)
        common = {"parts": parts, "subject": subject, "html_lang": "es"}
        text = self._template(self.text, "bilingual.txt.j2").render(common)
        html = self._template(self.html, "bilingual.html.j2").render(common)
        return Rendered(subject, text, html, ("es", "en"))

    def _one(self, kind: str, language: str, variables: dict[str, Any], full_html: bool) -> tuple[str, str, str]:
        if kind not in KINDS + INTERVIEW_KINDS:
            raise InvalidInput(f"no e-mail kind {kind!r} (kinds: {', '.join(KINDS + INTERVIEW_KINDS)})", field="kind")
        text_name, html_name = f"{kind}.{language}.txt.j2", f"{kind}.{language}.html.j2"
        try:
            raw = self._template(self.text, text_name).render(variables)
        except TemplateError as exc:
            raise InvalidInput(f"template {text_name}: {exc}", field="template") from None
        first, _, body = raw.partition("\n")
        if not first.startswith("Subject:"):
            raise InvalidInput(f"template {text_name}: the first line must be 'Subject: …'", field="template")
        subject = " ".join(first[len("Subject:") :].split())
        html_vars = {**variables, "subject": subject, "html_lang": language}
        try:
            template = self._template(self.html, html_name)
            if full_html:
                html = template.render(html_vars)
            else:
                html = "".join(template.blocks["content"](template.new_context(html_vars)))
        except (TemplateError, KeyError) as exc:
            raise InvalidInput(f"template {html_name}: {exc}", field="template") from None
        return subject, body.lstrip("\n"), html

    @staticmethod
    def _template(env: Environment, name: str) -> Template:
        try:
            return env.get_template(name)
        except TemplateError as exc:
            raise InvalidInput(f"template {name}: {exc}", field="template") from None
