"""The Jinja2 sandbox templates render in: no access to internals, and limits on what `*`, `**`,
padding and format specs may make, so that an untrusted template cannot exhaust memory.

`llmkit.base.templates` finds, compiles and renders templates with `environment`; the guards here
raise `Refused`, which it reports as a `TemplateError` naming the template.
"""

from __future__ import annotations

import re
from functools import lru_cache, wraps
from typing import Any

from .prompt_values import as_prompt_text

__all__ = ["CallableOutput", "Refused", "environment", "short"]

_MAX_ITEMS = 1_000_000  # characters or items one `*` or padding (ljust, center, ...) may make
_MAX_BITS = 100_000  # bits an integer `*` or `**` may make (str() stops at 4300 digits anyway)
_PADDING = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


class Refused(Exception):
    """Raised inside a render by the sandbox's guards; `Template` turns it into `TemplateError`."""


class CallableOutput(Exception):
    """``{{ x }}`` gave a callable (a method not called, say): raised by the `finalize` hook."""

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.value = value


@lru_cache(maxsize=1)
def environment() -> Any:
    from jinja2 import StrictUndefined, Undefined
    from jinja2.sandbox import SandboxedEnvironment

    def finalize(value: Any) -> Any:
        # Called on the value of every {{ }}; StrictUndefined is callable but raises on str().
        if callable(value) and not isinstance(value, Undefined):
            raise CallableOutput(value)
        return as_prompt_text(value)  # a DataFrame as a Markdown table, not its repr

    class Sandbox(SandboxedEnvironment):
        """The sandbox, plus limits on what `*`, `**` and padding may make (else MemoryError)."""

        # Intercepted operators go through call_binop, and are not folded at compile time.
        intercepted_binops = frozenset({"*", "**", "%"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "*":
                _check_repeat(left, right)
            elif operator == "**":
                _check_power(left, right)
            elif isinstance(left, str):  # 'printf' % args
                _check_format(left, right)
            return super().call_binop(context, operator, left, right)

        def wrap_str_format(self, value: Any) -> Any:
            wrapped = super().wrap_str_format(value)  # the sandbox's own str.format
            if wrapped is None:
                return None

            def checked(*args: Any, **kwargs: Any) -> Any:
                _check_format(value.__self__, (*args, kwargs))
                return wrapped(*args, **kwargs)
            return checked

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(__obj, "__name__", None) in _PADDING and isinstance(
                    getattr(__obj, "__self__", None), str):
                _check_width(f"str.{__obj.__name__}()", *args, *kwargs.values())
            return super().call(__context, __obj, *args, **kwargs)

    env = Sandbox(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False,
                  finalize=finalize)
    for name in ("center", "indent"):
        env.filters[name] = _width_checked(name, env.filters[name])
    env.filters["format"] = _format_checked(env.filters["format"])
    return env


def _check_repeat(left: Any, right: Any) -> None:
    if isinstance(left, int) and not isinstance(right, int):
        left, right = right, left
    if not isinstance(right, int):
        return
    if isinstance(left, int):
        if left.bit_length() + right.bit_length() > _MAX_BITS:
            raise Refused(f"a '*' would make a number of more than {_MAX_BITS:,} bits; the "
                           f"template sandbox refuses it")
    elif isinstance(left, (str, bytes, list, tuple)) and len(left) * right > _MAX_ITEMS:
        raise Refused(f"a '*' would repeat a {type(left).__name__} to {len(left) * right:,} "
                       f"items; the template sandbox allows at most {_MAX_ITEMS:,}")


def _check_power(base: Any, exponent: Any) -> None:
    if (isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1
            and exponent * base.bit_length() > _MAX_BITS):
        raise Refused(f"a '**' would make a number of more than {_MAX_BITS:,} bits; the "
                       f"template sandbox refuses it")


def _check_width(what: str, *args: Any) -> None:
    for arg in args:
        if isinstance(arg, int) and arg > _MAX_ITEMS:
            raise Refused(f"{what} with a width of {arg:,}; the template sandbox allows at most "
                           f"{_MAX_ITEMS:,}")


# A format spec: "{0:>{w}}" (group 1) or "%-*.3d" (group 2), for the widths in it.
_FORMAT_SPEC = re.compile(r"\{[^{}]*?:((?:[^{}]|\{[^{}]*\})*)\}"
                          r"|%((?:\([^)]*\))?[-#0 +]*(?:\d+|\*)?(?:\.(?:\d+|\*))?)[a-zA-Z%]")


def _check_format(fmt: str, args: Any) -> None:
    """Refuse widths over the limit in a format string, or in the arguments of "{:{w}}", "%*d"."""
    for found in _FORMAT_SPEC.finditer(fmt):
        spec = found.group(1) or found.group(2) or ""
        if any(len(digits) > 6 and int(digits) > _MAX_ITEMS for digits in re.findall(r"\d+", spec)):
            raise Refused(f"a format width over {_MAX_ITEMS:,} in {short(fmt)!r}; the template "
                           f"sandbox allows at most {_MAX_ITEMS:,}")
        if "{" in spec or "*" in spec:
            given = args if isinstance(args, tuple) else (args,)
            values = [v for a in given for v in (a.values() if isinstance(a, dict) else (a,))]
            _check_width(f"the format {short(fmt)!r}", *values)


def _format_checked(jinja_filter: Any) -> Any:
    @wraps(jinja_filter)
    def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            _check_format(value, (*args, kwargs))
        return jinja_filter(value, *args, **kwargs)
    return checked


def _width_checked(name: str, jinja_filter: Any) -> Any:
    @wraps(jinja_filter)  # keeps Jinja's pass_context/pass_environment marks, if any
    def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_width(f"the {name} filter", *args, *kwargs.values())
        return jinja_filter(value, *args, **kwargs)
    return checked


def short(text: str, width: int = 60) -> str:
    """``text`` on one line, cut to ``width`` characters (for messages that quote a template)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
