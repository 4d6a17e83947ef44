# polysecret: the usual targets. `make demo` and `make test` set up everything
# they need on a fresh machine (Python deps with moto and OpenBao, helm, the driver's Go client).
PYTHON ?= python3
PIP    ?= $(PYTHON) -m pip
export POLYSECRET_CACHE ?= $(HOME)/.cache/polysecret
# The image `make image` builds and `make test` runs (tests/image).
export POLYSECRET_IMAGE ?= localhost/polysecret:dev
PROTO_OUT = provider/v1alpha1

.PHONY: all test demo install install-test lint fmt proto proto-check bench lint-deploy conformance-go image e2e clean

all: test

# Python package with every backend's SDK plus the dev/test tools.
install:
	$(PIP) install -q --disable-pip-version-check -e '.[dev]'

# Real test servers and the driver's Go client (cached under $(POLYSECRET_CACHE)).
install-test: install
	bash scripts/install-test-deps.sh

demo: install
	$(PYTHON) scripts/demo.py

test: install-test proto-check lint image
	$(PYTHON) -m pytest -q --ignore=tests/e2e
	$(MAKE) conformance-go
	bash scripts/lint-deploy.sh
	$(MAKE) e2e

# End to end on a real one-node cluster (tests/e2e, needs root): etcd,
# kube-apiserver, kubelet, containerd, the driver binary and the chart-installed
# provider. install-e2e.sh builds the Go binaries once into $(POLYSECRET_CACHE).
# After the suite nothing may be left on the host: --check fails the target if
# the harness leaked anything (and the second call removes it).
# The provider runs as the chart's DaemonSet pod in the image `make image`
# builds; POLYSECRET_E2E_PROVIDER=process runs it as a host process instead
# (machines without podman), and then needs no image.
e2e: install-test $(if $(filter process,$(POLYSECRET_E2E_PROVIDER)),,image)
	bash scripts/install-e2e.sh >/dev/null
	PYTHON=$(PYTHON) bash scripts/e2e-cleanup.sh
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e; rc=$$?; \
	PYTHON=$(PYTHON) bash scripts/e2e-cleanup.sh --check || { rc=1; PYTHON=$(PYTHON) bash scripts/e2e-cleanup.sh; }; \
	exit $$rc

# The harness's own tests (tests/conformance/*_test.go): what the driver's
# client and writer do with deliberately broken answers, on both driver lines.
conformance-go:
	cd tests/conformance && GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local go test -count=1 ./...
	cd tests/conformance && GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local go test -count=1 -modfile=go.v15.mod ./...

# The container image, with podman (installed by scripts/install-image-deps.sh):
# a debootstrapped Debian base and wheels from PyPI, both cached under
# $(POLYSECRET_CACHE)/image. A release: BASE_IMAGE=<pinned upstream> make image.
image:
	bash scripts/build-image.sh $(POLYSECRET_IMAGE)

lint:
	$(PYTHON) -m ruff check provider tests bench scripts
	$(PYTHON) -m mypy
	lint-imports

fmt:
	$(PYTHON) -m ruff check --fix provider tests bench scripts
	$(PYTHON) -m ruff format provider tests bench scripts

# Regenerate the typed gRPC code from proto/service.proto. The -I mapping puts
# it inside the package so the generated imports are `from provider.v1alpha1 ...`.
proto:
	$(PYTHON) -m grpc_tools.protoc -I$(PROTO_OUT)=proto --python_out=. --grpc_python_out=. \
		--mypy_out=. --mypy_grpc_out=. proto/service.proto

# Fails when the committed generated code is not what `make proto` would write.
proto-check:
	@tmp=$$(mktemp -d) && \
	$(PYTHON) -m grpc_tools.protoc -I$(PROTO_OUT)=proto --python_out=$$tmp --grpc_python_out=$$tmp \
		--mypy_out=$$tmp --mypy_grpc_out=$$tmp proto/service.proto >/dev/null 2>&1 && \
	diff -r -x __init__.py -x __pycache__ $$tmp/$(PROTO_OUT) $(PROTO_OUT) && rm -rf $$tmp && \
	echo "generated protobuf code is up to date" || \
	{ echo "provider/v1alpha1 is stale: run 'make proto'"; rm -rf $$tmp; exit 1; }

# Figures, not pass/fail (a shared 2-core machine: compare within one run).
bench: install-test
	$(PYTHON) bench/mount_bench.py
	$(PYTHON) bench/rotation.py
	$(PYTHON) bench/cost.py
	$(PYTHON) bench/overload.py
	$(PYTHON) bench/soak.py

lint-deploy:
	bash scripts/lint-deploy.sh

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
