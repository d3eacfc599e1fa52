"""Request contracts: what each field of a request accepts, declared once.

A field's `Spec` (Integer, Number, Choice, Size, DurationList, Text, ...) knows how to parse a
loosely typed value (a JSON value, a query or process-string text, a TOML value), the text
that says what it allows, and its JSON Schema. Everything else derives from those specs:

- `Params` dataclasses (`TitleParams`, `RenditionParams`) declare each field with `param()`:
  its default and spec in one line. `parse_params` reads a mapping into one.
- `Shape` describes a JSON object (the IMM and sign request bodies) as named fields; its
  `parse` checks types and unknown fields and names the offending field by its path
  (`Targets[0].Video.TranscodeVideo.FrameRate`), and its `schema` is the OpenAPI schema.
- `Via` lets a field of one request shape be checked by the spec of a parameter declared
  elsewhere (IMM `FrameRate` is the rendition parameter `fps`), with a unit conversion
  (`Seconds`: IMM durations are seconds, parameters are ms), so a bound lives in one place.

Bounds that come from settings (`signing.max_ttl`, `limits.max_renditions`) are written as
`Bound("signing.max_ttl")` and filled in by `Shape.bind(bounds)`; exceeding a `limits.*`
bound is a LimitExceeded rather than a plain ParameterError.

Pure: no aiohttp, no av, no storage.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from livetx import numbers
from livetx.errors import LimitExceeded, ParameterError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Bounds = Mapping[str, int]


@dataclass(frozen=True)
class Bound:
    """A bound held by a setting, filled in when a contract is bound to the settings."""

    setting: str

    @property
    def is_limit(self) -> bool:
        return self.setting.startswith("limits.")


Limit = int | Bound | None


def _bind(value: Limit, bounds: Bounds) -> Limit:
    return bounds[value.setting] if isinstance(value, Bound) else value


def _range_text(lo: Any, hi: Any, unit: str) -> str:
    unit_text = f" ({unit})" if unit else ""
    if lo is not None and hi is not None:
        return f"from {_num(lo)} to {_num(hi)}{unit_text}"
    if lo is not None:
        return f">= {_num(lo)}{unit_text}"
    if hi is not None:
        return f"<= {_num(hi)}{unit_text}"
    return unit_text.strip()


def _num(value: Any) -> str:
    return str(value.setting) if isinstance(value, Bound) else f"{float(value):g}" if not isinstance(value, int) else str(value)


def _setting_note(*values: Limit) -> str:
    names = [v.setting for v in values if isinstance(v, Bound)]
    return f" ({', '.join(names)})" if names else ""


class Invalid(ValueError):
    """A value a spec refuses; `allowed` (when set) replaces the spec's own text."""

    def __init__(self, allowed: str | None = None) -> None:
        super().__init__(allowed or "invalid")
        self.allowed = allowed


class Spec:
    """What one field accepts."""

    def parse(self, raw: Any) -> Any:
        raise NotImplementedError

    @property
    def allowed(self) -> str:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def bind(self, bounds: Bounds) -> Spec:
        return self

    def check(self, raw: Any, name: str) -> Any:
        """The parsed value, or a ParameterError naming `name` and what it allows."""
        try:
            return self.parse(raw)
        except Invalid as exc:
            raise ParameterError(name, exc.allowed or self.allowed) from None
        except ValueError:
            raise ParameterError(name, self.allowed) from None


@dataclass(frozen=True)
class Integer(Spec):
    lo: Limit = None
    hi: Limit = None
    unit: str = ""
    json_only: bool = False  # a JSON integer only: no text, no 25.0 (the sign API's fields)
    what: str = ""  # the allowed text, when the bounds alone don't say it well
    hi_bound: Limit = None  # the Bound `hi` was bound from, named in the allowed text

    def parse(self, raw: Any) -> int:
        if self.json_only and (not isinstance(raw, int) or isinstance(raw, bool)):
            raise Invalid()
        value = numbers.integer(raw)  # a strict pattern first: nothing huge or odd reaches int()
        if (isinstance(self.lo, int) and value < self.lo) or (isinstance(self.hi, int) and value > self.hi):
            raise Invalid()
        return value

    @property
    def allowed(self) -> str:
        text = self.what or f"an integer {_range_text(self.lo, self.hi, self.unit)}".rstrip()
        return text + _setting_note(self.hi_bound or self.hi)

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer"}
        if isinstance(self.lo, int):
            out["minimum"] = self.lo
        if isinstance(self.hi, int):
            out["maximum"] = self.hi
        return out

    def bind(self, bounds: Bounds) -> Integer:
        return dataclasses.replace(self, hi=_bind(self.hi, bounds), hi_bound=self.hi_bound or self.hi)


@dataclass(frozen=True)
class Number(Spec):
    """An exact decimal (or, with `ratio`, a ratio such as 30000/1001), within bounds."""

    lo: float | None = None
    hi: float | None = None
    ratio: bool = False
    max_denominator: int = 0  # the nearest fraction with at most this denominator; 0: a float
    examples: str = ""

    def parse(self, raw: Any) -> Fraction | float:
        value = numbers.decimal(raw, ratio=self.ratio)
        if self.max_denominator:
            value = value.limit_denominator(self.max_denominator)
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise Invalid()
        return value if self.max_denominator else float(value)

    @property
    def allowed(self) -> str:
        text = f"a number {_range_text(self.lo, self.hi, '')}".rstrip()
        return f"{text}, such as {self.examples}" if self.examples else text

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": ["number", "string"] if self.ratio else "number"}
        if self.lo is not None:
            out["minimum"] = self.lo
        if self.hi is not None:
            out["maximum"] = self.hi
        return out


@dataclass(frozen=True)
class Choice(Spec):
    choices: tuple[Any, ...]

    def parse(self, raw: Any) -> Any:
        for choice in self.choices:
            if str(raw) == str(choice):
                return choice
        raise Invalid()

    @property
    def allowed(self) -> str:
        return "one of " + ", ".join(str(c) for c in self.choices)

    def schema(self) -> dict[str, Any]:
        return {"enum": list(self.choices)}


_SIZE = re.compile(r"([0-9]{0,5})x([0-9]{0,5})")  # ASCII digits only (\d takes any script's)


@dataclass(frozen=True)
class Size(Spec):
    """`WxH`, `Wx` or `xH`, each side even and within bounds."""

    lo: int
    hi: int

    def parse(self, raw: Any) -> str:
        text = str(raw)
        match = _SIZE.fullmatch(text)
        if not match or not (match.group(1) or match.group(2)):
            raise Invalid()
        for side in (match.group(1), match.group(2)):
            if side and (int(side) % 2 or not self.lo <= int(side) <= self.hi):
                raise Invalid()
        return text

    @property
    def allowed(self) -> str:
        return f"WxH, Wx or xH with even sides from {self.lo} to {self.hi}"

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": f"^{_SIZE.pattern}$"}


@dataclass(frozen=True)
class DurationList(Spec):
    """A list of durations (a JSON list, or comma-separated text), each an `item`."""

    item: Integer
    max_items: int

    def parse(self, raw: Any) -> tuple[int, ...]:
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, (list, tuple)) or len(items) > self.max_items:
            raise Invalid()
        return tuple(self.item.parse(item.strip() if isinstance(item, str) else item) for item in items)

    @property
    def allowed(self) -> str:
        return f"a list of at most {self.max_items} durations, each {self.item.allowed.removeprefix('an ')}"

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "maxItems": self.max_items, "items": self.item.schema()}


@dataclass(frozen=True)
class Selection(Spec):
    """Which of a source's tracks a title plays: `all`, `none`, or a comma-separated list of
    items, each matching `item` (a regular expression over lower case text). Case and spaces
    don't matter; the normal form is lower case, items joined by "," without repeats."""

    item: str
    what: str  # what an item is, for the allowed text
    max_items: int = 32
    max_length: int = 512

    def parse(self, raw: Any) -> str:
        if not isinstance(raw, str) or len(raw) > self.max_length:
            raise Invalid()
        text = raw.strip().lower()
        if text in ("all", "none"):
            return text
        items = [item.strip() for item in text.split(",")]
        if len(items) > self.max_items or not all(re.fullmatch(self.item, item) for item in items):
            raise Invalid()
        return ",".join(dict.fromkeys(items))

    @property
    def allowed(self) -> str:
        return f"all, none, or a comma-separated list of at most {self.max_items} {self.what}"

    def schema(self) -> dict[str, Any]:
        item = f"(?:{self.item})"
        return {"type": "string", "maxLength": self.max_length, "pattern": f"^(?:all|none|{item}(?:,{item})*)$"}


@dataclass(frozen=True)
class Text(Spec):
    what: str = "a string"
    max_length: int = 4096
    convert: Callable[[str], Any] | None = None  # a further check and normal form (ValueError: refused)
    lower: bool = False  # matched case-insensitively: given as lower case to `convert`

    def parse(self, raw: Any) -> Any:
        if not isinstance(raw, str) or len(raw) > self.max_length:
            raise Invalid()
        text = raw.lower() if self.lower else raw
        return self.convert(text) if self.convert else text

    @property
    def allowed(self) -> str:
        return self.what

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "maxLength": self.max_length}


@dataclass(frozen=True)
class Via(Spec):
    """A field checked by another contract's parameter `name` (IMM `FrameRate` is `fps`).
    `scale` converts the request's unit to the parameter's (1000: seconds to ms); `lower`
    matches text case-insensitively, as the cloud API does for codec names."""

    name: str
    target: Spec
    scale: int = 1
    lower: bool = False

    def parse(self, raw: Any) -> Any:
        """The value in the parameter's units and spelling, checked: the parameter's own
        parser reads it again where the parameters are assembled."""
        if self.scale != 1:
            raw = _scaled(raw, self.scale)
        elif self.lower and isinstance(raw, str):
            raw = raw.lower()
        self.target.parse(raw)
        return raw

    @property
    def allowed(self) -> str:
        if self.scale == 1000:
            return _in_seconds(self.target)
        return self.target.allowed

    def schema(self) -> dict[str, Any]:
        schema = self.target.schema()
        if self.scale == 1:
            return schema
        return _scaled_schema(schema, self.scale)


def _scaled(raw: Any, scale: int) -> Any:
    if isinstance(raw, (list, tuple)):
        return [_scaled(item, scale) for item in raw]
    if isinstance(raw, str) or isinstance(raw, bool):  # JSON numbers only
        raise Invalid()
    value = numbers.decimal(raw)
    return round(value * scale)


def _scaled_schema(schema: dict[str, Any], scale: int) -> dict[str, Any]:
    out = dict(schema)
    if out.get("type") == "integer":
        out["type"] = "number"
    for key in ("minimum", "maximum"):
        if key in out:
            out[key] = out[key] / scale
    if "items" in out:
        out["items"] = _scaled_schema(out["items"], scale)
    return out


def _in_seconds(spec: Spec) -> str:
    if isinstance(spec, Integer):
        if isinstance(spec.lo, int) and isinstance(spec.hi, int):
            return f"a number of seconds from {spec.lo / 1000:g} to {spec.hi / 1000:g}"
        if isinstance(spec.lo, int):
            return f"a number of seconds >= {spec.lo / 1000:g}"
        return "a number of seconds"
    if isinstance(spec, DurationList):
        return f"a list of at most {spec.max_items} numbers of seconds, each {_in_seconds(spec.item).removeprefix('a number of seconds ')}"
    return spec.allowed


@dataclass(frozen=True)
class TextMap(Spec):
    """An object of text values (tags)."""

    max_items: int
    max_length: int

    def parse(self, raw: Any) -> dict[str, str]:
        if not isinstance(raw, Mapping) or len(raw) > self.max_items:
            raise Invalid()
        for key, value in raw.items():
            if not isinstance(value, str) or len(key) > self.max_length or len(value) > self.max_length:
                raise Invalid()
        return dict(raw)

    @property
    def allowed(self) -> str:
        return f"an object of at most {self.max_items} text values, each at most {self.max_length} characters"

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "maxProperties": self.max_items,
            "propertyNames": {"maxLength": self.max_length},
            "additionalProperties": {"type": "string", "maxLength": self.max_length},
        }


# ---- parameter dataclasses ------------------------------------------------------------


def param(spec: Spec, default: Any = None, doc: str = "") -> Any:
    """A parameter field: its default and what it accepts, declared together."""
    return field(default=default, metadata={"spec": spec, "doc": doc})


def spec_of(cls: type[DataclassInstance], name: str) -> Spec:
    for f in fields(cls):
        if f.name == name:
            spec = f.metadata["spec"]
            assert isinstance(spec, Spec)
            return spec
    raise KeyError(name)


def param_names(cls: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def parse_params(cls: type[DataclassInstance], params: Mapping[str, Any]) -> dict[str, Any]:
    """Each field of `cls` read from `params` (absent or empty: the default), checked by its spec."""
    out: dict[str, Any] = {}
    for f in fields(cls):
        raw = params.get(f.name)
        out[f.name] = f.default if raw is None or raw == "" else f.metadata["spec"].check(raw, f.name)
    return out


def params_schema(cls: type[DataclassInstance]) -> dict[str, Any]:
    """Each parameter's JSON Schema, with its default and documentation."""
    out: dict[str, Any] = {}
    for f in fields(cls):
        schema = dict(f.metadata["spec"].schema())
        if f.default is not None and not isinstance(f.default, Fraction):
            schema["default"] = list(f.default) if isinstance(f.default, tuple) else f.default
        if f.metadata["doc"]:
            schema["description"] = f.metadata["doc"]
        out[f.name] = schema
    return out


# ---- JSON request shapes ----------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    spec: Spec
    required: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Shape(Spec):
    """A JSON object: named fields, nothing else. Parsing gives a dict of the fields present."""

    fields: Mapping[str, Field]
    doc: str = ""
    unknown_text: str = "one of {names} (unknown field)"

    def parse(self, raw: Any) -> dict[str, Any]:
        return self.check(raw, "body")

    def check(self, raw: Any, name: str) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            raise ParameterError(name, "a JSON object" if name == "body" else "an object")
        unknown = sorted(set(raw) - set(self.fields))
        if unknown:
            names = ", ".join(sorted(self.fields))
            raise ParameterError(self._path(name, unknown[0]), self.unknown_text.format(names=names))
        out: dict[str, Any] = {}
        for key, item in self.fields.items():
            value = raw.get(key)
            if value is None:
                if item.required:
                    raise ParameterError(self._path(name, key), "required")
                continue
            out[key] = item.spec.check(value, self._path(name, key))
        return out

    @staticmethod
    def _path(parent: str, key: str) -> str:
        return key if parent == "body" else f"{parent}.{key}"

    @property
    def allowed(self) -> str:
        return "an object"

    def schema(self) -> dict[str, Any]:
        properties = {}
        for key, item in self.fields.items():
            schema = dict(item.spec.schema())
            if item.doc:
                schema["description"] = item.doc
            properties[key] = schema
        out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties}
        required = [key for key, item in self.fields.items() if item.required]
        if required:
            out["required"] = required
        if self.doc:
            out["description"] = self.doc
        return out

    def bind(self, bounds: Bounds) -> Shape:
        bound = {key: dataclasses.replace(item, spec=item.spec.bind(bounds)) for key, item in self.fields.items()}
        return dataclasses.replace(self, fields=bound)


@dataclass(frozen=True)
class ListOf(Spec):
    item: Spec
    lo: int = 0
    hi: Limit = None
    what: str = "items"
    hi_bound: Limit = None  # the Bound `hi` was bound from: past a `limits.*` bound is LimitExceeded

    def check(self, raw: Any, name: str) -> list[Any]:
        allowed = self.allowed
        if not isinstance(raw, list):
            raise ParameterError(name, allowed)
        if isinstance(self.hi, int) and len(raw) > self.hi:
            raise (LimitExceeded if isinstance(self.hi_bound, Bound) and self.hi_bound.is_limit else ParameterError)(name, allowed)
        if len(raw) < self.lo:
            raise ParameterError(name, allowed)
        return [self.item.check(value, f"{name}[{i}]") for i, value in enumerate(raw)]

    def parse(self, raw: Any) -> list[Any]:
        return self.check(raw, "list")

    @property
    def allowed(self) -> str:
        if self.hi is None:
            return f"a list of at least {self.lo} {self.what}"
        return f"a list of {self.lo} to {_num(self.hi)} {self.what}{_setting_note(self.hi_bound or self.hi)}"

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "array", "items": self.item.schema()}
        if self.lo:
            out["minItems"] = self.lo
        if isinstance(self.hi, int):
            out["maxItems"] = self.hi
        return out

    def bind(self, bounds: Bounds) -> ListOf:
        return dataclasses.replace(self, item=self.item.bind(bounds), hi=_bind(self.hi, bounds), hi_bound=self.hi)
