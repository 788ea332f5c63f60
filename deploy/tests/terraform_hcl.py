"""Reads the Terraform module as data, and evaluates the few HCL expressions its locals use.

Terraform cannot run here. The tests parse the .tf files with python-hcl2 and, where a value
must be checked as Terraform would compute it (an EventBridge pattern, a log filter), render
it with `render`: variable and local references, `jsonencode`/`jsondecode`, `length`,
comparisons, conditionals and object literals. Anything else raises, so a new construct in a
rendered local fails the test instead of being misread.
"""

import pathlib
import re

import hcl2
from hcl2.utils import SerializationOptions

DEPLOY = pathlib.Path(__file__).resolve().parent.parent
TERRAFORM = DEPLOY / "terraform"
MODULE = TERRAFORM / "modules" / "cognito-hasura-sync"
OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)


def parse(path):
    with open(path, encoding="utf-8") as handle:
        return hcl2.load(handle, serialization_options=OPTIONS)


def merged(directory):
    """Blocks of every .tf file in one directory, by kind: resources/data by (type, name)."""
    out = {"resource": {}, "data": {}, "locals": {}, "variable": {}, "output": {}, "module": {},
           "check": {}}
    for path in sorted(directory.glob("*.tf")):
        doc = parse(path)
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for type_, named in block.items():
                    for name, body in named.items():
                        out[kind][(type_, name)] = body
        for block in doc.get("locals", []):
            out["locals"].update(block)
        for kind in ("variable", "output", "module", "check"):
            for block in doc.get(kind, []):
                out[kind].update(block)
    return out


def defaults(module):
    """The module's variables at their defaults (None where a variable has none)."""
    return {name: body.get("default") for name, body in module["variable"].items()}


def render(value, module, variables):
    """`value` (a parsed HCL value) as Terraform computes it with these variables."""
    if isinstance(value, dict):
        return {key: render(item, module, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, module, variables) for item in value]
    if isinstance(value, str):
        whole = re.fullmatch(r"\$\{(.*)\}", value, re.S)
        if whole and _balanced(whole.group(1)):
            return _evaluate(whole.group(1).strip(), module, variables)
        return re.sub(r"\$\{([^}]*)\}",
                      lambda m: str(_evaluate(m.group(1).strip(), module, variables)), value)
    return value


def _balanced(expression):
    depth = 0
    for char in expression:
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _split_top_level(expression, separator):
    """Splits at the first `separator` outside brackets and strings, or returns None."""
    depth, quoted = 0, False
    for index, char in enumerate(expression):
        if char == '"':
            quoted = not quoted
        elif not quoted:
            depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
            if depth == 0 and expression.startswith(separator, index):
                return expression[:index].strip(), expression[index + len(separator):].strip()
    return None


def _evaluate(expression, module, variables):
    conditional = _split_top_level(expression, "?")
    if conditional:
        condition, branches = conditional
        when_true, when_false = _split_top_level(branches, ":")
        chosen = when_true if _evaluate(condition, module, variables) else when_false
        return _evaluate(chosen, module, variables)
    for operator, compare in ((">=", lambda a, b: a >= b), ("<=", lambda a, b: a <= b),
                              ("==", lambda a, b: a == b), ("!=", lambda a, b: a != b),
                              (">", lambda a, b: a > b), ("<", lambda a, b: a < b)):
        parts = _split_top_level(expression, f" {operator} ")
        if parts:
            return compare(*(_evaluate(part, module, variables) for part in parts))
    call = re.fullmatch(r"(\w+)\((.*)\)", expression, re.S)
    if call and _balanced(call.group(2)):
        name, argument = call.group(1), _evaluate(call.group(2).strip(), module, variables)
        functions = {"jsonencode": lambda v: v, "jsondecode": lambda v: v, "length": len}
        return functions[name](argument)
    if expression.startswith("{"):
        return render(hcl2.loads(f"value = {expression}", serialization_options=OPTIONS)["value"],
                      module, variables)
    reference = re.fullmatch(r"(var|local)\.(\w+)", expression)
    if reference:
        kind, name = reference.groups()
        if kind == "var":
            return variables[name]
        return render(module["locals"][name], module, variables)
    if re.fullmatch(r"-?\d+", expression):
        return int(expression)
    if re.fullmatch(r'"[^"]*"', expression):
        return expression[1:-1]
    raise ValueError(f"cannot evaluate HCL expression {expression!r}")
