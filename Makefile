# labelkit: `make demo`, `make test`, `make bench` work on a fresh machine (Python 3.11 + gcc).
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Debian packages the tests and the demo use: exiftool (independent reader of what we write),
# tesseract with its Simplified Chinese model (OCR of the visible label), ffmpeg/ffprobe and
# mkvtoolnix (independent video readers, and the attacks of the video watermark's tests),
# LibreOffice's headless Writer/Calc/Impress (an independent reader of DOCX/XLSX/PPTX),
# libarchive-zip-perl (exiftool needs it to read Office files), poppler-utils and qpdf
# (independent PDF readers and checkers), fortunes and python3-doc (English text for the token
# watermark's evaluation: the LM it samples from, and the natural text of its false-positive run;
# python3-doc is the unversioned name, it depends on this release's python3.X-doc),
# postgresql (a real server for the ledger's PostgreSQL backend), chromium (the headless browser
# Playwright drives in the web page's test; no `playwright install`) and fonts-noto-cjk (so the
# page's Chinese renders in its screenshots).
APT_PACKAGES := libimage-exiftool-perl libarchive-zip-perl tesseract-ocr tesseract-ocr-chi-sim ffmpeg mkvtoolnix poppler-utils qpdf libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui fortunes python3-doc postgresql chromium fonts-noto-cjk

.PHONY: setup system postgres demo test test-native test-pure bench watermark-suite \
	watermark-eval text-watermark-eval server-load clean

setup: system $(VENV)/.installed

system:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "warning: missing system packages:$$missing (tests that need them skip)"; fi; \
	fi

# The transformers adapter's test runs a tiny random GPT-2 on torch's CPU build, which this
# machine's pip finds on disk (190 MB); PyPI's default torch is a CUDA build of several GB, so
# elsewhere use e.g. TORCH_PIP="torch --index-url https://download.pytorch.org/whl/cpu".
TORCH_PIP ?= torch==2.13.0

# Editable install: builds the Cython kernels in place (labelkit/_native_*.so).
$(VENV)/.installed: pyproject.toml setup.py $(wildcard src_native/*.pyx src_native/*.pxd src_native/*.h)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PIP)
	$(BIN)/python -m pip install -q -e '.[test,hf,c2pa,postgres,serve]'
	touch $@

demo: setup
	$(BIN)/python examples/demo.py demo-out

# The ledger's PostgreSQL tests run against Debian's own cluster: started if it is down, with a
# superuser role for root (peer authentication over the Unix socket) and a test database. As
# root this must work (a failure stops make); otherwise those tests skip with the reason.
PG_TEST_URL := postgresql:///labelkit_test
postgres: system
	@rm -f $(VENV)/.postgres-url
	@if [ "$$(id -u)" = 0 ] && command -v pg_lsclusters >/dev/null; then \
	  set -e; \
	  if [ -z "$$(pg_lsclusters -h)" ]; then \
	    pg_createcluster "$$(ls /usr/lib/postgresql | sort -V | tail -1)" main >/dev/null; fi; \
	  pg_lsclusters -h | while read -r ver name port status rest; do \
	    [ "$$status" = online ] || pg_ctlcluster "$$ver" "$$name" start; done; \
	  su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='root'\"" | grep -q 1 \
	    || su postgres -c "createuser --superuser root"; \
	  psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='labelkit_test'" \
	    | grep -q 1 || createdb labelkit_test; \
	  psql "$(PG_TEST_URL)" -tAc "SELECT 1" >/dev/null; \
	  echo "$(PG_TEST_URL)" > $(VENV)/.postgres-url; \
	else echo "warning: no PostgreSQL server to start (the ledger's PostgreSQL tests skip)"; fi

test: setup postgres test-native test-pure

# LABELKIT_TEST_POSTGRES: the server `make postgres` started, if it did.
PG_ENV = LABELKIT_TEST_POSTGRES=$$(cat $(VENV)/.postgres-url 2>/dev/null)

test-native:
	$(PG_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider
	@# grep without -q: it must read all of the report, or pipefail sees a broken pipe
	$(BIN)/python -m labelkit --report | grep "implementation: native" >/dev/null

test-pure:
	$(PG_ENV) LABELKIT_PURE_PYTHON=1 $(BIN)/python -m pytest -q -p no:cacheprovider

# Benchmark-only peers of bench_watermark_speed.py. invisible-watermark and blind-watermark
# declare heavy dependencies (torch, opencv-python with GUI) that the measured paths never use,
# so they go in with --no-deps beside opencv-python-headless and PyWavelets.
PEER_REQS := benchmarks/requirements-peers.txt benchmarks/requirements-peers-nodeps.txt
$(VENV)/.peers-installed: $(VENV)/.installed $(PEER_REQS)
	$(BIN)/python -m pip install -q -r benchmarks/requirements-peers.txt
	$(BIN)/python -m pip install -q --no-deps -r benchmarks/requirements-peers-nodeps.txt
	touch $@

bench: setup $(VENV)/.peers-installed
	mkdir -p bench-results
	$(BIN)/python -m pytest benchmarks -q -p no:cacheprovider --benchmark-only \
	  --benchmark-columns=min,median,mean,ops --benchmark-sort=name \
	  --benchmark-json=bench-results/latest.json -s 2>&1 | tee bench-results/latest.txt

# The image watermark against robustness.md: the attack suite (39 pictures x 30 attacks, with
# PSNR/SSIM and sample crops to look at), and the false-positive run on 10,000 unmarked items
# (about 25 minutes on 2 cores; resumable: it skips items already in its log).
watermark-suite: setup
	mkdir -p bench-results
	$(BIN)/python tools/watermark_eval.py --suite --processes 2 \
	  --out bench-results/watermark_robustness.txt --examples bench-results/watermark_examples

watermark-eval: setup
	mkdir -p bench-results
	$(BIN)/python tools/watermark_eval.py --null-only --null 10000 --processes 2 \
	  --log bench-results/watermark_null10k.jsonl \
	  --out bench-results/watermark_null10k.txt --json bench-results/watermark_null10k.json

# The token watermark against robustness.md (text): 1,000 marked 300-token outputs per corpus and
# temperature (detected on ids, after re-tokenizing, after 20% of the words replaced), unmarked
# and other-key samples, and ~11,000 held-out natural windows x 8 keys (about 15 minutes).
text-watermark-eval: setup
	mkdir -p bench-results
	$(BIN)/python tools/text_watermark_eval.py --samples 1000 --temperature 0.7 0.5 \
	  --out bench-results/text_watermark_eval.md

# The verification service under load (issue 8): 10,000 verifications of a labeled 1080p JPEG
# per mode (metadata + signature only; with the watermark) sent by 4 client threads to
# `labelkit serve --workers 2` on 127.0.0.1: requests/s, p50/p99 latency, failures and the
# server's RSS over the run. Fails on any failed request or on RSS growth after the warm-up
# (see tools/server_load.py). Roughly 15-20 minutes on 2 cores, most of it the watermark.
server-load: setup
	mkdir -p bench-results
	$(BIN)/python tools/server_load.py --requests 10000 --out bench-results/server_load.md

clean:
	rm -rf build dist *.egg-info labelkit/_native_*.so src_native/*.c demo-out bench-results
