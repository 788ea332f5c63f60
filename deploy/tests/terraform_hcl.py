"""Reads the Terraform module as data, and evaluates the few HCL expressions its locals use.

The tests parse the .tf files with python-hcl2 and, where a value must be checked as Terraform
would compute it (an EventBridge pattern, a validation, a precondition), render it with
`render`: variable and local references, conditionals, `&&`, `||`, `!`, comparisons, literals
(strings with interpolation, numbers, booleans, null, objects) and the functions in FUNCTIONS.
Anything else raises, so a new construct in a rendered value fails the test instead of being
misread; resource attributes (known only after apply) stay symbols such as
"${aws_kms_key.this.arn}". Regular expressions run with Python's `re`, which agrees with
Terraform's RE2 on the syntax the module uses; test_terraform_cli.py checks the pattern against
real Terraform.
"""

import json
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


def _can(thunk):
    try:
        thunk()
    except (ValueError, TypeError, re.error):
        return False
    return True


def _regex(pattern, text):
    if text is None:
        raise TypeError("regex of null")
    match = re.search(pattern, text)
    if match is None:
        raise ValueError(f"{pattern!r} does not match {text!r}")
    return match.group(0)


# Functions whose arguments are evaluated first; `can` takes its argument unevaluated.
FUNCTIONS = {
    "jsonencode": lambda value: value,
    "jsondecode": lambda value: value,
    "length": len,
    "regex": _regex,
    "startswith": lambda text, prefix: text.startswith(prefix),
    "endswith": lambda text, suffix: text.endswith(suffix),
    "strcontains": lambda text, part: part in text,
    "contains": lambda items, item: item in items,
    "values": lambda mapping: list(mapping.values()),
    "lower": str.lower,
    "tostring": lambda value: str(value).lower() if isinstance(value, bool) else str(value),
}


def render(value, module, variables, known=None):
    """`value` (a parsed HCL value) as Terraform computes it with these variables. `known` maps
    references Terraform only knows at plan time (`self.name`, `local.region`) to values."""
    if isinstance(value, dict):
        return {key: render(item, module, variables, known) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, module, variables, known) for item in value]
    if isinstance(value, str):
        whole = re.fullmatch(r"\$\{(.*)\}", value, re.S)
        if whole and _balanced(whole.group(1)):
            return _evaluate(whole.group(1).strip(), module, variables, known)
        return re.sub(r"\$\{([^}]*)\}",
                      lambda m: str(_evaluate(m.group(1).strip(), module, variables, known)),
                      value)
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
    depth, quoted, escaped = 0, False, False
    for index, char in enumerate(expression):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted:
            depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
            if depth == 0 and expression.startswith(separator, index):
                return expression[:index].strip(), expression[index + len(separator):].strip()
    return None


def _arguments(text):
    arguments = []
    while text:
        parts = _split_top_level(text, ",")
        argument, text = parts if parts else (text, "")
        arguments.append(argument)
    return arguments


def _evaluate(expression, module, variables, known):
    def evaluate(part):
        return _evaluate(part, module, variables, known)

    if expression.startswith("(") and expression.endswith(")") and _balanced(expression[1:-1]):
        return evaluate(expression[1:-1].strip())
    conditional = _split_top_level(expression, "?")
    if conditional:
        condition, branches = conditional
        when_true, when_false = _split_top_level(branches, ":")
        return evaluate(when_true if evaluate(condition) else when_false)
    for operator in ("||", "&&"):
        parts = _split_top_level(expression, f" {operator} ")
        if parts:
            left = evaluate(parts[0])
            if operator == "||":
                return left or evaluate(parts[1])
            return left and evaluate(parts[1])
    for operator, compare in ((">=", lambda a, b: a >= b), ("<=", lambda a, b: a <= b),
                              ("==", lambda a, b: a == b), ("!=", lambda a, b: a != b),
                              (">", lambda a, b: a > b), ("<", lambda a, b: a < b)):
        parts = _split_top_level(expression, f" {operator} ")
        if parts:
            return compare(*(evaluate(part) for part in parts))
    if expression.startswith("!"):
        return not evaluate(expression[1:].strip())
    call = re.fullmatch(r"(\w+)\((.*)\)", expression, re.S)
    if call and _balanced(call.group(2)):
        name, arguments = call.group(1), _arguments(call.group(2).strip())
        if name == "can":
            return _can(lambda: evaluate(arguments[0]))
        return FUNCTIONS[name](*(evaluate(argument) for argument in arguments))
    if expression.startswith("{"):
        return render(hcl2.loads(f"value = {expression}", serialization_options=OPTIONS)["value"],
                      module, variables, known)
    if expression.startswith("[") and expression.endswith("]"):
        return [evaluate(item) for item in _arguments(expression[1:-1].strip())]
    if expression in (known or {}):
        return known[expression]
    reference = re.fullmatch(r"(var|local)\.(\w+)", expression)
    if reference:
        kind, name = reference.groups()
        if kind == "var":
            return variables[name]
        return render(module["locals"][name], module, variables, known)
    literals = {"null": None, "true": True, "false": False}
    if expression in literals:
        return literals[expression]
    if re.fullmatch(r"-?\d+", expression):
        return int(expression)
    if re.fullmatch(r'"(?:[^"\\]|\\.)*"', expression, re.S):
        # HCL escapes are JSON's; ${...} inside is interpolated like any template.
        return render(json.loads(expression), module, variables, known)
    if re.fullmatch(r"(?:data\.)?aws_\w+\.\w+(?:\[[^\]]+\])?(?:\.\w+)*", expression):
        # A resource attribute is only known after apply: it stays a symbol.
        return f"${{{expression}}}"
    raise ValueError(f"cannot evaluate HCL expression {expression!r}")


def policy_statements(document, module, variables):
    """The statements an aws_iam_policy_document renders to: the static ones and each dynamic
    block's content once per item of its for_each (`statement.value` is the item)."""
    statements = document.get("statement", [])
    statements = list(statements if isinstance(statements, list) else [statements])
    dynamics = document.get("dynamic", [])
    for dynamic in dynamics if isinstance(dynamics, list) else [dynamics]:
        block = dynamic["statement"]
        for item in render(block["for_each"], module, variables):
            content = block["content"]
            content = content[0] if isinstance(content, list) else content
            statements.append(render(content, module, variables, {"statement.value": item}))
    return statements
