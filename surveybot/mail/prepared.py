"""A wave's e-mail rendered once per (kind, language, wave) and filled in per contact: the fast path.

Jinja2 costs more per message than sending it. The templates only print a contact's own values (name, city,
personal links, closing date and time in their zone, time left) and test them for emptiness, so the message
is rendered once with a marker in place of each such value, split at the markers, and every contact's message
is the literal parts joined with that contact's values — HTML-escaped where the template escaped the marker
(the marker holds an ``&``, so the rendered text says which). The result is the same text, byte for byte, as a
full render of the same context (tests/test_send_fast_path.py compares them).

When that cannot be promised, the message is rendered in full instead, never filled wrongly:
- a template does more with a contact's value than print it or test it (a filter other than escaping, a
  comparison, a call, an index), checked on the templates' syntax trees, including those they include;
- two renders with different markers do not split the same way (a transformation the check missed);
- a value holds a line break or a marker character, or a value that goes into the subject has spaces the
  subject line would collapse.
Which branch a template takes depends only on which values are empty, so that is part of the cache key.
"""

from __future__ import annotations

import re
from typing import Any, cast

from jinja2 import Environment, nodes
from jinja2.meta import find_referenced_templates
from markupsafe import escape

from surveybot.mail.render import LANGUAGES, Rendered, Renderer

# The context values that differ from one contact to the next; everything else is the same for a whole wave.
PER_CONTACT = (
    "name",
    "city",
    "country",
    "email",
    "survey_link",
    "survey_links",
    "closes_on",
    "closes_time",
    "time_left",
    "unsubscribe_url",
)
_PER_CONTACT = frozenset(PER_CONTACT)
MAX_PREPARED = 512  # (kind, language, wave, empty values) combinations kept
# Two marker shapes (private-use characters, mixed case, different lengths): a template that changed a value
# (upper, title, length, slicing …) changes the two renders differently and is caught.
_MARKERS = (("\ue000", "&aA\ue001"), ("\ue002", "&bBb\ue003"))
_SPLIT = tuple(re.compile(f"{o}(\\d+)(&amp;|&){re.escape(c[1:])}") for o, c in _MARKERS)
_MARKER_CHARS = re.compile("[\ue000-\ue003]")
_UNFILLABLE = re.compile("[\n\r\ue000-\ue003]")  # a value holding these is rendered in full
_HTML_SPECIAL = re.compile("[&<>\"']")
_SAFE_FILTERS = {"e", "escape"}
_SAFE_TESTS = {"defined", "undefined", "none", "string"}

Part = str | tuple[int, bool]  # literal text, or (value index, HTML-escaped)
Slot = tuple[str, str, str]  # (language, variable, key inside a dict variable or "")


class _Unsafe(Exception):
    """A template uses a contact's value in a way that filling in cannot reproduce."""


class Prepared:
    """One message shape: subject, text and HTML, each a format string with a field per value slot."""

    def __init__(self, subject: list[Part], text: list[Part], html: list[Part], languages: tuple[str, ...]) -> None:
        self.parts = (subject, text, html)
        self.languages = languages
        self.in_subject = sorted({part[0] for part in subject if isinstance(part, tuple)})
        self.escaped = sorted(
            {part[0] for parts in self.parts for part in parts if isinstance(part, tuple) and part[1]}
        )
        # field n is value n as it is, field count + n the same value HTML-escaped
        self.count = max((part[0] + 1 for parts in self.parts for part in parts if isinstance(part, tuple)), default=0)
        self.formats = tuple(_format(parts, self.count) for parts in self.parts)

    def fill(self, values: list[str]) -> Rendered | None:
        """The message for these values, or None when the subject line would have changed one of them."""
        for index in self.in_subject:
            if values[index] != " ".join(values[index].split()):
                return None
        fields = values[: self.count] + values[: self.count]
        for index in self.escaped:
            if _HTML_SPECIAL.search(values[index]):
                fields[self.count + index] = str(escape(values[index]))
        subject, text, html = (template.format(*fields) for template in self.formats)
        return Rendered(subject, text, html, self.languages)


def _format(parts: list[Part], count: int) -> str:
    return "".join(
        part.replace("{", "{{").replace("}", "}}") if isinstance(part, str) else f"{{{part[0] + count * part[1]}}}"
        for part in parts
    )


def _split(text: str, marker: int) -> list[Part]:
    pieces = _SPLIT[marker].split(text)
    parts: list[Part] = []
    for number, piece in enumerate(pieces):
        step = number % 3
        if step == 0:
            if _MARKER_CHARS.search(piece):  # a marker the template altered
                raise _Unsafe("altered marker")
            parts.append(piece)
        elif step == 1:
            parts.append((int(piece), pieces[number + 1] == "&amp;"))
    return parts


class PreparedRenderer:
    """Renders through prepared shapes when it can (see the module's docstring), in full otherwise."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self._shapes: dict[tuple[Any, ...], Prepared | None] = {}

    def render(self, kind: str, language: str, context: dict[str, dict[str, Any]]) -> Rendered:
        flat = _flatten(context)
        if flat is None:
            return self.renderer.render(kind, language, context)
        layout, values, shared = flat
        key = (kind, language, layout, shared, tuple(map(bool, values)))
        try:
            shape = self._shapes.get(key, False)
        except TypeError:  # a shared value that cannot be a key (a list): rendered in full
            return self.renderer.render(kind, language, context)
        if shape is False:
            if len(self._shapes) >= MAX_PREPARED:
                self._shapes.clear()
            shape = self._shapes[key] = self._prepare(kind, language, context, _slots(context), values)
        rendered = shape.fill(values) if isinstance(shape, Prepared) else None
        return rendered if rendered is not None else self.renderer.render(kind, language, context)

    def _prepare(
        self, kind: str, language: str, context: dict[str, dict[str, Any]], slots: list[Slot], values: list[str]
    ) -> Prepared | None:
        try:
            self._check_templates(kind, language)
            renders = [
                self.renderer.render(kind, language, _marked(context, slots, values, marker)) for marker in (0, 1)
            ]
            shapes = [
                Prepared(_split(r.subject, m), _split(r.text, m), _split(r.html, m), r.languages)
                for m, r in enumerate(renders)
            ]
        except (_Unsafe, ValueError, TypeError):
            return None
        first, second = shapes
        if first.parts != second.parts:
            return None
        return first

    def _check_templates(self, kind: str, language: str) -> None:
        """Raise _Unsafe unless every template the message uses only prints or tests a contact's values."""
        langs = (language,) if language in LANGUAGES else ("es", "en")
        names = [f"{kind}.{lang}.{ext}.j2" for lang in langs for ext in ("txt", "html")]
        if language not in LANGUAGES:
            names += ["bilingual.txt.j2", "bilingual.html.j2"]
        env = self.renderer.html  # both environments share one loader
        tainted = set(PER_CONTACT)
        seen: list[str] = []
        while names:
            name = names.pop()
            if name in seen:
                continue
            seen.append(name)
            tree = _parse(env, name)
            names += [n for n in find_referenced_templates(tree) if n is not None]
        # names bound from a contact's value (``with href=survey_link``) are a contact's values too
        trees = [_parse(env, name) for name in seen]
        while True:
            before = len(tainted)
            for tree in trees:
                for node in tree.find_all((nodes.With, nodes.Assign)):
                    _bind(node, tainted)
            if len(tainted) == before:
                break
        for tree in trees:
            _check(tree, [], tainted)


def _parse(env: Environment, name: str) -> nodes.Template:
    assert env.loader is not None
    source = env.loader.get_source(env, name)[0]
    return env.parse(source)


def _bind(node: nodes.Node, tainted: set[str]) -> None:
    pairs: list[tuple[nodes.Node, nodes.Node]]
    if isinstance(node, nodes.With):
        pairs = list(zip(node.targets, node.values, strict=True))
    elif isinstance(node, nodes.Assign):
        pairs = [(node.target, node.node)]
    else:
        return
    for target, value in pairs:
        if isinstance(target, nodes.Name) and any(n.name in tainted for n in value.find_all(nodes.Name)):
            tainted.add(target.name)


def _check(node: nodes.Node, ancestors: list[nodes.Node], tainted: set[str]) -> None:
    if isinstance(node, nodes.Name) and node.ctx == "load" and node.name in tainted:
        _check_use(node, ancestors)
    ancestors.append(node)
    for child in node.iter_child_nodes():
        _check(child, ancestors, tainted)
    ancestors.pop()


def _check_use(node: nodes.Name, ancestors: list[nodes.Node]) -> None:
    """Follow a contact's value up the expression: passed on unchanged (``or``, ``~``, escaping) it must end
    printed, tested for truth or bound to a name; anything else (a comparison, a call, a filter) is unsafe."""
    value: nodes.Node = node
    for parent in reversed(ancestors):
        if isinstance(parent, (nodes.Getattr, nodes.Getitem)) and node.name == "survey_links" and value is node:
            value = parent  # one language's link out of the dict of both: a value of its own
            continue
        if isinstance(parent, (nodes.Or, nodes.And, nodes.Concat)):
            value = parent
            continue
        if isinstance(parent, nodes.CondExpr) and value is not parent.test:
            value = parent
            continue
        if isinstance(parent, nodes.Filter) and parent.name in _SAFE_FILTERS and value is parent.node:
            value = parent
            continue
        if isinstance(parent, (nodes.Output, nodes.If, nodes.CondExpr, nodes.Not, nodes.With, nodes.Assign)):
            return
        if isinstance(parent, nodes.Test) and parent.name in _SAFE_TESTS:
            return
        raise _Unsafe(f"{node.name} used by {type(parent).__name__}")
    raise _Unsafe(f"{node.name} used outside any statement")


def _flatten(context: dict[str, dict[str, Any]]) -> tuple[tuple[Any, ...], list[str], tuple[Any, ...]] | None:
    """(the context's layout, the contact's values in it, the values shared by the wave), or None when this
    context can only be rendered in full."""
    layout: list[Any] = []
    values: list[str] = []
    shared: list[Any] = []
    for lang, variables in context.items():
        layout += (lang, tuple(variables))
        for key, value in variables.items():
            if key not in _PER_CONTACT:
                shared.append(value)
            elif value.__class__ is str:
                values.append(value)
            elif isinstance(value, dict):
                layout.append(tuple(value))
                values += map(str, value.values())
            else:
                return None
    if _UNFILLABLE.search("".join(values)):
        return None
    return tuple(layout), values, tuple(shared)


def _slots(context: dict[str, dict[str, Any]]) -> list[Slot]:
    """Where each of the contact's values sits, in the order :func:`_flatten` lists them."""
    slots: list[Slot] = []
    for lang, variables in context.items():
        for key, value in variables.items():
            if key in _PER_CONTACT:
                slots += [(lang, key, sub) for sub in value] if isinstance(value, dict) else [(lang, key, "")]
    return slots


def _marked(
    context: dict[str, dict[str, Any]], slots: list[Slot], values: list[str], marker: int
) -> dict[str, dict[str, Any]]:
    """The context with each non-empty contact value replaced by its marker (empty ones stay empty, so the
    templates take the same branches)."""
    opening, closing = _MARKERS[marker]
    marked = {lang: dict(variables) for lang, variables in context.items()}
    for index, ((lang, key, sub), value) in enumerate(zip(slots, values, strict=True)):
        text = f"{opening}{index}{closing}" if value else value
        if sub:
            marked[lang][key] = {**cast(dict[str, str], marked[lang][key]), sub: text}
        else:
            marked[lang][key] = text
    return marked
