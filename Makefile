# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PYTEST_ARGS ?=

.PHONY: setup browser demo test lint bench neo4j-start neo4j-stop sdl

$(UV):
	python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

setup: $(UV)
	$(UV) sync --frozen

demo: setup
	$(UV) run connectome demo

test: setup browser
	$(UV) run pytest $(PYTEST_ARGS)

# Debian's headless Chromium for the browser tests (skipped without it outside CI).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } \
	  || echo "chromium not installed: the browser tests will be skipped (apt-get install chromium)"

lint: setup
	$(UV) run ruff check .
	$(UV) run mypy

bench: setup
	$(UV) run python -m bench

neo4j-start: setup
	$(UV) run connectome neo4j start

neo4j-stop: setup
	$(UV) run connectome neo4j stop

sdl: setup
	$(UV) run connectome export-sdl
