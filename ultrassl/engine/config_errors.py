"""One line for a bad config value: the key, the value, the cause and what would be valid.

jsonargparse reports a bad value inside a ``class_path`` / ``init_args`` section as a wall:
``Parser key "model": Does not validate against any of the Union subtypes Subtypes: [...]
Errors: - Problem with given class_path '...': Parser key "lr": Expected a <class 'float'>.
Got value: abc - Expected a <class 'NoneType'> Given value type: ... Given value: ...``, where
the cause sits between the unions it was tried against. :func:`explain` walks that text and
writes ``model.init_args.lr='abc': expected a float``. jsonargparse gives no structured form
of these errors (its ``ArgumentError`` carries only the message), so the text is parsed here;
anything not recognised is passed through on one line, never lost.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path, PurePath
from typing import Any

_UNION = re.compile(r"^Does not validate against any of the Union subtypes Subtypes: \[(?P<types>.*?)\] Errors: - ")
_PARSER_KEY = re.compile(r'^Parser key "(?P<key>[^"]+)": ')
_CLASS_PATH = re.compile(r"^Problem with given class_path '(?P<path>[^']+)': ")
#: where an Optional's other branch, or jsonargparse's echo of the value, starts
_TAIL = re.compile(r" - Expected a <class 'NoneType'>| Given value type: ")
_GIVEN = re.compile(r"Given value: NestedArg\(key='(?P<key>[^']*)', val=(?P<val>.*?)\)$")
_GOT = re.compile(r"\.? Got value: (?P<val>.*)$")
_TYPE = re.compile(r"<class '(?:[\w.]+\.)?(?P<name>\w+)'>")
_ROOTS = {"LightningModule": "model", "LightningDataModule": "data"}
#: LightningCLI's subcommands, the first key of a subcommand's config
SUBCOMMANDS = ("fit", "validate", "test", "predict")
_ARTICLES = {"int": "an int", "float": "a float", "str": "a string", "bool": "a bool (true or false)"}


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def explain(message: str) -> str:
    """``key=value: cause`` for a jsonargparse message about a config value (see the module
    docstring); the message on one line when it is not one of those."""
    text = one_line(message)
    keys: list[str] = []
    class_path = None
    given_key = given_value = None
    if match := _GIVEN.search(text):
        given_key, given_value = match["key"], match["val"]
    elif (match := re.search(r"Given value: (?P<val>.*)$", text)) and not match["val"].startswith("Namespace("):
        given_value = match["val"]  # the value of the key the message opens with
    while True:
        if match := _PARSER_KEY.match(text):
            keys += ["init_args", match["key"]] if class_path and keys else [match["key"]]
            class_path = None
        elif match := _UNION.match(text):
            if not keys:
                roots = [_ROOTS[name] for name in _TYPE.findall(match["types"]) if name in _ROOTS]
                keys += roots[:1]
        elif match := _CLASS_PATH.match(text):
            class_path = match["path"]
        else:
            break
        text = text[match.end():]
    if not keys:
        return text
    cause = _TAIL.split(text, maxsplit=1)[0].strip()
    value = None
    if match := _GOT.search(cause):
        cause, value = cause[: match.start()], match["val"]
    if cause.startswith("Option '") and "' is not accepted" in cause:  # an unknown argument
        name = cause.split("'")[1]
        known = _accepted(class_path)
        return (f"{'.'.join(keys)}.init_args.{name}: {class_path or 'the class'} takes no argument {name!r}"
                + (f"; it takes: {', '.join(known)}" if known else ""))
    if class_path and (cause.startswith("module ") or "does not correspond to" in cause or "No module named" in cause):
        return f"{'.'.join(keys)}.class_path={class_path!r}: {cause}{_valid_classes(keys)}"
    if match := re.match(r"Import path (?P<path>\S+) does not correspond to a subclass of (?P<base>\w+)", cause):
        return (f"{'.'.join(keys)}.class_path={match['path']!r}: not a {match['base']}" + _valid_classes(keys))
    if match := re.match(r"(?P<name>\w+)=(?P<value>.*?): ", cause):
        if len(keys) == 1 and class_path is None:  # raised by the class, naming its argument
            return f"{keys[0]}.init_args.{cause}"
    if cause.startswith("Expected a dot import path string"):
        return f"{'.'.join(keys)}.class_path={cause.split(': ', 1)[-1]!r}: not a class path (package.module.Class)" + \
            _valid_classes(keys)
    if value is None and given_value is not None and (given_key is None or keys[-1] == given_key.split(".")[-1]):
        value = given_value
    if value is None and class_path is None and len(keys) == 1:
        # raised while building the class (e.g. an unknown backbone): name the argument whose
        # value the cause quotes, from jsonargparse's echo of the section
        quoted = re.search(r"'([^']+)'", cause)
        if quoted:
            owner = re.search(rf"(\w+)='{re.escape(quoted[1])}'", message)
            if owner:
                keys += ["init_args", owner[1]]
                value = repr(quoted[1])
    expected = re.findall(r"Expected (a [^-]*?)(?= - |$)", cause)
    if expected and all(e.startswith("a ") for e in expected):
        cause = "expected " + " or ".join(_readable(e) for e in expected)
    cause = _TYPE.sub(lambda m: m["name"], cause)
    return f"{'.'.join(keys)}" + (f"={_quoted(value)}" if value is not None else "") + f": {cause}"


def _readable(expected: str) -> str:
    expected = expected.strip().rstrip(".")
    if match := re.search(r"Literal\[(?P<options>.*)\]", expected):
        return f"one of {match['options']}"
    match = _TYPE.fullmatch(expected[2:].strip())
    if match:
        return _ARTICLES.get(match["name"], f"a {match['name']}")
    return _TYPE.sub(lambda m: m["name"], expected)


def _quoted(value: str) -> str:
    value = value.strip()
    return value if value[:1] in "'\"[{(" or re.fullmatch(r"-?[\d.e+-]+", value) else repr(value)


def _accepted(class_path: str | None) -> list[str]:
    """The arguments of the class ``class_path`` names (already imported by jsonargparse)."""
    if not class_path:
        return []
    from ultrassl.models.checkpoint import import_class

    try:
        return [p for p in inspect.signature(import_class(class_path)).parameters if p not in ("self", "args", "kwargs")]
    except (ImportError, AttributeError, ValueError, TypeError):
        return []


def _valid_classes(keys: list[str]) -> str:
    """``"; this package's: ..."``: this package's classes for the section ``keys`` names."""
    names = known_classes(keys[-1] if keys[-1] == "pipeline" else keys[0])
    return f"; this package's: {', '.join(names)}" if names else ""


#: per config section, the subpackages holding its classes and the base classes they derive from
_CATALOGUE = {
    "model": (("objectives", "downstream"), {"PretrainModule", "DownstreamModule"}),
    "data": (("data",), {"LightningDataModule"}),
    "pipeline": (("pipelines",), {"Pipeline"}),
}


def known_classes(section: str) -> list[str]:
    """Class paths of this package's classes for a config section: ``"model"`` (the
    objectives and the downstream tasks' models), ``"data"`` or ``"pipeline"``.

    Read from the package's source, not imported: the engine sits below the objectives and
    tasks and must not import them, and a failed config should not run more code."""
    if section not in _CATALOGUE:
        return []
    folders, roots = _CATALOGUE[section]
    package = Path(__file__).resolve().parents[1]
    classes: dict[str, tuple[str, list[str]]] = {}  # name -> (class path, base names)
    for folder in folders:
        for path in sorted((package / folder).rglob("*.py")):
            module = ".".join(("ultrassl", *path.relative_to(package).with_suffix("").parts))
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                    bases = [b.id if isinstance(b, ast.Name) else b.attr for b in node.bases
                             if isinstance(b, (ast.Name, ast.Attribute))]
                    classes[node.name] = (f"{module}.{node.name}", bases)
    derived, grown = set(roots), True
    while grown:  # subclasses of subclasses, by name within the package
        grown = False
        for name, (_, bases) in classes.items():
            if name not in derived and derived.intersection(bases):
                derived.add(name)
                grown = True
    return sorted(path for name, (path, _) in classes.items() if name in derived - roots)


def name_the_key(message: str, path: str | None, config: Any) -> str | None:
    """``message`` prefixed with the config key whose value is ``path`` (a missing manifest
    or checkpoint), ``data.init_args.manifest='/x.csv': ...``; None when no key holds it.
    ``config``: a dict or jsonargparse namespace, under a subcommand or not."""
    if not path or not hasattr(config, "items"):
        return None
    key = _find_value(config, str(path))
    if key is None:
        return None
    first, _, rest = key.partition(".")
    if first in SUBCOMMANDS and rest:
        key = rest
    return f"{key}={str(path)!r}: {message}"


def _find_value(node: Any, value: str, prefix: str = "") -> str | None:
    if hasattr(node, "items"):  # dicts and jsonargparse namespaces
        for key, child in node.items():
            if (found := _find_value(child, value, f"{prefix}{key}.")) is not None:
                return found
        return None
    if prefix and isinstance(node, (str, bytes, PurePath)) and str(node) == value:
        return prefix[:-1]
    return None
