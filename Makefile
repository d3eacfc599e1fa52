# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test soak lint bench bench-tools fuzz chaos clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# reinstall when pyproject.toml changes
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m livetx keygen --if-missing
	$(PY) -m livetx sample --if-empty
	$(PY) -m livetx serve --announce sample.mp4

test: $(STAMP)
	$(PY) -m pytest -q -ra

# the suite 5 times in a row: a test that flakes shows here (run it in a fresh clone)
soak: $(STAMP)
	for i in 1 2 3 4 5; do $(MAKE) test || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check livetx tests benchmarks
	$(VENV)/bin/ruff format --check livetx tests benchmarks
	$(VENV)/bin/mypy

# the fuzz run: 20000 generated cases for each of the 7 parser targets (140k) and for subtitle
# file bytes, not in `make test`
fuzz: $(STAMP)
	LIVETX_FUZZ_EXAMPLES=20000 $(PY) -m pytest -q -s tests/test_fuzz.py tests/test_subtitles.py::test_any_bytes_give_cues_or_subtitle_unreadable

# the chaos run, on a fleet of 3 origins (Valkey leases, the nginx front when nginx is
# installed): players play while segments are deleted, workers and whole origins killed and S3
# restarted; then every cached segment is verified (see tests/chaos.py)
chaos: $(STAMP)
	mkdir -p benchmarks/results
	$(PY) -m tests.chaos --seconds 120 --players 6 --origins 3 --json benchmarks/results/chaos.json

# wrk (the load generator of playlist_load.py and hot_path.py) and nginx (an anchor): installed
# with apt-get when missing and run as root; otherwise the reason is printed and the scripts
# leave out what needs them
bench-tools:
	@for tool in wrk:wrk nginx:nginx-light; do \
	  bin=$${tool%%:*}; pkg=$${tool##*:}; \
	  if command -v $$bin >/dev/null 2>&1 || [ -x /usr/sbin/$$bin ]; then continue; fi; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "bench: installing $$pkg"; \
	    apt-get install -y -qq $$pkg >/dev/null 2>&1 \
	      || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $$pkg >/dev/null 2>&1) \
	      || echo "bench: apt-get could not install $$pkg: what needs $$bin is left out"; \
	  else \
	    echo "bench: $$bin is missing and this is not root with apt-get (apt-get install $$pkg): what needs it is left out"; \
	  fi; \
	done

# every benchmark, then charts and the table in benchmarks/README.md (needs the ffmpeg CLI;
# nginx is optional). Takes about 20 minutes on 2 cores.
bench: $(STAMP) bench-tools
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) benchmarks/segment_latency.py
	$(PY) benchmarks/transcode_cost.py
	$(PY) benchmarks/origin_load.py
	$(PY) benchmarks/s3_origin.py
	$(PY) benchmarks/bframes_cost.py
	$(PY) benchmarks/cmaf_cost.py
	$(PY) benchmarks/overload.py
	$(PY) benchmarks/playlist_load.py
	$(PY) benchmarks/track_cost.py
	$(PY) benchmarks/cluster_burst.py
	$(PY) benchmarks/hot_path.py
	$(PY) benchmarks/encryption.py
	$(PY) benchmarks/jobs.py
	$(PY) benchmarks/report.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
