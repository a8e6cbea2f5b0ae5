"""Finding what is still left to do in a module.

A function is *left TODO* when its body still raises NotImplementedError,
as every stub does until the student fills it in. Found by parsing, never
by importing, so it is safe on any code.
"""

from __future__ import annotations

import ast
from pathlib import Path


def read_source(path: Path) -> str:
    """A Python file's text: UTF-8, a BOM allowed, CRLF turned into LF."""
    return path.read_bytes().decode("utf-8-sig").replace("\r\n", "\n")


def _raises_not_implemented(fn: ast.AST) -> bool:
    for node in ast.walk(fn):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                return True
    return False


def todo_functions(path: Path) -> list[str]:
    """Qualified names of functions in `path` whose bodies raise NotImplementedError."""
    try:
        tree = ast.parse(read_source(path), filename=str(path))
    except SyntaxError as e:
        return [f"(syntax error on line {e.lineno}: {e.msg})"]
    found: list[str] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if _raises_not_implemented(child):
                    found.append(prefix + child.name)
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(tree, "")
    return found
