"""Fuzzing the API with schemathesis, against its own OpenAPI schema.

Every operation of `/openapi.json` gets generated requests, valid ones and invalid
ones, sent in-process to the served ASGI app (the same middleware stack as `wasync
serve`) over a runtime with a synced simulator session; half of them name real rows
(the session, a chat, a message with media, a stored picture, a webhook endpoint), so
routes answer with data, not only 404s. Every answer must be as documented: no 500,
a documented status, content type and body (fuzzing.CHECKS). Bounded and
derandomized: the same few hundred cases on every run, in well under a minute.
What it found is kept as explicit cases in test_fuzz_regressions.py.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.core.failures import FailureGroup

from .fuzzing import Served, served

__all__ = ["served"]  # the fixture

EXAMPLES = 8  # per operation and mode: 36 operations x 2 modes, about 530 cases
# Operations whose every case would undo the data the others read.
DESTRUCTIVE = {("DELETE", "/api/sessions/{session}"), ("POST", "/api/sessions/{session}/logout")}


def _strategy(operation: Any, mode: GenerationMode, known: dict[str, str]) -> Any:
    generated = operation.as_strategy(generation_mode=mode)
    in_path = {p.name for p in operation.path_parameters}
    in_query = {p.name for p in operation.query}
    path = {name: value for name, value in known.items() if name in in_path}
    query = {name: value for name, value in known.items() if name in in_query}
    if not path or (operation.method.upper(), operation.path) in DESTRUCTIVE:
        return generated
    # Half the cases name real rows, so the routes answer with data, not only 404s.
    real = operation.as_strategy(generation_mode=mode, path_parameters=path, query=query or None)
    return st.one_of(generated, real)


def test_the_api_answers_as_documented(served: Served) -> None:
    schema = served.schema
    failures: dict[tuple[str, str, str], str] = {}  # (method, path, problem) -> an example
    cases = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=_strategy(operation, mode, served.known))
            def check(case: Case) -> None:
                nonlocal cases
                cases += 1
                try:
                    served.check(case)
                except FailureGroup as group:
                    for failure in group.exceptions:
                        key = (case.method, case.path, failure.title)
                        failures.setdefault(key, f"{failure.title}: {failure.message}\n{group}")

            try:
                check()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong (GET /health)
    assert cases >= 300
    assert not failures, "\n".join(f"{m} {p}: {t}" for m, p, t in sorted(failures)) + (
        "\n\n" + "\n\n".join(list(failures.values())[:5])
    )
