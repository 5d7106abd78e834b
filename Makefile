# tacoc: `make` builds the compiler and libtacort, `make test` runs every test,
# `make demo` optimizes and runs a bundled sample. Dependencies are installed
# by tools/deps.sh the first time (and whenever it changes).

BUILD   ?= build
CC      ?= cc
PY      := .venv/bin/python
JOBS    ?= $(shell nproc)

WARN     := -Wall -Wextra -Werror -Wno-missing-field-initializers
CFLAGS   ?= -O2 -g
SANITIZE ?=
LLVM_DIR := /usr/lib/llvm-16
# The CUDA toolkit (headers for codegen/cuda and the CUDA backend; NVRTC is
# loaded at run time, so tacoc itself does not link CUDA).
CUDA_HOME ?= /usr/local/cuda
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC $(CFLAGS) $(SANITIZE) -Iinclude -Iruntime -Ipasses -Icompiler -Icodegen/cpu -Icodegen/cuda -I$(BUILD)/gen -isystem $(LLVM_DIR)/include
LDLIBS   := -ldnnl -lgomp -lprotobuf-c -lcrypto -ldl -lm -lpthread
# The code generator (tacoc only; libtacort never links LLVM).
LLVM_LIBS:= -L$(LLVM_DIR)/lib -lLLVM-16 -Wl,-rpath,$(LLVM_DIR)/lib

GEN      := $(BUILD)/gen
RT_SRCS  := $(wildcard runtime/*.c runtime/kernels/*.c)
CLI_SRCS := $(wildcard compiler/*.c)
PASS_SRCS:= $(wildcard passes/*.c)
CG_SRCS  := $(wildcard codegen/cpu/*.c codegen/cuda/*.c)
CG_OBJS  := $(CG_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS:= $(wildcard tests/unit/*.c)
RT_OBJS  := $(RT_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/onnx-ml.pb-c.o
# libtacort's CUDA backend, its own shared object (runtime/cuda/tacort_cuda.h).
CUDA_SRCS:= $(wildcard runtime/cuda/*.c)
CUDA_OBJS:= $(CUDA_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/runtime/culib.o $(BUILD)/obj/runtime/cuda/kernels.o
CUDA_LIBS:= -L$(CUDA_HOME)/lib64 -lcudart -lcublasLt -Wl,-rpath,$(CUDA_HOME)/lib64 -lstdc++
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o) $(PASS_SRCS:%.c=$(BUILD)/obj/%.o) $(CG_OBJS)
UNIT_BINS:= $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
DEPS_OK  := $(BUILD)/.deps-ok

.PHONY: FORCE all deps ops-doc test check-asan fuzz demo format format-check clean
all: $(BUILD)/bin/tacoc $(BUILD)/lib/libtacort.a $(BUILD)/lib/libtacort.so $(BUILD)/samples/run_model \
     $(BUILD)/lib/libtacort_cuda.so $(BUILD)/bin/tacoc-nollvm $(BUILD)/bench/cpu_peak

deps:
	tools/deps.sh
# Checked on every make (cheap); the stamp only moves when something was installed.
$(DEPS_OK): FORCE
	@tools/deps.sh $@
FORCE:

# onnx.proto comes from the pinned onnx package; the C sources are generated, not committed.
$(GEN)/onnx-ml.pb-c.c $(GEN)/onnx-ml.pb-c.h: $(DEPS_OK)
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) --proto_path="$$($(PY) -c 'import onnx,os;print(os.path.dirname(onnx.__file__))')" onnx-ml.proto

$(BUILD)/obj/gen/onnx-ml.pb-c.o: $(GEN)/onnx-ml.pb-c.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -fPIC $(CFLAGS) $(SANITIZE) -I$(GEN) -c $< -o $@

# onnx-data.proto (SequenceProto, OptionalProto: the node tests' sequence and
# optional data), for the conformance runner; its import of
# onnx/onnx-ml.proto pointed at the file generated above.
$(GEN)/onnx-data.pb-c.c $(GEN)/onnx-data.pb-c.h: $(GEN)/onnx-ml.pb-c.h
	d="$$($(PY) -c 'import onnx,os;print(os.path.dirname(onnx.__file__))')" && \
	  sed 's|import "onnx/onnx-ml.proto";|import "onnx-ml.proto";|' "$$d/onnx-data.proto" > $(GEN)/onnx-data.proto && \
	  protoc-c --c_out=$(GEN) --proto_path=$(GEN) --proto_path="$$d" $(GEN)/onnx-data.proto

$(BUILD)/obj/gen/onnx-data.pb-c.o: $(GEN)/onnx-data.pb-c.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -fPIC $(CFLAGS) $(SANITIZE) -I$(GEN) -c $< -o $@

# Sixteen-lane vector helpers (always inlined into target clones): GCC's
# note about the 64-byte vector ABI does not apply.
$(BUILD)/obj/runtime/vmath.o $(BUILD)/obj/runtime/vmath_avx2.o $(BUILD)/obj/runtime/vmath_avx512.o \
  $(BUILD)/obj/runtime/kernels/conv.o: WARN += -Wno-psabi
$(BUILD)/obj/runtime/vmath_avx2.o $(BUILD)/obj/runtime/vmath_avx512.o: ALL_CFLAGS += -ffp-contract=fast

# The CUDA kernel templates as a C string for the generator (NVRTC compiles them at optimize time).
$(GEN)/cuda_prelude.inc: codegen/cuda/prelude.cuh
	@mkdir -p $(@D)
	sed 's/\\/\\\\/g; s/"/\\"/g; s/^/"/; s/$$/\\n"/' $< > $@
$(BUILD)/obj/codegen/cuda/cucg.o: $(GEN)/cuda_prelude.inc

# Only the CUDA parts see the toolkit's headers.
$(BUILD)/obj/codegen/cuda/%.o $(BUILD)/obj/runtime/cuda/%.o $(BUILD)/obj/tests/unit/test_cucg.o \
  $(BUILD)/obj/tests/unit/test_cuda_emu.o \
  $(BUILD)/obj/tests/gpu/%.o: ALL_CFLAGS += -isystem $(CUDA_HOME)/include -Iruntime/cuda -Itests/unit

$(BUILD)/obj/%.o: %.c $(GEN)/onnx-ml.pb-c.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(WARN) -MMD -MP -c $< -o $@

$(BUILD)/lib/libtacort.a: $(RT_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/lib/libtacort.so: $(RT_OBJS)
	@mkdir -p $(@D)
	$(CC) -shared $(SANITIZE) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/tacoc: $(CLI_OBJS) $(BUILD)/lib/libtacort.a
	@mkdir -p $(@D)
	$(CC) $(SANITIZE) -o $@ $(CLI_OBJS) $(BUILD)/lib/libtacort.a $(LDLIBS) $(LLVM_LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/lib/libtacort.a
	@mkdir -p $(@D)
	$(CC) $(SANITIZE) -o $@ $< $(BUILD)/lib/libtacort.a $(LDLIBS)

# tacoc without LLVM (codegen/none): the passes, the CUDA target and
# libtacort, for machines without LLVM 16; --codegen cpu reports it is absent.
NOLLVM_OBJS := $(filter-out $(BUILD)/obj/codegen/cpu/%,$(CLI_OBJS)) $(BUILD)/obj/codegen/none/cg_none.o
$(BUILD)/bin/tacoc-nollvm: $(NOLLVM_OBJS) $(BUILD)/lib/libtacort.a
	@mkdir -p $(@D)
	$(CC) $(SANITIZE) -o $@ $(NOLLVM_OBJS) $(BUILD)/lib/libtacort.a $(LDLIBS)

# The code generator's test links the generator (and LLVM) too.
$(BUILD)/tests/test_codegen: $(BUILD)/obj/tests/unit/test_codegen.o $(CG_OBJS) $(BUILD)/lib/libtacort.a
	@mkdir -p $(@D)
	$(CC) $(SANITIZE) -o $@ $< $(CG_OBJS) $(BUILD)/lib/libtacort.a $(LDLIBS) $(LLVM_LIBS)

# CUDA code generation's test links the generator (NVRTC is loaded at run time).
$(BUILD)/tests/test_cucg $(BUILD)/tests/test_cuda_emu: $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/obj/codegen/cuda/cucg.o $(BUILD)/lib/libtacort.a
	@mkdir -p $(@D)
	$(CC) $(SANITIZE) -o $@ $^ $(LDLIBS)

# The backend's fixed kernels, built by nvcc: CUBINs for sm_80 and sm_90, PTX for newer GPUs.
NVCC       := $(CUDA_HOME)/bin/nvcc
NVCC_FLAGS := -std=c++17 -O2 -Xcompiler -fPIC -Icodegen/cuda -Iruntime/cuda \
              -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
              -gencode arch=compute_80,code=compute_80
$(BUILD)/obj/runtime/cuda/kernels.o: runtime/cuda/kernels.cu runtime/cuda/kernels.cuh runtime/cuda/kernels.h codegen/cuda/prelude.cuh
	@mkdir -p $(@D)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

$(BUILD)/lib/libtacort_cuda.so: $(CUDA_OBJS) runtime/cuda/exports.map
	@mkdir -p $(@D)
	$(CC) -shared $(SANITIZE) -o $@ $(CUDA_OBJS) $(CUDA_LIBS) -Wl,--version-script=runtime/cuda/exports.map

# The GPU tests (tests/gpu) skip themselves without a CUDA device.
$(BUILD)/tests/test_cuda: $(BUILD)/obj/tests/gpu/test_cuda.o $(BUILD)/obj/codegen/cuda/cucg.o $(BUILD)/lib/libtacort_cuda.so $(BUILD)/lib/libtacort.a
	@mkdir -p $(@D)
	$(CC) $(SANITIZE) -o $@ $(filter %.o,$^) $(BUILD)/lib/libtacort_cuda.so -Wl,-rpath,'$$ORIGIN/../lib' $(BUILD)/lib/libtacort.a $(LDLIBS)

# The embedding sample sees only the public header.
$(BUILD)/samples/run_model: samples/run_model.c include/tacort.h $(BUILD)/lib/libtacort.a
	@mkdir -p $(@D)
	$(CC) -std=c11 $(CFLAGS) $(SANITIZE) $(WARN) -Iinclude -o $@ $< $(BUILD)/lib/libtacort.a $(LDLIBS)

# The expert library's measured peaks (bench/floor_compare.py reads them).
$(BUILD)/bench/cpu_peak: bench/cpu_peak.c $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE $(CFLAGS) $(SANITIZE) $(WARN) -o $@ $< -ldnnl -lgomp

$(BUILD)/obj/tests/conformance/conformance.o: $(GEN)/onnx-data.pb-c.h
$(BUILD)/tests/conformance: $(BUILD)/obj/tests/conformance/conformance.o $(BUILD)/obj/gen/onnx-data.pb-c.o $(BUILD)/lib/libtacort.a
	@mkdir -p $(@D)
	$(CC) $(SANITIZE) -o $@ $< $(BUILD)/obj/gen/onnx-data.pb-c.o $(BUILD)/lib/libtacort.a $(LDLIBS)

# libFuzzer target for the loader (clang from Debian).
$(BUILD)/fuzz/fuzz_load: tests/fuzz/fuzz_load.c $(RT_SRCS) $(GEN)/onnx-ml.pb-c.c
	@mkdir -p $(@D)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Iruntime -I$(GEN) \
	  -o $@ tests/fuzz/fuzz_load.c $(RT_SRCS) $(GEN)/onnx-ml.pb-c.c $(LDLIBS)

test: all $(UNIT_BINS) $(BUILD)/tests/test_cuda $(BUILD)/tests/conformance $(BUILD)/fuzz/fuzz_load
	BUILD=$(BUILD) JOBS=$(JOBS) tests/run.sh

# Sanitizer build in its own folder; runs the unit, round-trip, error and pass suites.
check-asan: $(DEPS_OK)
	$(MAKE) BUILD=build/asan SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" CFLAGS="-O1 -g" all $(patsubst $(BUILD)/%,build/asan/%,$(UNIT_BINS))
	BUILD=build/asan JOBS=$(JOBS) TC_SUITES="unit roundtrip errors passes" tests/run.sh

fuzz: $(BUILD)/fuzz/fuzz_load
	BUILD=$(BUILD) TC_SUITES="fuzz" TC_FUZZ_SECONDS=$${TC_FUZZ_SECONDS:-300} tests/run.sh

# Regenerates docs/ops.md and the list of node tests that must keep passing.
ops-doc: all $(BUILD)/tests/conformance
	$(PY) tools/gen_onnx_tests.py build/testdata/onnx >/dev/null
	$(BUILD)/tests/conformance --ops-md docs/ops.md --write-expected tests/conformance/expected_pass.txt build/testdata/onnx/node

demo: all
	tools/demo.sh $(BUILD)

format:
	clang-format -i $(RT_SRCS) $(CLI_SRCS) $(PASS_SRCS) $(CG_SRCS) codegen/none/*.c codegen/*/*.h passes/*.h compiler/*.h $(UNIT_SRCS) runtime/*.h runtime/kernels/*.h include/*.h tests/fuzz/*.c runtime/cuda/*.[ch] tests/gpu/*.c bench/*.c
format-check:
	clang-format --dry-run --Werror $(RT_SRCS) $(CLI_SRCS) $(PASS_SRCS) $(CG_SRCS) codegen/none/*.c codegen/*/*.h passes/*.h compiler/*.h $(UNIT_SRCS) runtime/*.h runtime/kernels/*.h include/*.h tests/fuzz/*.c runtime/cuda/*.[ch] tests/gpu/*.c bench/*.c

clean:
	rm -rf build

.SECONDARY:

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
