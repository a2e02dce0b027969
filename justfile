# contentgremlin's everyday commands. `just` comes from PyPI's rust-just (the dev extra).

default:
    @just --list

# Run the whole test suite (unit, end-to-end, browser, torture).
test *ARGS:
    python -m pytest {{ARGS}}

# The fast unit tests only.
quick:
    python -m pytest -m "not slow" -q

# ruff and mypy, as CI would want them clean.
lint:
    ruff check .
    ruff format --check .
    mypy

# Serve the site in this checkout (db.sqlite and content/ at the top, git-ignored).
serve *ARGS:
    gremlin serve {{ARGS}}

# Every benchmark in bench/, each printing its ratio to a baseline measured in the same run.
bench:
    for f in bench/bench_*.py; do python "$f"; done
