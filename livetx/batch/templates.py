"""Templates: named, reusable sets of rendition parameters, kept in output storage.

A template's `Params` are the parameters of one rendition table of a profile
(`[profiles.P.renditions.R]`), in the same names and units (`vcodec`, `s`, `crf`, `vb` in
bit/s, `st` in ms, ...): the rendition parameters of livetx/media/params.py and the title
parameters a rendition may set for itself (titles.PER_RENDITION). Each value is checked by
that parameter's own spec, and the set as a whole as a profile's rendition is, so a template
refuses what a profile would, with the same error naming the parameter (`Params.crf`).

A template may name a `Base`, another template whose parameters it extends: `resolve` walks
the chain (at most MAX_DEPTH templates), base first, and each template's values override its
base's; a `null` value takes the base's value away (`"vb": null` over a bitrate base, then
`"crf": 20`). A base that does not exist, or a chain that comes back to a template already in
it (a template naming itself, A -> B -> A), is a 400 naming `Base`. The flattened result is
checked again whenever it is resolved: deleting or replacing a base is allowed, and a
template that no longer resolves says so when it is used, never later.

Records are JSON under `layout.template_key(name)`, a hidden key no job may claim.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from livetx.contract import Field, Invalid, Shape, Spec, Text, params_schema, spec_of
from livetx.errors import LivetxError, ParameterError, TemplateNotFound
from livetx.layout import TEMPLATES_PREFIX, record_name, template_key
from livetx.media.params import RenditionParams, TitleParams, parse_rendition_params, parse_title_params, resolve_container
from livetx.storage.base import Storage
from livetx.titles import PER_RENDITION, check_encryption

NAME_PATTERN = r"[A-Za-z0-9_-]{1,64}"
NAME_TEXT = "1 to 64 letters, digits, '_' or '-'"
MAX_DEPTH = 8  # templates in one chain, the template itself included
MAX_LISTED = 1000
RECORD_VERSION = 1

# the parameters a template may set, each checked by its own declaration
TEMPLATE_PARAMS: dict[str, Spec] = {
    **{f.name: spec_of(RenditionParams, f.name) for f in fields(RenditionParams)},
    **{name: spec_of(TitleParams, name) for name in PER_RENDITION},
}


def _name(text: str) -> str:
    if not re.fullmatch(NAME_PATTERN, text):
        raise Invalid(NAME_TEXT)
    return text


NAME = Text(NAME_TEXT, max_length=64, convert=_name)  # a template's or a pipeline's name, wherever it is given


def check_name(name: str, field_name: str = "name") -> str:
    """A template's or a pipeline's name (from a URL path: `name`), or a ParameterError naming the field."""
    checked: str = NAME.check(name, field_name)
    return checked


@dataclass(frozen=True)
class RenditionTable(Spec):
    """The parameters of one rendition table, each checked alone by its own spec (`null`: unset
    the base's value). Values are kept as given: the profile reads them again when it is built."""

    def check(self, raw: Any, name: str) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            raise ParameterError(name, "an object of rendition parameters")
        out: dict[str, Any] = {}
        for key, value in raw.items():
            spec = TEMPLATE_PARAMS.get(key)
            if spec is None:
                raise ParameterError(f"{name}.{key}", f"a rendition parameter: one of {', '.join(sorted(TEMPLATE_PARAMS))}")
            out[key] = None if value is None else _checked(spec, value, f"{name}.{key}")
        return out

    def parse(self, raw: Any) -> dict[str, Any]:
        return self.check(raw, "Params")

    @property
    def allowed(self) -> str:
        return "an object of rendition parameters"

    def schema(self) -> dict[str, Any]:
        each = {**params_schema(RenditionParams), **{k: v for k, v in params_schema(TitleParams).items() if k in PER_RENDITION}}
        nullable = {key: {"anyOf": [schema, {"type": "null"}], **_described(schema)} for key, schema in each.items()}
        return {"type": "object", "additionalProperties": False, "properties": nullable}


def _described(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"description": schema["description"]} if "description" in schema else {}


def _checked(spec: Spec, value: Any, name: str) -> Any:
    spec.check(value, name)
    return value


TEMPLATE_REQUEST = Shape(
    {
        "Base": Field(NAME, doc="another template whose parameters this one extends and overrides"),
        "Params": Field(
            RenditionTable(),
            required=True,
            doc="the parameters of one rendition, as in a profile's rendition table (vcodec, s, crf, vb in bit/s, st in ms, ...);"
            " null takes the base's value away",
        ),
    },
    doc="A template: PUT /api/v1/templates/{name}",
)


@dataclass(frozen=True)
class Template:
    name: str
    params: Mapping[str, Any]  # as given: a value of None unsets the base's
    base: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, "name": self.name, "base": self.base, "params": dict(self.params)}

    @classmethod
    def from_record(cls, record: Any) -> Template:
        if not isinstance(record, dict) or record.get("version") != RECORD_VERSION or not isinstance(record.get("params"), dict):
            raise ValueError("not a template record")
        return cls(record["name"], record["params"], record.get("base"))

    def to_json(self) -> dict[str, Any]:
        return {"Name": self.name, "Base": self.base, "Params": dict(self.params)}


def parse_template(name: str, body: Any) -> Template:
    """A PUT body for template `name`, each field checked (the chain is checked by the store)."""
    check_name(name)
    request = TEMPLATE_REQUEST.parse(body)
    return Template(name, request["Params"], request.get("Base"))


def check_rendition(params: Mapping[str, Any], field_prefix: str = "Params.") -> None:
    """A flattened set of parameters as a profile's rendition table is checked (crf with vb,
    av1 in MPEG-TS, sample-aes in MPEG-TS, ...), the error naming `<field_prefix><parameter>`."""
    try:
        own = {k: v for k, v in params.items() if k in PER_RENDITION}
        rendition = parse_rendition_params({k: v for k, v in params.items() if k not in PER_RENDITION})
        check_encryption(parse_title_params(own), resolve_container(rendition), rendition.vcodec)
    except ParameterError as exc:
        raise ParameterError(field_prefix + exc.name, str(exc.details.get("allowed", exc.message))) from None


def flatten(chain: Iterable[Template]) -> dict[str, Any]:
    """The parameters of a chain given base first: each overrides the one before; None unsets."""
    out: dict[str, Any] = {}
    for template in chain:
        for key, value in template.params.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = value
    return out


def over_template(template: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """A request's own parameters over its template's (IMM `Targets[i].Template`, a job's
    `Template`): its own override; a CRF over a template's bitrate, or a bitrate over a
    template's CRF, is quality mode capped at the bitrate, as when one request gives both."""
    params = {**template, **own}
    if "crf" in params and "vb" in params:
        params["maxrate"] = params.pop("vb")
    return params


def from_template(template: Mapping[str, Any], own: Mapping[str, Any]) -> set[str]:
    """The parameters only the template set: a refusal of one of them names `Template`."""
    return set(template) - set(own)


Lookup = Callable[[str, str], Mapping[str, Any]]  # (template name, request field) -> its resolved parameters


def none_stored(name: str, field_name: str) -> Mapping[str, Any]:
    """The lookup of a parser given no templates: every name is unknown."""
    raise ParameterError(field_name, f"the name of a stored template ({name!r} does not exist)")


class TemplateStore:
    """Templates in output storage. Nothing is cached: every origin reads the same records."""

    def __init__(self, storage: Storage, max_depth: int = MAX_DEPTH) -> None:
        self.storage = storage
        self.max_depth = max_depth

    async def get(self, name: str) -> Template:
        check_name(name)
        key = template_key(name)
        if await self.storage.stat(key) is None:
            raise TemplateNotFound(f"no template named {name!r}", template=name)
        try:
            return Template.from_record(json.loads(await self.storage.read(key)))
        except FileNotFoundError:  # deleted between the stat and the read
            raise TemplateNotFound(f"no template named {name!r}", template=name) from None
        except (ValueError, KeyError, TypeError):
            raise LivetxError(f"template {name!r} has an unreadable record") from None

    async def _find(self, name: str) -> Template | None:
        try:
            return await self.get(name)
        except TemplateNotFound:
            return None

    async def chain(self, template: Template) -> list[Template]:
        """`template` and its bases, base first; ParameterError naming `Base` for an unknown
        base, a cycle, or a chain longer than `max_depth`."""
        chain = [template]
        names = [template.name]
        while chain[-1].base is not None:
            base = chain[-1].base
            if base in names:
                loop = " -> ".join([*names, base])
                raise ParameterError("Base", f"a template whose bases do not come back to one already in the chain ({loop})")
            if len(chain) >= self.max_depth:
                raise ParameterError("Base", f"a chain of at most {self.max_depth} templates ({' -> '.join(names)} -> ...)")
            found = await self._find(base)
            if found is None:
                raise ParameterError("Base", f"the name of a stored template ({base!r}, the base of {chain[-1].name!r}, does not exist)")
            chain.append(found)
            names.append(base)
        return chain[::-1]

    async def flattened(self, template: Template) -> dict[str, Any]:
        """The template's parameters with its bases', checked as one rendition."""
        params = flatten(await self.chain(template))
        check_rendition(params)
        return params

    async def resolve(self, name: str) -> Mapping[str, Any]:
        """The flattened parameters of the stored template `name`, base first, checked."""
        return await self.flattened(await self.get(name))

    async def exists(self, name: str) -> bool:
        return await self.storage.stat(template_key(check_name(name))) is not None

    async def resolution(self, template: Template) -> dict[str, Any]:
        """`Resolved` (the flattened parameters, or null) and `Problem` (why not, or null)."""
        try:
            return {"Resolved": await self.flattened(template), "Problem": None}
        except ParameterError as exc:
            return {"Resolved": None, "Problem": exc.message}

    async def put(self, template: Template) -> Template:
        """Create or replace; refused (nothing written) unless the new chain resolves."""
        check_name(template.name)
        await self.flattened(template)
        await self.storage.write(template_key(template.name), json.dumps(template.to_record(), sort_keys=True).encode())
        return template

    async def delete(self, name: str) -> None:
        check_name(name)
        if await self.storage.stat(template_key(name)) is None:
            raise TemplateNotFound(f"no template named {name!r}", template=name)
        await self.storage.delete(template_key(name))

    async def list(self) -> list[Template]:
        """Every template, by name (at most MAX_LISTED)."""
        listed = [record_name(info.key, TEMPLATES_PREFIX) for info in await self.storage.list_records(TEMPLATES_PREFIX, MAX_LISTED)]
        names = [name for name in listed if name is not None and re.fullmatch(NAME_PATTERN, name)]
        found = await asyncio.gather(*(self._find(name) for name in names))  # read at once (a store bounds its own connections)
        return [template for template in found if template is not None]

    async def lookup(self, names: Iterable[Any]) -> Lookup:
        """A synchronous lookup over the templates `names` (a request's, read before it is
        parsed: pure parsers call it): each resolved now; one that can't be used raises, when
        the parser asks for it, a ParameterError naming the request's field."""
        found: dict[str, Mapping[str, Any] | str] = {}
        for name in dict.fromkeys(n for n in names if isinstance(n, str) and re.fullmatch(NAME_PATTERN, n)):
            try:
                found[name] = await self.resolve(name)
            except TemplateNotFound:
                found[name] = "does not exist"
            except ParameterError as exc:
                found[name] = f"does not resolve: {exc.message}"

        def lookup(name: str, field_name: str) -> Mapping[str, Any]:
            params = found.get(name, "does not exist")
            if isinstance(params, str):
                raise ParameterError(field_name, f"the name of a stored template that resolves (template {name!r} {params})")
            return params

        return lookup
