"""solutions/ is an overlay of exercises/: same modules, same public names and signatures."""

import ast

import pytest

from grader.todos import read_source

from kit import ROOT

SOLUTIONS = sorted((ROOT / "solutions" / "scratchllm").glob("*.py"))


def public_api(path):
    """{name: signature} for public functions, classes and their public methods."""
    tree = ast.parse(read_source(path))
    api = {}

    def sig(fn):
        a = fn.args
        return ast.unparse(a)

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            api[node.name] = sig(node)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            api[node.name] = "class(" + ", ".join(ast.unparse(b) for b in node.bases) + ")"
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                        (not item.name.startswith("_") or item.name == "__init__"):
                    api[f"{node.name}.{item.name}"] = sig(item)
    return api


def test_there_are_solutions():
    assert SOLUTIONS


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_solution_module_matches_its_stub(solution):
    stub = ROOT / "exercises" / "scratchllm" / solution.name
    assert stub.is_file(), f"{solution.name} has a solution but no stub in exercises/"
    want, got = public_api(stub), public_api(solution)
    assert got.keys() == want.keys(), f"names differ: only in stub {want.keys() - got.keys()}, " \
                                      f"only in solution {got.keys() - want.keys()}"
    for name in want:
        assert got[name] == want[name], f"{solution.name}: {name} is ({got[name]}) but the stub says ({want[name]})"
